"""The stateful predictor: device choice, out-of-memory batch halving, supports, and its output."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from annotator.inference.device import pick_device
from tests.synthetic import scene


def test_auto_device_falls_back_to_cpu_and_bad_names_are_refused():
    dev = pick_device("auto")
    assert dev.type in ("cuda", "mps", "cpu")
    if not torch.cuda.is_available():
        assert dev.type == "cpu"
        with pytest.raises(ValueError, match="no CUDA GPU"):
            pick_device("cuda")
    with pytest.raises(ValueError, match="not one of"):
        pick_device("gpu-please")


def test_out_of_memory_halves_the_batch_and_goes_on(predictor, monkeypatch):
    real = predictor._features
    sizes = []

    def flaky(x):
        sizes.append(len(x))
        if len(x) > 1:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(x)

    monkeypatch.setattr(predictor, "_features", flaky)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    monkeypatch.setattr(predictor, "batch_size", 4)
    images = [scene(64, 80, (40, 30), 12, seed=i)[0] for i in range(5)]
    feats = predictor.encode(images)
    assert feats.shape[0] == 5 and predictor.batch_size == 1
    assert sizes[:3] == [4, 2, 1]


def test_predict_before_supports_is_an_error():
    from annotator.build import build_model
    from annotator.inference.predictor import Predictor

    fresh = Predictor(build_model(), device="cpu", crf=None)
    with pytest.raises(RuntimeError, match="set_supports"):
        fresh.predict([np.zeros((32, 32, 3), np.uint8)])


def test_supports_are_validated(predictor):
    img, m = scene(64, 80, (40, 30), 12, seed=1)
    with pytest.raises(ValueError, match="empty"):
        predictor.set_supports([(img, np.zeros_like(m))])
    with pytest.raises(ValueError, match="size"):
        predictor.set_supports([(img, m[:10])])


def test_proposals_keep_the_image_size_and_score_their_mask(predictor):
    img, m = scene(90, 130, (50, 40), 20, seed=2)
    predictor.set_supports([(img, m)])
    query, qm = scene(70, 110, (70, 35), 18, seed=3)
    (prop,) = predictor.predict([query])
    assert prop.mask.shape == (70, 110) and prop.mask.dtype == bool
    assert not prop.empty and 0.5 < prop.score <= 1.0
    # Measured 0.58: without the CRF a stride-8 map overshoots a small ball's rim; 0.5 still fails a miss.
    assert (prop.mask & qm).sum() / (prop.mask | qm).sum() > 0.5


def test_an_input_of_the_images_own_aspect_is_taken_whole():
    """(height, width) input (issue 11: the squashed square thins what is already thin): features, their cache
    layout and tag follow that shape, and the proposals keep the image's size."""
    from annotator.build import build_model
    from annotator.config import parse_input_size
    from annotator.inference.predictor import Predictor

    assert parse_input_size("417") == 417 and parse_input_size("65x113") == (65, 113)
    for bad in ("", "x65", "65x", "1x2x3", "a"):
        with pytest.raises(ValueError, match="HEIGHTxWIDTH"):
            parse_input_size(bad)
    wide = Predictor(build_model(), device="cpu", crf=None, input_size=(97, 177))
    img, m = scene(90, 160, (45, 50), 16, seed=4)
    feats = wide.encode([img])
    assert tuple(feats.shape[1:]) == wide.feature_layout["features"][0] and feats.shape[-1] > feats.shape[-2] + 5
    assert "-97x177-" in wide.model_tag
    wide.set_supports([(img, m)])
    query, qm = scene(90, 160, (110, 40), 15, seed=5)
    (prop,) = wide.predict([query])
    assert prop.mask.shape == (90, 160)
    assert (prop.mask & qm).sum() / (prop.mask | qm).sum() > 0.5
