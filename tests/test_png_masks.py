"""Mask PNG folders in: the PNG export read back pixel for pixel, other tools' folders (a PNG per image by its stem,
RGB masks named by dataset_meta.json's colours), and bad folders named with nothing stored."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from PIL import Image

from annotator.cli import main
from annotator.formats.export import export_png
from annotator.formats.importers import detect_format
from annotator.formats.importing import ImportFormatError
from annotator.formats.png_masks import import_png
from tests.synthetic import cat_dog_project, mask_cases

H, W = 23, 31


def _project(root, files=("a.png", "sub/b.jpg", "c.png")):
    return cat_dog_project(root, H, W, files)


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    return _project(tmp_path_factory.mktemp("png") / "src")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cat=mask_cases(H, W), dog=mask_cases(H, W))
def test_the_png_export_reads_back_pixel_for_pixel_where_classes_do_not_overlap(src, tmp_path_factory, cat, dog):
    a, b = src.image_id("a.png"), src.image_id("sub/b.jpg")
    for image, class_id, m in ((a, 1, cat), (a, 2, dog), (b, 2, cat)):
        src.set_mask(image, class_id, m) if m.any() else src.clear_mask(image, class_id)
    out = tmp_path_factory.mktemp("out") / "masks"
    export_png(src, out)
    assert detect_format(out) == "png"
    dst = _project(tmp_path_factory.mktemp("dst"))
    n = import_png(dst, out)
    assert n["unmatched"] == [] and n["kept"] == 0
    for image, class_id, m in ((a, 1, cat & ~dog), (a, 2, dog), (b, 2, cat)):  # one class per pixel: dog wins
        got = dst.mask(dst.image_id(dst.images[image].file), class_id)
        assert np.array_equal(got if got is not None else np.zeros((H, W), bool), m)


def test_another_tools_folder_by_stem_in_rgb_named_by_dataset_meta(tmp_path, capsys):
    p = _project(tmp_path)
    p.save()
    out = tmp_path / "masks"
    (out / "sub").mkdir(parents=True)
    meta = {"label_map": {"0": "background", "1": "horse", "2": "dog"}, "segmentation_colors": [[0, 0, 0],
            [200, 10, 10], [10, 200, 10]], "background_label": "0"}  # fmt: skip
    (out / "dataset_meta.json").write_text(json.dumps(meta))
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[2:9, 3:12] = (200, 10, 10)
    rgb[12:20, 15:25] = (10, 200, 10)
    Image.fromarray(rgb).save(out / "sub" / "b.png")  # the mask of sub/b.jpg, named by its stem
    assert main(["import", str(p.folder), str(out), "--as", "proposed"]) == 0  # told by auto
    assert "imported 2 annotations as 2 masks on 1 images" in capsys.readouterr().out
    with type(p).open(p.folder, read_only=True) as q:
        b = q.image_id("sub/b.jpg")
        horse = q.class_named("horse")
        assert horse is not None and q.mask(b, horse).sum() == 63 and q.record(b, horse).state == "proposed"
        assert q.mask(b, q.class_named("dog")).sum() == 80


@pytest.mark.parametrize(
    ("setup", "words"),
    [
        (lambda d: None, "needs dataset_meta.json or palette.json"),
        (lambda d: (d / "palette.json").write_text("[1, 2]"), "palette.json: not a mask folder's label map"),
        (
            lambda d: (
                (d / "palette.json").write_text(json.dumps({"0": {"name": "background", "color": "#000000"}})),
                Image.fromarray(np.full((H, W), 3, np.uint8)).save(d / "a.png.png"),
            ),
            "a.png.png: value 3 names no class",
        ),  # fmt: skip
        (
            lambda d: (
                (d / "palette.json").write_text(json.dumps({"0": {"name": "background", "color": "#000000"}})),
                Image.fromarray(np.zeros((5, 5), np.uint8)).save(d / "a.png.png"),
            ),
            "a.png.png: 5x5 is not the image's size",
        ),  # fmt: skip
        (
            lambda d: (
                (d / "palette.json").write_text(json.dumps({"0": {"name": "background", "color": "#000000"}})),
                Image.fromarray(np.full((H, W, 3), 9, np.uint8)).save(d / "a.png.png"),
            ),
            r"the colour \(9, 9, 9\) is not in",
        ),  # fmt: skip
    ],
)
def test_a_bad_folder_is_named_and_nothing_stored(tmp_path, setup, words):
    p = _project(tmp_path / "p")
    d = tmp_path / "masks"
    d.mkdir()
    setup(d)
    with pytest.raises(ImportFormatError, match=words):
        import_png(p, d)
    assert p.records == {} and sorted(c.name for c in p.classes.values()) == ["cat", "dog"]


def test_an_import_holds_its_planned_masks_compressed_not_as_pixels(tmp_path):
    import tracemalloc

    n, side = 40, 1000  # 40 masks of a million pixels: 40 MB held as pixels until the import stores them
    files = tuple(f"{i:02d}.png" for i in range(n))
    p = cat_dog_project(tmp_path, side, side, files)
    out = tmp_path / "masks"
    out.mkdir()
    meta = {"label_map": {"0": "background", "1": "cat"}, "segmentation_colors": [[0, 0, 0], [1, 1, 1]]}
    (out / "dataset_meta.json").write_text(json.dumps(meta))
    m = np.zeros((side, side), np.uint8)
    m[100:700, 200:900] = 1
    for f in files:
        Image.fromarray(m).save(out / f)
    tracemalloc.start()
    try:
        counts = import_png(p, out)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert counts["masks"] == n and np.array_equal(p.mask(p.image_id("07.png"), 1), m.astype(bool))
    assert peak < 15 * side * side, f"peak {peak / 1e6:.0f} MB"  # a few maps at a time, not all 40
