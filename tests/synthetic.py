"""Images and masks the tests make: a red ball on textured clutter, written with OpenCV."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from hypothesis import strategies as st


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


@st.composite
def mask_cases(draw, h: int, w: int) -> np.ndarray:
    """Boolean masks that are hard to write and read back: random noise (parts, holes, pixels touching by a
    corner), a box with holes, single pixels, masks on the border, empty and full."""
    kind = draw(st.sampled_from(["random", "holes", "pixel", "border", "empty", "full"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    m = np.zeros((h, w), bool)
    if kind == "random":
        m = rng.random((h, w)) > draw(st.floats(0.05, 0.95))
    elif kind == "holes":
        m[2 : h - 3, 3 : w - 3] = True
        m[6:9, 8:12] = False
        m[12:15, w - 13 : w - 11] = False
    elif kind == "pixel":
        m[rng.integers(h), rng.integers(w)] = True
        m[rng.integers(h), rng.integers(w)] = True
    elif kind == "border":
        m[0, :] = m[:, -1] = True
    elif kind == "full":
        m[:] = True
    return m


def cat_dog_project(root: Path, h: int, w: int, files: tuple[str, ...] = ("a.png", "sub/b.png", "c.png")):
    """A project over `root`/images (clutter images of h x w named `files`, subfolders made) at `root`/proj, with
    the classes cat (1) and dog (2): what the format tests export from and import into."""
    from annotator.project.store import Project

    for k, f in enumerate(files):
        (root / "images" / f).parent.mkdir(parents=True, exist_ok=True)
        write_rgb(root / "images" / f, scene(h, w, None, 0, seed=k)[0])
    p = Project.create(root / "proj", root / "images")
    p.add_class("cat")
    p.add_class("dog")
    return p
