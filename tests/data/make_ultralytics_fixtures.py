"""Makes tests/data/ultralytics/ with Ultralytics' own converter, from tests/data/fixture_source.py: the source
polygons as COCO files (one per subset, written here), turned into YOLO segmentation labels by
`ultralytics.data.converter.convert_coco(use_segments=True, cls91to80=False)`. The converter writes the labels
only: the images are copied beside them and `data.yaml` is written here, in the Ultralytics layout. Run by hand,
from the repository root, with ultralytics importable (see tests/data/README.md)."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import cv2
import ultralytics
from ultralytics.data.converter import convert_coco

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.data.fixture_source import CLASSES, SHAPES, SIZE, image  # noqa: E402

OUT = Path(__file__).resolve().parent / "ultralytics"
SUBSETS = {"a.png": "train", "b.png": "val"}


def main() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        for k, (name, subset) in enumerate(SUBSETS.items(), start=1):
            anns = []
            for i, (n, cls, pts) in enumerate(SHAPES, start=1):
                if n == name:
                    xs, ys = pts[::2], pts[1::2]
                    box = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
                    seg = [list(map(float, pts))]
                    anns.append(
                        {
                            "id": i,
                            "image_id": k,
                            "category_id": CLASSES.index(cls) + 1,
                            "segmentation": seg,
                            "bbox": box,
                            "area": box[2] * box[3],
                            "iscrowd": 0,
                        }
                    )
            coco = {
                "images": [{"id": k, "file_name": name, "height": SIZE[0], "width": SIZE[1]}],
                "annotations": anns,
                "categories": [{"id": i, "name": c} for i, c in enumerate(CLASSES, start=1)],
            }
            (Path(tmp) / f"instances_{subset}.json").write_text(json.dumps(coco))
        convert_coco(labels_dir=tmp, save_dir=str(OUT), use_segments=True, cls91to80=False)
    for name, subset in SUBSETS.items():
        (OUT / "images" / subset).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(OUT / "images" / subset / name), image(name)[:, :, ::-1])
    names = "\n".join(f"  {i}: {c}" for i, c in enumerate(CLASSES))
    (OUT / "data.yaml").write_text(f"train: images/train\nval: images/val\nnames:\n{names}\n")
    print(f"wrote {OUT} with ultralytics {ultralytics.__version__}")


if __name__ == "__main__":
    main()
