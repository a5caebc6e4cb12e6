"""SG-One: shapes, superpixel episodes, training that learns, resuming, and the shipped checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from annotator.modeling.backbones import VGG16OS8
from annotator.modeling.sgone import SGOne, SGOneHead
from annotator.training.config import TrainConfig
from annotator.training.episodes import IGNORE, augment, superpixels, usable_regions
from tests.synthetic import scene, write_rgb


def test_forward_shapes_follow_the_stride_8_trunk():
    model = SGOne(VGG16OS8(), SGOneHead(hidden=16)).eval()
    with torch.no_grad():
        feats = model.features(torch.zeros(3, 3, 64, 96))
        assert feats.shape == (3, 1024, 8, 12)
        logits = model(feats[:1], torch.ones(1, 64, 96), feats[1:])
    assert logits.shape == (2, 2, 8, 12)
    assert model.guidance(
        feats[1:], model.prototypes(feats[:1], torch.ones(1, 64, 96), torch.zeros(1, 64, 96))
    ).shape == (2, 1, 8, 12)


def test_superpixels_are_connected_regions_covering_the_image():
    import cv2

    img, _ = scene(90, 120, (60, 45), 20, seed=3)
    lab = superpixels(img, n=10, seed=0)
    assert lab.shape == (90, 120) and lab.min() == 0
    ids = np.unique(lab)
    assert np.array_equal(ids, np.arange(len(ids))) and len(ids) >= 5
    for r in ids:
        n, _ = cv2.connectedComponents((lab == r).astype(np.uint8), connectivity=8)
        assert n == 2, f"region {r} is not one piece"
    usable = usable_regions(lab)
    assert usable and all(0.03 <= (lab == r).mean() <= 0.6 for r in usable)


def test_augmented_views_keep_labels_aligned_and_mark_the_outside():
    img, _ = scene(90, 120, (60, 45), 20, seed=4)
    lab = superpixels(img, n=8)
    rng = np.random.default_rng(1)
    for _ in range(5):
        v, vl = augment(img, lab, rng)
        assert v.shape[:2] == vl.shape and v.dtype == np.uint8
        assert set(np.unique(vl)) <= set(np.unique(lab)) | {IGNORE}
        assert (vl != IGNORE).mean() > 0.5


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    """Episodes from four small images of a ball on noise, featurised by the real VGG-16 at 97 px."""
    from annotator.training.loop import EpisodeBank, build, unlabelled_sources

    cfg = TrainConfig(steps=30, batch=4, lr=1e-2, hidden=16, views=2, input_size=97, superpixels=6, checkpoint_every=4)
    model, predictor = build(cfg, "cpu")
    folder = tmp_path_factory.mktemp("train")
    images = []
    for i in range(4):
        im, _ = scene(100, 130, (40 + 15 * i, 50), 22, seed=60 + i)
        write_rgb(folder / f"img{i}.png", im)
        images.append((folder / f"img{i}.png", im))
    return EpisodeBank(predictor, unlabelled_sources(images, cfg), cfg), cfg


def _fixed_loss(model, bank_) -> float:
    from annotator.training.loop import episode_loss

    rng = np.random.default_rng(123)
    batch = [e for e in (bank_.episode(rng) for _ in range(16)) if e is not None]
    with torch.no_grad():
        return float(episode_loss(model, batch))


def test_training_steps_lower_the_loss_and_resume_continues_from_the_step(bank, tmp_path):
    from annotator.training.loop import build, train

    bank_, cfg = bank
    model, _ = build(cfg, "cpu")
    before = _fixed_loss(model, bank_)
    steps_seen: list[int] = []
    assert train(bank_, model, tmp_path / "full.safetensors", cfg, progress=lambda s, _: steps_seen.append(s)) == 30
    after = _fixed_loss(model, bank_)
    # Measured 0.62 -> 0.48 (0.77x) on this fixed batch of 16 episodes after 30 steps; 0.85x leaves room
    # for BLAS differences between machines and still fails a head that does not learn.
    assert after < 0.85 * before, (before, after)
    assert steps_seen == list(range(1, 31))

    # Stopped at 5 (saved at 4 and on stop), resumed to 30: the same weights as the straight run.
    part, _ = build(cfg, "cpu")
    stop_at = iter([False] * 5 + [True])
    train(bank_, part, tmp_path / "part.safetensors", cfg, stop=lambda: next(stop_at))
    resumed, _ = build(cfg, "cpu")
    seen: list[int] = []
    assert (
        train(bank_, resumed, tmp_path / "part.safetensors", cfg, resume=True, progress=lambda s, _: seen.append(s))
        == 30
    )
    assert seen[0] == 6
    for (k, a), b in zip(model.head.state_dict().items(), resumed.head.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), k


def test_shipped_checkpoint_loads_and_proposes_on_cpu():
    from annotator.build import ModelSpec, build_model
    from annotator.config import Model
    from annotator.inference.predictor import Predictor
    from annotator.io.sgone_weights import default_checkpoint

    assert default_checkpoint().is_file(), "weights/sgone_head.safetensors is shipped with the repository"
    pred = Predictor(build_model(ModelSpec(model=Model.SGONE)), device="cpu", crf=None)
    img, m = scene(90, 130, (50, 40), 20, seed=2)
    pred.set_supports([(img, m)])
    query, qm = scene(70, 110, (70, 35), 18, seed=3)
    (prop,) = pred.predict([query])
    assert prop.mask.shape == (70, 110)
    iou = (prop.mask & qm).sum() / max((prop.mask | qm).sum(), 1)
    assert iou > 0.3, iou  # a red ball on noise; the head was trained on real photographs, not on this
    assert pred.settings()["model"] == "sgone"


def test_train_command_on_pairs_and_coco_then_resume(tmp_path, capsys):
    from annotator.cli import main
    from annotator.formats.coco import CocoBuilder
    from annotator.io.sgone_weights import load_head
    from tests.synthetic import write_mask

    (tmp_path / "pairs" / "images").mkdir(parents=True)
    (tmp_path / "pairs" / "masks").mkdir()
    coco = CocoBuilder(categories=[{"id": 3, "name": "ball", "supercategory": ""}])
    for i in range(3):
        im, m = scene(100, 130, (40 + 20 * i, 50), 22, seed=70 + i)
        write_rgb(tmp_path / "pairs" / "images" / f"p{i}.png", im)
        write_mask(tmp_path / "pairs" / "masks" / f"p{i}.png", m)
        coco.add_mask(coco.add_image(f"images/p{i}.png", 100, 130), 3, m)
    coco.write(tmp_path / "pairs" / "coco.json")
    out = tmp_path / "head.safetensors"
    common = [
        "train",
        "--pairs",
        str(tmp_path / "pairs"),
        "--coco",
        str(tmp_path / "pairs" / "coco.json"),
        "--out",
        str(out),
        "--input-size",
        "97",
        "--hidden",
        "8",
        "--batch",
        "2",
        "--device",
        "cpu",
    ]
    assert main(common + ["--steps", "3"]) == 0
    assert "trained at step 3/3 on 6 images" in capsys.readouterr().out
    assert load_head(out).hidden == 8
    assert main(common + ["--steps", "5", "--resume"]) == 0
    assert "trained at step 5/5" in capsys.readouterr().out
    assert main(["train", "--out", str(out)]) == 2
    assert "give at least one of" in capsys.readouterr().err
    # reliability defect 19: a mismatched or damaged state is a one-line message, not a traceback
    mismatched = [a if a != "8" else "16" for a in common]
    assert main(mismatched + ["--steps", "7", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "head.state.safetensors: cannot resume from it" in err and err.count("\n") == 1, err
    state = tmp_path / "head.state.safetensors"
    state.write_bytes(state.read_bytes()[:100])
    assert main(common + ["--steps", "7", "--resume"]) == 2
    assert "cannot resume from it" in capsys.readouterr().err
