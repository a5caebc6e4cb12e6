"""Images and masks the tests make: a red ball on textured clutter, written with OpenCV."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def scene(h: int, w: int, centre: tuple[int, int] | None, radius: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """An RGB image of textured grey-green clutter with, when `centre` is given, a red ball; and its mask."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 255, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
    img = cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)
    img = (img * np.array([0.35, 0.55, 0.35]) + np.array([60, 90, 60])).astype(np.uint8)
    mask = np.zeros((h, w), np.uint8)
    if centre is not None:
        cv2.circle(mask, centre, radius, 255, -1)
        ball = np.zeros_like(img)
        ball[..., 0] = 210
        ball[..., 1] = 30
        ball[..., 2] = 25
        img = np.where(mask[..., None] > 0, ball, img)
    return img, mask > 0


def write_rgb(path: Path, img: np.ndarray) -> Path:
    ok, buf = cv2.imencode(path.suffix, cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    assert ok
    buf.tofile(path)
    return path


def write_mask(path: Path, mask: np.ndarray) -> Path:
    ok, buf = cv2.imencode(".png", mask.astype(np.uint8) * 255)
    assert ok
    buf.tofile(path)
    return path
