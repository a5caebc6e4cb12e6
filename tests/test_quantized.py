"""The int8 CPU backbone: chosen by auto on a CPU, agreeing with fp32 on real photos, refused where it cannot run,
built only from the shipped, checked ranges."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from annotator.build import build_model
from annotator.inference.predictor import Predictor
from annotator.io.int8_ranges import RANGES_FILE, load_ranges
from annotator.io.weights import WEIGHTS_DIR, WeightsError
from annotator.modeling.backbones import VGG16OS8, build_backbone
from annotator.modeling.panet import PANet
from annotator.modeling.quantized import QuantizedVGG16OS8, activation_bits, int8_supported, quantize
from benchmarks import davis
from tests.synthetic import scene

needs_int8 = pytest.mark.skipif(not int8_supported(), reason="this PyTorch has no x86 int8 engine")


@needs_int8
def test_auto_on_a_cpu_is_int8_and_keys_the_feature_cache_apart():
    auto = Predictor(build_model(), device="cpu", crf=None)
    fp32 = Predictor(build_model(), device="cpu", crf=None, precision="fp32")
    assert isinstance(auto.model.backbone, QuantizedVGG16OS8) and auto.int8
    assert isinstance(fp32.model.backbone, VGG16OS8) and not fp32.int8
    assert auto.model_tag.endswith(f"-{auto.precision_name}") and auto.precision_name.startswith("int8")
    assert fp32.model_tag.endswith("-float32")
    img = scene(96, 128, (60, 40), 20, seed=3)[0]
    a, b = auto.encode([img]), fp32.encode([img])
    assert a.shape == b.shape and a.dtype == b.dtype == torch.float16
    assert not torch.equal(a, b)  # a different computation, hence the cache's separate namespace
    assert torch.equal(a, Predictor(build_model(), device="cpu", crf=None).encode([img]))  # deterministic
    assert auto.feature_layout == fp32.feature_layout
    again = Predictor(auto.model, device="cpu", crf=None)  # a model already made int8 stays int8, so tagged
    assert again.model_tag == auto.model_tag and torch.equal(again.encode([img]), a)
    with pytest.raises(ValueError, match="already int8"):
        Predictor(auto.model, device="cpu", crf=None, precision="fp32")


@needs_int8
def test_int8_is_refused_with_its_reason_where_it_cannot_run():
    resnet = PANet(build_backbone("resnet50"))
    with pytest.raises(ValueError, match="int8: only the VGG-16 backbone"):
        Predictor(resnet, device="cpu", crf=None, precision="int8")
    assert not Predictor(resnet, device="cpu", crf=None).int8  # auto falls back to fp32
    mine = build_model()
    mine.weights_name = "my_vgg16"
    with pytest.raises(ValueError, match="only vgg16_imagenet has"):
        Predictor(mine, device="cpu", crf=None, precision="int8")


@needs_int8
def test_activations_take_the_bits_this_cpu_sums_without_overflow_and_key_the_cache_apart():
    """With VNNI, 8-bit activations; without (AVX2), 7: 8-bit ones overflow the 16-bit pair sums there (masks at IoU
    0.92 against fp32's on a Zen 3, 0.99 in 7 bits). The two give other features, so another cache namespace."""
    vnni = torch.cpu._is_vnni_supported()
    auto = Predictor(build_model(), device="cpu", crf=None)
    assert auto.model.backbone.bits == activation_bits() == (8 if vnni else 7)
    assert auto.precision_name == ("int8" if vnni else "int8-7bit")
    model = build_model()
    ranges = load_ranges(model.weights_name)
    img = torch.from_numpy(scene(96, 128, (60, 40), 20, seed=3)[0]).permute(2, 0, 1)[None].float() / 255
    with torch.inference_mode():
        outs = {bits: quantize(model.backbone, ranges, bits)(img)["conv4_3"] for bits in (7, 8)}
        ref = model.backbone(img)["conv4_3"]
    for bits, out in outs.items():  # both are the float backbone's features, to their resolution
        assert torch.nn.functional.cosine_similarity(out.flatten(), ref.flatten(), dim=0) > 0.95, bits
    assert not torch.equal(outs[7], outs[8])
    fp32 = Predictor(build_model(), device="cpu", crf=None, precision="fp32")
    assert len({auto.model_tag, fp32.model_tag}) == 2


def test_the_ranges_file_must_be_the_shipped_one(tmp_path):
    assert len(load_ranges("vgg16_imagenet")) == 13
    shutil.copy(WEIGHTS_DIR / RANGES_FILE, tmp_path / RANGES_FILE)
    doc = json.loads((tmp_path / RANGES_FILE).read_text())
    doc["ranges"]["quant"] = [-1000.0, 1000.0]
    (tmp_path / RANGES_FILE).write_text(json.dumps(doc))
    with pytest.raises(WeightsError, match="sha256"):
        load_ranges("vgg16_imagenet", tmp_path)
    (tmp_path / RANGES_FILE).unlink()
    with pytest.raises(WeightsError, match="missing"):
        load_ranges("vgg16_imagenet", tmp_path)


@needs_int8
@pytest.mark.skipif(not davis.available(), reason=davis.ABSENT)
def test_int8_masks_agree_with_fp32_on_real_frames():
    """Car frames from the four car videos, one support: the int8 masks' IoU with fp32's (measured 0.993 with VNNI;
    0.990 on a CPU without it, in 7 bits, where 8 bits gave 0.919)."""
    from annotator.io.imageio import read_image, read_mask

    frames = [f for s in davis.GROUPS["car"] for f in davis.frames(s)[::6]]
    support = [(read_image(frames[0][0]), read_mask(frames[0][1]))]
    images = [read_image(p) for p, _ in frames[1:]]
    masks = []
    for precision in ("fp32", "int8"):
        p = Predictor(build_model(), device="cpu", crf=None, precision=precision)
        p.set_supports(support)
        masks.append([r.mask for r in p.predict(images)])
    inter = sum(int((a & b).sum()) for a, b in zip(*masks))
    union = sum(int((a | b).sum()) for a, b in zip(*masks))
    assert inter / union >= 0.95
    truth = [read_mask(m) for _, m in frames[1:]]
    for got in masks:  # and both find the cars
        assert np.mean([(g & t).sum() / max((g | t).sum(), 1) for g, t in zip(got, truth)]) >= 0.6
