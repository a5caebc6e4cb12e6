"""Files made by the real tools read back right: datumaro's own CVAT XML, COCO instances and Pascal VOC exports,
labelme's own JSON and Ultralytics' own YOLO segmentation labels, of tests/data/fixture_source.py (made by
tests/data/make_*_fixtures.py; see tests/data/README.md), are imported and compared with the polygons they were
made from, VOC with its own PNGs and labelme's bitmap shape pixel for pixel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from annotator.cli import main
from annotator.project.store import Project
from tests.data.fixture_source import BITMAP, CLASSES, SHAPES, SIZE, bitmap

VOC_COLOURS = ((128, 0, 0), (0, 128, 0))  # VOC's colour map at indices 1 and 2, the labelmap's cat and dog
DATA = Path(__file__).resolve().parent / "data"
LABELME = DATA / "labelme"


def _truth() -> dict[tuple[str, str], list[np.ndarray]]:
    """(image, class) -> the source polygons' masks, rasterised the COCO way (pycocotools)."""
    out: dict[tuple[str, str], list[np.ndarray]] = {}
    for image, cls, pts in SHAPES:
        rle = mask_utils.frPyObjects([list(map(float, pts))], *SIZE)
        out.setdefault((image, cls), []).append(mask_utils.decode(mask_utils.merge(rle)).astype(bool))
    return out


def _imported(tmp_path, images: Path, sources: list[Path], fmt: str, capsys) -> Project:
    folder = tmp_path / "proj"
    Project.create(folder, images).save()
    for src in sources:
        assert main(["import", str(folder), str(src), "--format", fmt]) == 0, capsys.readouterr().err
    capsys.readouterr()
    return Project.open(folder, read_only=True)


def _instances(proj: Project, image: str, cls: str) -> list[np.ndarray]:
    class_id = next(c.id for c in proj.classes.values() if c.name == cls)
    image_id = next(i for i, e in proj.images.items() if e.file.rsplit("/", 1)[-1] == image)  # COCO's: train/a.png
    labels = proj.labels(image_id, class_id)
    return [] if labels is None else [labels == k for k in np.unique(labels) if k]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return (a & b).sum() / max((a | b).sum(), 1)


@pytest.mark.parametrize(
    ("fmt", "images", "sources"),
    [
        ("cvat", "datumaro/cvat/images", ["datumaro/cvat/train.xml", "datumaro/cvat/val.xml"]),
        (
            "coco",
            "datumaro/coco_instances/images",
            [f"datumaro/coco_instances/annotations/instances_{s}.json" for s in ("train", "val")],
        ),
        ("yolo-seg", "ultralytics/images", ["ultralytics"]),  # labels by Ultralytics' convert_coco
    ],
)
def test_polygon_files_of_the_tools_import_as_the_source_instances(tmp_path, capsys, fmt, images, sources):
    with _imported(tmp_path, DATA / images, [DATA / s for s in sources], fmt, capsys) as proj:
        assert sorted(c.name for c in proj.classes.values()) == sorted(CLASSES)
        for (image, cls), want in _truth().items():
            got = _instances(proj, image, cls)
            assert len(got) == len(want), (image, cls)
            for w in want:  # each source polygon is one instance, within a pixel's rasterisation of its edges
                assert max(_iou(w, g) for g in got) > 0.9, (image, cls)


def test_datumaros_voc_segmentation_imports_pixel_for_pixel(tmp_path, capsys):
    voc = DATA / "datumaro" / "voc_segmentation"
    with _imported(tmp_path, voc / "JPEGImages", [voc], "voc", capsys) as proj:
        for image in ("a.png", "b.png"):
            cls_rgb = np.array(Image.open(voc / "SegmentationClass" / image).convert("RGB"))
            obj_rgb = np.array(Image.open(voc / "SegmentationObject" / image).convert("RGB"))
            for cls, colour in zip(CLASSES, VOC_COLOURS):  # datumaro writes RGB masks in VOC's colours
                here = (cls_rgb == colour).all(-1)
                got = _instances(proj, image, cls)
                assert np.array_equal(np.logical_or.reduce(got) if got else np.zeros_like(here), here)
                assert len(got) == len(np.unique(obj_rgb[here], axis=0))  # one instance per object colour
                truth = _truth().get((image, cls), [])
                assert len(got) == len(truth) and all(max(_iou(t, g) for g in got) > 0.9 for t in truth)


def test_labelmes_own_files_import_as_the_source_instances_and_its_bitmap_pixel_for_pixel(tmp_path, capsys):
    truths = _truth()
    with _imported(tmp_path, LABELME, [LABELME], "labelme", capsys) as proj:
        for image, cls in set(truths) | {BITMAP[:2]}:
            want, got = truths.get((image, cls), []), _instances(proj, image, cls)
            if (image, cls) == BITMAP[:2]:
                _, _, x0, y0 = BITMAP
                m = bitmap()
                truth = np.zeros(SIZE, bool)
                truth[y0 : y0 + m.shape[0], x0 : x0 + m.shape[1]] = m
                assert len(got) == len(want) + 1 and any(np.array_equal(g, truth) for g in got)
                got = [g for g in got if not np.array_equal(g, truth)]
            assert len(got) == len(want), (image, cls)
            for w in want:
                assert max(_iou(w, g) for g in got) > 0.9, (image, cls)
