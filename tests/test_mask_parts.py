"""A proposal keeps as many connected parts as the supports have: the drawn object, not every one like it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from annotator.inference.learning import LearningConfig
from annotator.inference.mask_parts import count_parts, strongest_parts
from tests.synthetic import scene


def test_parts_are_counted_without_specks():
    m = np.zeros((60, 80), bool)
    assert count_parts(m) == 0
    m[5:25, 5:25] = True
    m[40:44, 70:74] = True  # a speck: 16 px of 416
    assert count_parts(m) == 1
    m[30:50, 30:50] = True
    assert count_parts(m) == 2
    m[24:31, 24:31] = True  # a bridge joins the two squares: one part (and the speck)
    assert count_parts(m) == 1


def test_the_strongest_parts_are_the_ones_with_the_most_probability_not_the_largest():
    margin = np.full((40, 60), -5.0)
    margin[2:22, 2:22] = 0.2  # large, unsure: 400 px at p = 0.55
    margin[25:35, 40:50] = 8.0  # small, sure: 100 px at p = 1.0
    assert strongest_parts(margin, 2) is None  # no more parts than asked for
    kept = strongest_parts(margin, 1)
    assert kept[2:22, 2:22].all() and not kept[25:35, 40:50].any()
    margin[5:22, 2:22] = -5.0  # the unsure part is now a 60 px strip
    kept = strongest_parts(margin, 1)
    assert kept[25:35, 40:50].all() and not kept[2:5, 2:22].any()


def _two_balls(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A scene with a large red ball and a smaller one apart from it, and the mask of both."""
    img, big = scene(120, 200, (55, 60), 26, seed=seed)
    small = np.zeros(big.shape, np.uint8)
    cv2.circle(small, (155, 60), 18, 1, -1)
    img[small > 0] = (210, 30, 25)
    return img, big | (small > 0)


@pytest.mark.parametrize("parts", [True, False])
def test_one_ball_drawn_per_image_keeps_one_ball_in_the_proposal(predictor, parts):
    supports = [scene(120, 200, c, 24, seed=s) for c, s in (((60, 60), 20), ((140, 50), 21))]
    query, both = _two_balls(22)
    predictor.learning = LearningConfig(parts=parts)
    try:
        predictor.set_supports(supports)
        assert predictor.learned.parts == (1 if parts else 0)
        mask = predictor.predict([query])[0].mask
    finally:
        predictor.learning = LearningConfig()
    left, right = mask[:, :110].mean(), mask[:, 110:].mean()
    assert left > 0.1, left  # the larger ball is proposed either way
    if parts:
        assert right == 0.0, right  # the other ball is dropped
    else:
        assert right > 0.03, right  # without the count both are proposed


def test_supports_with_two_objects_keep_two(predictor):
    supports = [_two_balls(s) for s in (23, 24)]
    query, both = _two_balls(25)
    predictor.set_supports(supports)
    assert predictor.learned.parts == 2
    mask = predictor.predict([query])[0].mask
    assert mask[:, :110].mean() > 0.1 and mask[:, 110:].mean() > 0.03
