"""Makes tests/data/datumaro/ with datumaro itself, from tests/data/fixture_source.py: the same two images and
four polygons exported by datumaro as CVAT for images XML, COCO instances and (the polygons rasterised by
datumaro's polygons_to_masks) Pascal VOC segmentation. Run by hand, from the repository root, in a virtual
environment with datumaro (see tests/data/README.md); the tests only read what it wrote."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import datumaro
from datumaro.components.annotation import Polygon
from datumaro.components.dataset import Dataset
from datumaro.components.dataset_base import DatasetItem
from datumaro.components.media import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.data.fixture_source import CLASSES, SHAPES, image  # noqa: E402

OUT = Path(__file__).resolve().parent / "datumaro"
FORMATS = ("cvat", "coco_instances", "voc_segmentation")


def main() -> None:
    items = []
    for name in sorted({s[0] for s in SHAPES}):
        anns = [
            Polygon(pts, label=CLASSES.index(c), id=i + 1, group=i + 1)
            for i, (n, c, pts) in enumerate(SHAPES)
            if n == name
        ]
        pixels = Image.from_numpy(image(name)[:, :, ::-1], ext=".png")  # datumaro holds BGR
        items.append(
            DatasetItem(id=name[:-4], media=pixels, annotations=anns, subset="train" if name == "a.png" else "val")
        )
    ds = Dataset.from_iterable(items, categories=list(CLASSES))
    for fmt in FORMATS:
        out = OUT / fmt
        shutil.rmtree(out, ignore_errors=True)
        (ds.transform("polygons_to_masks") if fmt.startswith("voc") else ds).export(str(out), fmt, save_media=True)
    print(f"wrote {', '.join(FORMATS)} into {OUT} with datumaro {datumaro.__version__}")


if __name__ == "__main__":
    main()
