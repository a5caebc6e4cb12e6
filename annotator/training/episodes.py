"""Training episodes for SG-One: superpixel pseudo-classes on unlabelled images, or real masks.

Self-supervised: an image's superpixels (SLIC-like k-means over colour and position, OpenCV) are
pseudo-classes; support and query are two augmented views of the same image (colour jitter, blur,
flip, crop, affine), so one region must be found again after the image changed. Labelled: the class
masks of a COCO file or of image/mask pairs, with support and query from different images of a class.
"""

from __future__ import annotations

import cv2
import numpy as np

IGNORE = -1  # label of pixels an affine warp brought in from outside the image


def superpixels(image: np.ndarray, n: int = 12, seed: int = 0, work_side: int = 64) -> np.ndarray:
    """Label map [H,W] int32 of connected regions (0..R-1) from k-means over Lab colour and position."""
    h, w = image.shape[:2]
    s = work_side / max(h, w)
    small = cv2.resize(image, (max(2, round(w * s)), max(2, round(h * s))), interpolation=cv2.INTER_AREA)
    lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB).astype(np.float32)
    sh, sw = lab.shape[:2]
    yy, xx = np.mgrid[0:sh, 0:sw].astype(np.float32)
    spatial = 255.0 / max(sh, sw)  # position weighs about as much as colour: compact, colour-coherent regions
    data = np.concatenate([lab.reshape(-1, 3), (yy.reshape(-1, 1) * spatial), (xx.reshape(-1, 1) * spatial)], 1)
    cv2.setRNGSeed(seed)
    k = min(n, len(data))
    _, labels, _ = cv2.kmeans(
        data, k, None, (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5), 2, cv2.KMEANS_PP_CENTERS
    )
    clusters = labels.reshape(sh, sw).astype(np.int32)
    out = np.zeros((sh, sw), np.int32)
    nxt = 0
    for c in range(k):
        count, comp = cv2.connectedComponents((clusters == c).astype(np.uint8), connectivity=4)
        for j in range(1, count):
            out[comp == j] = nxt
            nxt += 1
    return cv2.resize(out, (w, h), interpolation=cv2.INTER_NEAREST)


def augment(image: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random view of (image, label map): crop, flip, affine, colour jitter and blur. Labels follow the
    geometry (nearest neighbour); pixels from outside the image are IGNORE."""
    h, w = image.shape[:2]
    area = rng.uniform(0.5, 1.0)
    ch, cw = max(8, int(h * np.sqrt(area))), max(8, int(w * np.sqrt(area)))
    y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    img, lab = image[y0 : y0 + ch, x0 : x0 + cw], labels[y0 : y0 + ch, x0 : x0 + cw]
    if rng.random() < 0.5:
        img, lab = img[:, ::-1], lab[:, ::-1]
    m = cv2.getRotationMatrix2D((cw / 2, ch / 2), float(rng.uniform(-15, 15)), float(rng.uniform(0.9, 1.1)))
    img = cv2.warpAffine(np.ascontiguousarray(img), m, (cw, ch), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    lab = cv2.warpAffine(
        np.ascontiguousarray(lab).astype(np.float32),
        m,
        (cw, ch),
        flags=cv2.INTER_NEAREST,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=IGNORE,
    ).astype(np.int32)
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-8, 8)) % 180
    hsv[..., 1] *= rng.uniform(0.7, 1.3)
    hsv[..., 2] *= rng.uniform(0.7, 1.3)
    img = cv2.cvtColor(hsv.clip(0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB)
    if rng.random() < 0.5:
        img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.5, 1.5)))
    return img, lab


def usable_regions(labels: np.ndarray, min_frac: float = 0.03, max_frac: float = 0.6) -> list[int]:
    """Region ids covering between min_frac and max_frac of the labelled pixels: learnable pseudo-classes."""
    valid = labels[labels != IGNORE]
    if valid.size == 0:
        return []
    ids, counts = np.unique(valid, return_counts=True)
    frac = counts / valid.size
    return [int(i) for i, f in zip(ids, frac) if min_frac <= f <= max_frac]
