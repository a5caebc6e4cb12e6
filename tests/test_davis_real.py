"""PANet on real photographs (the shared DAVIS frames): a car from one video found in another."""
from __future__ import annotations

import numpy as np
import pytest

from annotator.crf import CRFParams, refine
from annotator.imageio import read_image, read_mask
from benchmarks import davis

pytestmark = pytest.mark.skipif(not davis.available(), reason=davis.ABSENT)


def _iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


@pytest.fixture(scope="module")
def car_episode(predictor):
    img, mask = (f(p) for f, p in zip((read_image, read_mask), davis.frames("car-roundabout")[0]))
    predictor.set_supports([(img, mask)])
    queries = [davis.frames("car-shadow")[i] for i in (0, 6, 12)]
    return [(read_image(i), read_mask(m)) for i, m in queries]


def test_one_shot_car_across_videos(predictor, car_episode):
    ious = [_iou(predictor.predict([im])[0].mask, gt) for im, gt in car_episode]
    # Measured __NOCRF__ (mean) with the offline VGG-16 at 417 px; the floor sits a few points below.
    assert np.mean(ious) > __NOCRF_FLOOR__, ious


def test_crf_sharpens_the_real_proposals(predictor, car_episode):
    ious, ious_crf = [], []
    for im, gt in car_episode:
        prob = predictor.fg_probability(predictor.encode([im])[0], im.shape[:2])
        ious.append(_iou(prob > 0.5, gt))
        ious_crf.append(_iou(refine(im, prob, CRFParams()) > 0.5, gt))
    # Measured __CRF__ with the CRF against __NOCRF__ without.
    assert np.mean(ious_crf) > __CRF_FLOOR__, ious_crf
    assert np.mean(ious_crf) > np.mean(ious), (ious, ious_crf)
