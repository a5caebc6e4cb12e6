"""Makes tests/data/labelme/ with labelme's own code, from tests/data/fixture_source.py: the two images, and per
image a labelme JSON whose shapes are labelme Shape objects (a polygon per source polygon, with its instance as
group_id, and the source bitmap as a `mask` shape) turned into JSON by the app's own _shape_to_dict and written
by write_label_file. Run by hand, from the repository root, with labelme (see tests/data/README.md)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
import labelme  # noqa: E402
import PIL.Image  # noqa: E402
from labelme._label_file import write_label_file  # noqa: E402
from labelme._shape import Shape  # noqa: E402
from labelme.app import _shape_to_dict  # noqa: E402
from PyQt5.QtCore import QPointF  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.data.fixture_source import BITMAP, SHAPES, SIZE, bitmap, image  # noqa: E402

OUT = Path(__file__).resolve().parent / "labelme"


def main() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    for name in sorted({s[0] for s in SHAPES}):
        PIL.Image.fromarray(image(name)).save(OUT / name)
        shapes = []
        for k, (n, cls, pts) in enumerate(SHAPES, start=1):
            if n == name:
                shape = Shape(label=cls, shape_type="polygon", group_id=k)
                for x, y in zip(pts[::2], pts[1::2]):
                    shape.add_point(QPointF(x, y))
                shapes.append(_shape_to_dict(shape))
        if BITMAP[0] == name:
            _, cls, x0, y0 = BITMAP
            m = bitmap()
            shape = Shape(label=cls, shape_type="mask", group_id=len(SHAPES) + 1)
            shape.add_point(QPointF(x0, y0))
            shape.add_point(QPointF(x0 + m.shape[1] - 1, y0 + m.shape[0] - 1))
            shape.mask = m
            shapes.append(_shape_to_dict(shape))
        write_label_file(
            str(OUT / f"{name[:-4]}.json"), shapes=shapes, image_path=name, image_height=SIZE[0], image_width=SIZE[1]
        )
    print(f"wrote {OUT} with labelme {labelme.__version__}")


if __name__ == "__main__":
    main()
