"""On a CUDA GPU, the learning loop runs on the device and proposes what it proposes on the CPU.

Skipped without a GPU (CI has none); run on one with `pytest tests/test_cuda.py`.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from annotator.build import build_model
from annotator.inference.predictor import Predictor
from tests.synthetic import scene

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")


def _loop(device: str, precision: str) -> tuple[Predictor, list[np.ndarray], list[float]]:
    """Two supports (the fitted head decides alone), a rejected decoy, and the folder's features (Tent and the
    presence gap): the masks and presence scores of a ball scene and a class-free one."""
    supports = [scene(120, 160, c, 26, seed=s) for c, s in (((60, 70), 10), ((100, 50), 11))]
    decoy, _ = scene(120, 160, None, 0, seed=60)
    decoy[20:60, 30:70] = (210, 30, 25)
    queries = [scene(120, 160, (80, 60), 24, seed=12)[0], scene(120, 160, None, 0, seed=13)[0]]
    p = Predictor(build_model(), device=device, crf=None, precision=precision)
    folder = list(p.encode(queries))
    p.set_supports(supports, negatives=[(decoy, np.ones(decoy.shape[:2], bool))], folder=folder)
    out = p.predict(queries)
    return p, [o.mask for o in out], [o.score or 0.0 for o in out]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum()) / max(float((a | b).sum()), 1.0)


def test_learning_on_the_gpu_gives_the_cpus_proposals():
    gpu, gpu_masks, gpu_scores = _loop("cuda", "fp32")
    _, cpu_masks, cpu_scores = _loop("cpu", "fp32")
    assert gpu.learned.head.conv.weight.device.type == "cuda" and gpu.learned.head_alone
    assert _iou(gpu_masks[0], cpu_masks[0]) > 0.97, (gpu_masks[0].mean(), cpu_masks[0].mean())
    assert gpu_masks[0].mean() > 0.05  # the ball is found
    assert abs(gpu_masks[1].mean() - cpu_masks[1].mean()) < 0.005
    assert np.allclose(gpu_scores, cpu_scores, atol=0.01), (gpu_scores, cpu_scores)


def test_the_gpus_default_half_precision_learns_too():
    p, masks, _ = _loop("cuda", "auto")
    assert p.precision in (torch.bfloat16, torch.float16)
    truth = scene(120, 160, (80, 60), 24, seed=12)[1] > 0
    assert _iou(masks[0], truth) > 0.6 and masks[1].mean() < 0.01, (_iou(masks[0], truth), masks[1].mean())
