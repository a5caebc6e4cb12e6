"""Colour evidence of the supports' own scenes, seen at full resolution where stride-8 features blur edges.

Per support, histograms of the class's and of its background's CIE Lab colours (16 bins a channel). A query of a
support's scene (a video's other frame, told by learning.Learned.own_scenes) gets the log ratio of the two, summed
over those supports, added to its foreground logit before the CRF (benchmarks/labelling_effort.py). Another scene's
lighting makes colours mislead, so it gets nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

BINS = 16  # per Lab channel: 4,096 colours
_SHIFT = 4  # 256 // BINS == 1 << _SHIFT


def colour_bins(image: np.ndarray) -> np.ndarray:
    """[H,W] int32: each pixel's Lab colour bin (of BINS**3) in an RGB uint8 image [H,W,3]."""
    lab = (cv2.cvtColor(image, cv2.COLOR_RGB2LAB) >> _SHIFT).astype(np.int32)
    return (lab[..., 0] * BINS + lab[..., 1]) * BINS + lab[..., 2]


def _counts(bins: np.ndarray, where: np.ndarray) -> np.ndarray:
    return np.bincount(bins[where], minlength=BINS**3).astype(np.float64)


@dataclass
class ColourModel:
    """Per support: colour counts of the class [k,BINS**3] and of its background."""

    fg: np.ndarray
    bg: np.ndarray
    weight: float  # the log ratio's weight in the foreground logit

    @classmethod
    def fit(cls, images: Sequence[np.ndarray], masks: Sequence[np.ndarray], weight: float) -> ColourModel:
        """From the supports' RGB uint8 images and boolean masks of their size."""
        fg, bg = [], []
        for im, m in zip(images, masks, strict=True):
            bins, m = colour_bins(im), np.asarray(m, bool)
            fg.append(_counts(bins, m))
            bg.append(_counts(bins, ~m))
        return cls(np.stack(fg), np.stack(bg), weight)

    def logit(self, image: np.ndarray, own: np.ndarray | None) -> np.ndarray | None:
        """[H,W] float32 to add to the foreground logit of a query (RGB uint8 image), from the supports of its
        scene (`own`: [k] bool; None: all of them), a Laplace-smoothed log ratio; None where no support is."""
        if own is None:
            own = np.ones(len(self.fg), bool)
        if not own.any():
            return None
        fg, bg = self.fg[own].sum(0) + 1.0, self.bg[own].sum(0) + 1.0
        table = (self.weight * (np.log(fg / fg.sum()) - np.log(bg / bg.sum()))).astype(np.float32)
        return table[colour_bins(image)]
