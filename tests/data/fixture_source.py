"""The annotations behind the fixtures made by real tools (tests/data/datumaro/, tests/data/labelme/): two small
images, two classes, polygons with integer vertices, and one bitmap. Read by tests/data/make_*_fixtures.py (run by
hand, with the tool) and by tests/test_real_tool_fixtures.py (which compares each import with these)."""

from __future__ import annotations

import numpy as np

CLASSES = ("cat", "dog")
SIZE = (32, 48)  # height, width of every image
# (image, class, [x0, y0, x1, y1, ...]) per instance, in file order
SHAPES = (
    ("a.png", "cat", [4, 4, 20, 4, 20, 16, 4, 16]),
    ("a.png", "dog", [26, 10, 44, 6, 40, 28, 28, 24]),
    ("b.png", "cat", [2, 2, 12, 2, 12, 12, 2, 12]),
    ("b.png", "cat", [30, 14, 46, 14, 46, 30, 30, 30]),
)


def image(name: str) -> np.ndarray:
    """The RGB pixels of image `name`: a smooth gradient, different per image."""
    h, w = SIZE
    seed = sum(map(ord, name))
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([(x * 5 + seed) % 256, (y * 7 + seed) % 256, ((x + y) * 3) % 256], -1).astype(np.uint8)


BITMAP = ("b.png", "dog", 14, 18)  # labelme's `mask` shape: this image, class and top-left corner (x, y) ...


def bitmap() -> np.ndarray:
    """... and its boolean pixels [10, 12]: a disc with a notch, which no polygon of the source has."""
    y, x = np.mgrid[0:10, 0:12]
    disc = (x - 5.5) ** 2 + (y - 4.5) ** 2 <= 20
    disc[4:6, 8:] = False
    return disc
