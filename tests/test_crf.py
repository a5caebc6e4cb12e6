"""Dense-CRF refinement snaps a noisy, blurry probability map to the object's edges."""

from __future__ import annotations

import numpy as np
import pytest

from annotator.inference.crf import CRFParams, refine
from tests.synthetic import scene


def _iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


def _blurry(mask, seed=0):
    import cv2

    rng = np.random.default_rng(seed)
    small = cv2.resize(mask.astype(np.float32), (mask.shape[1] // 8, mask.shape[0] // 8), interpolation=cv2.INTER_AREA)
    prob = cv2.resize(small, (mask.shape[1], mask.shape[0]), interpolation=cv2.INTER_LINEAR)
    prob = np.clip(0.25 + 0.5 * cv2.GaussianBlur(prob, (0, 0), 6) + rng.normal(0, 0.15, prob.shape), 0, 1)
    return prob.astype(np.float32)


def test_crf_improves_a_coarse_prediction():
    img, mask = scene(240, 320, (170, 120), 60, seed=1)
    prob = _blurry(mask)
    before = _iou(prob > 0.5, mask)
    after = _iou(refine(img, prob) > 0.5, mask)
    assert after > before + 0.05 and after > 0.9


def test_crf_on_a_large_image_runs_downscaled_and_returns_full_size():
    img, mask = scene(1200, 1600, (800, 600), 300, seed=2)
    q = refine(img, _blurry(mask), CRFParams(max_side=400))
    assert q.shape == mask.shape
    assert _iou(q > 0.5, mask) > 0.85


def test_crf_refuses_mismatched_sizes():
    img, mask = scene(60, 80, (40, 30), 10, seed=3)
    with pytest.raises(ValueError, match="differ"):
        refine(img, np.zeros((10, 10), np.float32))


def test_closing_the_pool_at_once_stops_a_long_refinement_in_flight():
    import time

    from annotator.inference.crf import CRFPool

    img, m = scene(1500, 2000, (900, 700), 400, seed=4)  # 3 MP: seconds of CRF
    pool = CRFPool(1)
    fut = pool.submit(img, _blurry(m, seed=4), CRFParams())
    workers = list(pool._pool._processes.values())
    time.sleep(1.0)  # the worker has started on it
    assert not fut.done()
    t0 = time.perf_counter()
    pool.close(wait_s=0)
    assert time.perf_counter() - t0 < 2.0 and workers and not any(w.is_alive() for w in workers)


def test_crf_pool_gives_the_same_marginals_as_inline():
    from annotator.inference.crf import CRFPool

    scenes = [scene(120, 160, (60 + 10 * i, 60), 30, seed=i) for i in range(3)]
    images, probs = [im for im, _ in scenes], [_blurry(m, seed=i) for i, (_, m) in enumerate(scenes)]
    pool = CRFPool(2)
    try:
        got = [f.result()[0] for f in [pool.submit(im, p, CRFParams()) for im, p in zip(images, probs)]]
    finally:
        pool.close()
    for im, p, q in zip(images, probs, got):
        assert np.allclose(q, refine(im, p), atol=1e-6)
