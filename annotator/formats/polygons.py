"""Masks as polygons that give back exactly the mask's pixels, for formats that only hold polygons (YOLO-seg,
labelme, CVAT): a polygon cannot hold a hole, so a mask with holes is cut into horizontal bands first."""

from __future__ import annotations

import cv2
import numpy as np


def hole_tops(mask: np.ndarray) -> list[int]:
    """The top row of each hole of a boolean mask (a 4-connected background region that does not reach the
    border; the foreground is 8-connected, as OpenCV traces it)."""
    bg = np.pad(~mask, 1, constant_values=True).astype(np.uint8)
    n, _, stats, _ = cv2.connectedComponentsWithStats(bg, connectivity=4)
    outside = 1  # the padding's component: label 1, as the padded corner is the first background pixel met
    return sorted({int(stats[i, cv2.CC_STAT_TOP]) - 1 for i in range(1, n) if i != outside})


def outline_polygons(mask: np.ndarray) -> list[np.ndarray]:
    """Polygons [K,2] of (x, y) whose union, rasterised at pixel centres (pycocotools, cv2.fillPoly), is exactly
    the boolean mask. Each runs a quarter pixel inside the mask's edges; a mask with holes is cut into bands at
    each hole's top row, which opens every hole to a band's edge, so no polygon encloses one."""
    out: list[np.ndarray] = []
    cuts = [0, *hole_tops(mask), mask.shape[0]]
    for top, bottom in zip(cuts[:-1], cuts[1:]):
        band = np.pad(mask[top:bottom], 1).astype(np.uint8)
        if not band.any():
            continue
        up = cv2.resize(band, (band.shape[1] * 2, band.shape[0] * 2), interpolation=cv2.INTER_NEAREST)
        contours, _ = cv2.findContours(up, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        for c in contours:
            xy = (c.reshape(-1, 2) + 0.5) / 2 - 1  # back from the 2x, padded grid to pixel coordinates
            xy[:, 1] += top
            out.append(xy)  # at least 4 points: the 2x grid makes every pixel a 2x2 block
    return out
