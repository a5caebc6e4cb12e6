"""Connected parts of masks: how many a support's mask has, a proposal's strongest parts, and the parts big
enough to be objects of an instance export.

A person who draws one object per image (the dancer, not the crowd; the moving car, not the parked ones)
teaches a count: proposals keep only as many parts as the supports have (benchmarks/labelling_effort.py).
"""

from __future__ import annotations

import cv2
import numpy as np


def count_parts(mask: np.ndarray, min_share: float = 0.1) -> int:
    """The 8-connected parts of a boolean mask that each hold at least `min_share` of its area (specks
    that are not objects do not count)."""
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    return int((areas >= min_share * areas.sum()).sum()) if n > 1 else 0


def strongest_parts(margin: np.ndarray, k: int) -> np.ndarray | None:
    """The boolean map of the `k` 8-connected parts of the foreground (logit `margin` > 0) with the most
    foreground probability summed over their pixels; None when the foreground has no more than `k` parts."""
    n, labels = cv2.connectedComponents((margin > 0).astype(np.uint8), connectivity=8)
    if n - 1 <= k:
        return None
    prob = 0.5 + 0.5 * np.tanh(0.5 * margin.astype(np.float64))  # the sigmoid, without overflow
    mass = np.bincount(labels.ravel(), weights=prob.ravel(), minlength=n)[1:]
    keep = np.argsort(-mass, kind="stable")[:k] + 1
    return np.isin(labels, keep)


def parts_of_at_least(mask: np.ndarray, min_area: int) -> list[np.ndarray]:
    """The 8-connected parts of a boolean mask, each as a boolean mask, in label order, leaving out those of
    fewer than `min_area` pixels (a dense CRF's speckle would otherwise export as many 1-pixel objects)."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return [labels == i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= min_area]
