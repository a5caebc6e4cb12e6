"""Pascal VOC segmentation out and in: the layout datumaro reads, masks back pixel for pixel, bad folders named."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from PIL import Image

from annotator.cli import main
from annotator.formats.export import ExportOptions
from annotator.formats.importing import ImportFormatError
from annotator.formats.voc import PALETTE, export_voc, import_voc
from tests.synthetic import cat_dog_project, mask_cases

H, W = 23, 31


def _project(root, files=("a.png", "sub/b.png", "c.png")):
    return cat_dog_project(root, H, W, files)


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    return _project(tmp_path_factory.mktemp("voc") / "src")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cat=mask_cases(H, W), dog=mask_cases(H, W))
def test_round_trip_is_pixel_exact_where_classes_do_not_overlap(src, tmp_path_factory, cat, dog):
    a = src.image_id("a.png")
    for class_id, m in ((1, cat), (2, dog)):
        src.set_mask(a, class_id, m) if m.any() else src.clear_mask(a, class_id)
    out = tmp_path_factory.mktemp("out")
    export_voc(src, out / "ds", ExportOptions(min_area=0))  # every pixel, specks too (the default leaves them out)
    dst = _project(tmp_path_factory.mktemp("dst"))
    n = import_voc(dst, out / "ds")
    assert n["unmatched"] == [] and n["kept"] == 0
    for class_id, m in ((1, cat & ~dog), (2, dog)):  # one class per pixel: the later class (dog) takes it
        got = dst.mask(dst.image_id("a.png"), class_id)
        assert np.array_equal(got if got is not None else np.zeros((H, W), bool), m)


def test_the_layout_palette_labelmap_subsets_and_objects(tmp_path):
    p = _project(tmp_path)
    a, b, c = (p.image_id(f) for f in ("a.png", "sub/b.png", "c.png"))
    m = np.zeros((H, W), bool)
    m[3:9, 4:12] = True
    m[15:20, 20:28] = True  # two parts: two objects
    p.set_mask(a, 2, m)
    p.set_mask(b, 1, m)
    for class_id in (1, 2):
        p.set_proposal(c, class_id, m, 0.5, {})
        p.set_state(c, class_id, "rejected")  # c has neither class: all background
    n = export_voc(p, tmp_path / "ds", ExportOptions(val_fraction=0.34, seed=1))
    assert n == {"images": 3, "objects": 4, "val": 1, "skipped": []}
    ds = tmp_path / "ds"
    assert (ds / "labelmap.txt").read_text().splitlines() == [
        "# label:color_rgb:parts:actions",
        "background:0,0,0::",
        "cat:128,0,0::",
        "dog:0,128,0::",
    ]
    listed = sorted((ds / "ImageSets/Segmentation/train.txt").read_text().split())
    listed += (ds / "ImageSets/Segmentation/val.txt").read_text().split()
    assert sorted(listed) == ["a", "c", "sub/b"]
    with Image.open(ds / "SegmentationClass/a.png") as img:
        assert img.mode == "P" and img.getpalette()[:9] == [0, 0, 0, 128, 0, 0, 0, 128, 0]
        assert np.array_equal(np.asarray(img), np.where(m, 2, 0))
    with Image.open(ds / "SegmentationObject/sub/b.png") as img:
        assert sorted(np.unique(np.asarray(img))) == [0, 1, 2]  # the two parts are two objects
    with Image.open(ds / "SegmentationClass/c.png") as img:
        assert not np.asarray(img).any()
    assert PALETTE[3 * 3 : 3 * 3 + 3] == [128, 128, 0]  # the devkit's colour map


def test_objects_come_back_as_instances_through_the_cli(tmp_path):
    p = _project(tmp_path / "a")
    labels = np.zeros((H, W), np.uint8)
    labels[2:8, 2:8], labels[2:8, 9:15] = 1, 2  # two touching dogs the user told apart
    p.set_mask(p.image_id("a.png"), 2, labels)
    p.save()
    assert main(["export", str(tmp_path / "a" / "proj"), "--format", "voc", "--out", str(tmp_path / "ds")]) == 0
    dst = _project(tmp_path / "b")
    dst.save()
    dst.close()
    assert (
        main(["import", str(tmp_path / "b" / "proj"), str(tmp_path / "ds")]) == 0
    )  # auto: labelmap.txt + SegmentationClass
    from annotator.project.store import Project

    with Project.open(tmp_path / "b" / "proj") as again:
        got = again.labels(again.image_id("a.png"), 2)
    assert np.array_equal(got, labels)


def test_bad_folders_are_named(tmp_path):
    p = _project(tmp_path / "p")
    with pytest.raises(ImportFormatError, match="not a VOC segmentation folder"):
        import_voc(p, tmp_path)
    ds = tmp_path / "ds"
    (ds / "SegmentationClass").mkdir(parents=True)
    (ds / "labelmap.txt").write_text("background:0,0,0::\ncat:128,0,0::\n")
    Image.fromarray(np.full((H, W), 5, np.uint8), mode="L").save(ds / "SegmentationClass/a.png")
    with pytest.raises(ImportFormatError, match="a.png: class index 5 is not in labelmap.txt"):
        import_voc(p, ds)
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[0, 0] = (1, 2, 3)
    Image.fromarray(rgb).save(ds / "SegmentationClass/a.png")
    with pytest.raises(ImportFormatError, match=r"a.png: the colour \(1, 2, 3\) is not in labelmap.txt"):
        import_voc(p, ds)
    Image.fromarray(np.zeros((H, W, 4), np.uint8)).save(ds / "SegmentationClass/a.png")
    with pytest.raises(ImportFormatError, match="palette, grey or RGB, not RGBA"):
        import_voc(p, ds)
    (ds / "labelmap.txt").write_text("background:0,0,0::\ncat:128,x,0::\n")
    with pytest.raises(ImportFormatError, match=r"labelmap.txt:2: the colour '128,x,0' is not R,G,B"):
        import_voc(p, ds)
    assert p.records == {}
