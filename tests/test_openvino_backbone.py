"""The OpenVINO int8 backbone (--precision int8-openvino): made at set-up, agreeing with PyTorch's int8 and fp32,
refused by name when its files or their record were changed."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import torch.nn.functional as F

from annotator.build import build_model
from annotator.inference import predictor as predictor_module
from annotator.inference.predictor import Predictor
from annotator.io.int8_ranges import load_ranges
from annotator.io.openvino_ir import checked_ir, ir_stem, openvino_version
from annotator.io.weights import WEIGHTS_DIR, WeightsError
from annotator.modeling.openvino_backbone import OpenVINOVGG16OS8
from annotator.modeling.quantized import (
    FakeQuantizedVGG16OS8,
    QuantizedVGG16OS8,
    activation_bits,
    int8_supported,
    quantize,
)
from tests.synthetic import scene

pytestmark = pytest.mark.skipif(
    openvino_version() is None or not int8_supported(), reason="OpenVINO or an x86 CPU is not there"
)


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(F.cosine_similarity(a.flatten().float(), b.flatten().float(), dim=0))


def test_int8_openvino_agrees_with_pytorch_int8_and_fp32_and_is_cached_apart():
    auto = Predictor(build_model(), device="cpu", crf=None, precision="int8-openvino")
    assert isinstance(auto.model.backbone, OpenVINOVGG16OS8) and auto.int8
    assert auto.precision_name.endswith("-openvino") and auto.model_tag.endswith(auto.precision_name)
    model = build_model()
    bits = activation_bits()
    img = torch.from_numpy(scene(120, 160, (70, 50), 24, seed=5)[0]).permute(2, 0, 1)[None].float() / 255
    img = (img - 0.45) / 0.225
    with torch.inference_mode():
        ov = auto.model.backbone(img)
        ref = model.backbone(img)
        torch_int8 = quantize(model.backbone, load_ranges(model.weights_name), bits)(img)
        fake = FakeQuantizedVGG16OS8(model.backbone, load_ranges(model.weights_name), bits)(img)
    for layer, fake_out in zip(("conv4_3", "conv5_3"), fake):
        assert ov[layer].shape == ref[layer].shape
        assert _cos(ov[layer], fake_out) > 0.995, layer  # OpenVINO runs the network it converted
        assert _cos(ov[layer], torch_int8[layer]) > 0.98, layer
        assert _cos(ov[layer], ref[layer]) > 0.98, layer
    again = auto.model.backbone(img)
    assert all(torch.equal(ov[k], again[k]) for k in ov)  # deterministic
    default = Predictor(build_model(), device="cpu", crf=None)  # auto: PyTorch's int8 (its masks agree better)
    assert isinstance(default.model.backbone, QuantizedVGG16OS8)
    assert default.model_tag != auto.model_tag and default.model_tag + "-openvino" == auto.model_tag
    reused = Predictor(auto.model, device="cpu", crf=None)  # a model already made int8 stays as it is
    assert reused.model_tag == auto.model_tag


def test_changed_files_are_refused_by_name(tmp_path, monkeypatch):
    bits = activation_bits()
    stem = ir_stem(bits)
    for ext in ("xml", "bin", "json"):
        shutil.copy(WEIGHTS_DIR / f"{stem}.{ext}", tmp_path / f"{stem}.{ext}")
    assert checked_ir(bits, tmp_path) == tmp_path / f"{stem}.xml"
    data = bytearray((tmp_path / f"{stem}.bin").read_bytes())
    data[100] ^= 1
    (tmp_path / f"{stem}.bin").write_bytes(bytes(data))
    with pytest.raises(WeightsError, match=rf"{stem}\.bin is missing or does not match its recorded sha256"):
        checked_ir(bits, tmp_path)
    shutil.copy(WEIGHTS_DIR / f"{stem}.bin", tmp_path / f"{stem}.bin")
    record = json.loads((tmp_path / f"{stem}.json").read_text())
    (tmp_path / f"{stem}.json").write_text(json.dumps({**record, "openvino": "2020.1"}))
    with pytest.raises(WeightsError, match="made by another conversion or OpenVINO"):
        checked_ir(bits, tmp_path)
    (tmp_path / f"{stem}.json").write_text("{not json")
    with pytest.raises(WeightsError, match=r"cannot be read \(JSONDecodeError\)"):
        checked_ir(bits, tmp_path)

    monkeypatch.setattr(predictor_module, "checked_ir", lambda b: checked_ir(b, tmp_path))
    with pytest.raises(ValueError, match=rf"precision int8-openvino: .*{stem}\.json cannot be read"):
        Predictor(build_model(), device="cpu", crf=None, precision="int8-openvino")
    assert isinstance(Predictor(build_model(), device="cpu", crf=None).model.backbone, QuantizedVGG16OS8)
