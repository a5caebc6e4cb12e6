"""labelme JSON out and in: a file per image that labelme opens, masks back pixel for pixel, labelme's own shapes
(rectangles, circles, bitmap masks, grouped polygons) read, and bad files named."""

from __future__ import annotations

import base64
import json

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from annotator.cli import main
from annotator.formats.export import ExportError, ExportOptions
from annotator.formats.importing import ImportFormatError
from annotator.formats.labelme import export_labelme, import_labelme
from annotator.project.store import Project
from tests.synthetic import cat_dog_project, mask_cases

H, W = 23, 31


def _project(root, files=("a.png", "sub/b.png", "c.png")):
    return cat_dog_project(root, H, W, files)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return _project(tmp_path_factory.mktemp("labelme") / "src")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cat=mask_cases(H, W), dog=mask_cases(H, W))
def test_round_trip_is_pixel_exact(pair, tmp_path_factory, cat, dog):
    src = pair
    a = src.image_id("a.png")
    for class_id, m in ((1, cat), (2, dog)):
        src.set_mask(a, class_id, m) if m.any() else src.clear_mask(a, class_id)
    out = tmp_path_factory.mktemp("out") / "lm"
    export_labelme(src, out)
    if not (cat.any() or dog.any()):  # nothing to export: no file
        assert not list(out.rglob("*.json"))
        return
    dst = _project(tmp_path_factory.mktemp("dst"))
    n = import_labelme(dst, out)
    assert n["unmatched"] == [] and n["kept"] == 0
    for class_id, m in ((1, cat), (2, dog)):
        got = dst.mask(dst.image_id("a.png"), class_id)
        assert np.array_equal(got if got is not None else np.zeros((H, W), bool), m)


def test_the_files_are_labelmes_layout_with_instances_grouped(tmp_path):
    p = _project(tmp_path)
    b = p.image_id("sub/b.png")
    labels = np.zeros((H, W), np.uint8)
    labels[2:8, 2:10] = 1
    labels[12:20, 15:25] = 2
    labels[14:17, 18:21] = 0  # a hole: the instance is written as bands sharing its group_id
    p.set_mask(b, 1, labels)
    out = tmp_path / "out"
    n = export_labelme(p, out, ExportOptions(instances=True))
    doc = json.loads((out / "sub" / "b.json").read_text())
    assert n["images"] == 1 and n["shapes"] == len(doc["shapes"]) >= 3
    assert (doc["imageHeight"], doc["imageWidth"], doc["imageData"]) == (H, W, None)
    assert (out / "sub" / doc["imagePath"]).resolve() == p.image_path(b).resolve()  # relative to the file
    assert {s["label"] for s in doc["shapes"]} == {"cat"} and {s["group_id"] for s in doc["shapes"]} == {1, 2}
    assert all(s["shape_type"] == "polygon" and len(s["points"]) >= 3 for s in doc["shapes"])
    dst = _project(tmp_path / "again")
    import_labelme(dst, out)
    got = dst.labels(dst.image_id("sub/b.png"), 1)
    assert got.max() == 2 and np.array_equal(got > 0, labels > 0)  # two instances, the hole kept


def test_labelmes_own_shapes_are_read(tmp_path):
    """A file as labelme 5 writes it: a polygon, a rectangle, a circle, a bitmap mask, two polygons of one group,
    a line (no area), and imagePath relative to the file."""
    p = _project(tmp_path)
    small = np.zeros((4, 5), np.uint8)
    small[1:3, 1:4] = 255
    png = base64.b64encode(cv2.imencode(".png", small)[1].tobytes()).decode()

    def shape(label, kind, points, group=None, **extra):
        return {"label": label, "points": points, "group_id": group, "shape_type": kind, "flags": {}, **extra}

    doc = {
        "version": "5.4.1",
        "flags": {},
        "shapes": [
            shape("cat", "polygon", [[1, 1], [8, 1], [8, 6], [1, 6]]),
            shape("dog", "rectangle", [[20, 15], [10, 10]]),
            shape("dog", "circle", [[25, 5], [25, 8]]),
            shape("cat", "mask", [[20, 18], [24, 21]], mask=png),
            shape("cat", "polygon", [[1, 15], [4, 15], [4, 20], [1, 20]], group=7),
            shape("cat", "polygon", [[6, 15], [9, 15], [9, 20], [6, 20]], group=7),
            shape("cat", "line", [[0, 0], [10, 10]]),
        ],
        "imagePath": "../images/c.png",
        "imageData": None,
        "imageHeight": H,
        "imageWidth": W,
    }
    (tmp_path / "lm").mkdir()
    (tmp_path / "lm" / "c.json").write_text(json.dumps(doc))
    n = import_labelme(p, tmp_path / "lm" / "c.json")
    c = p.image_id("c.png")
    assert n["images"] == 1 and n["annotations"] == 6 and n["unusable"] == 1
    cat, dog = p.labels(c, 1), p.labels(c, 2)
    assert cat.max() == 3  # the polygon, the bitmap, and the group of two polygons: three instances
    assert cat[3, 4] and cat[19, 21] and cat[17, 2] and cat[17, 7] and cat[17, 2] == cat[17, 7]
    assert not cat[17, 5]  # between the group's two polygons
    assert dog[12, 15] and dog[5, 25] and not dog[0, 0] and dog.max() == 2


@pytest.mark.parametrize(
    "change, says",
    [
        (lambda d: d.update(shapes="x"), "not a labelme file"),
        (lambda d: d["shapes"][0].update(points=[[0, "a"], [1, 1], [2, 2]]), "'points'"),
        (lambda d: d["shapes"][0].update(points=[[0, 0], [1, 1]]), "at least 3 points"),
        (lambda d: d["shapes"][0].update(points=[[0, 0], [1e999, 1], [2, 2]]), "finite"),
        (lambda d: d["shapes"][0].update(label=""), "needs a 'label'"),
        (lambda d: d.update(imageHeight=H + 1), "differ from the image's"),
        (lambda d: d["shapes"][0].update(shape_type="mask", mask="not base64!"), "not a base64 PNG"),
    ],
)
def test_a_bad_file_is_named_and_nothing_is_stored(tmp_path, capsys, change, says):
    p = _project(tmp_path)
    p.save()
    p.close()
    doc = {
        "shapes": [{"label": "cat", "points": [[1, 1], [8, 1], [8, 6]], "shape_type": "polygon"}],
        "imagePath": "a.png",
        "imageHeight": H,
        "imageWidth": W,
    }
    (tmp_path / "lm").mkdir()
    (tmp_path / "lm" / "ok.json").write_text(json.dumps({**doc, "imagePath": "c.png"}))  # read first, fine
    change(doc)
    (tmp_path / "lm" / "z_bad.json").write_text(json.dumps(doc, allow_nan=True).replace("Infinity", "1e999"))
    rc = main(["import", str(tmp_path / "proj"), str(tmp_path / "lm")])
    err = capsys.readouterr().err
    assert rc == 2 and says in err and "z_bad.json" in err and len(err.strip().splitlines()) == 1
    with Project.open(tmp_path / "proj") as again:
        assert again.records == {} or all(r.state != "accepted" for r in again.records.values())


def test_cli_export_and_auto_import_of_a_folder(tmp_path, capsys):
    p = _project(tmp_path)
    m = np.zeros((H, W), bool)
    m[4:10, 5:15] = True
    p.set_mask(p.image_id("a.png"), 2, m)
    p.save()
    p.close()
    assert main(["export", str(tmp_path / "proj"), "--format", "labelme", "--out", str(tmp_path / "lm")]) == 0
    assert "wrote 1 labelme file, 1 shape to" in capsys.readouterr().out
    dst = _project(tmp_path / "dst")
    dst.save()
    dst.close()
    assert main(["import", str(tmp_path / "dst" / "proj"), str(tmp_path / "lm")]) == 0  # a folder: labelme
    with Project.open(tmp_path / "dst" / "proj") as again:
        assert np.array_equal(again.mask(again.image_id("a.png"), 2), m)


def test_images_sharing_a_stem_are_refused_before_writing(tmp_path):
    p = _project(tmp_path, files=("a.png", "a.jpg"))
    m = np.zeros((H, W), bool)
    m[2:5, 2:5] = True
    for f in ("a.png", "a.jpg"):
        p.set_mask(p.image_id(f), 1, m)
    with pytest.raises(ExportError, match="would share one"):
        export_labelme(p, tmp_path / "out")
    assert not list((tmp_path / "out").rglob("*.json"))


def test_not_labelme_at_all(tmp_path):
    p = _project(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImportFormatError, match="no labelme"):
        import_labelme(p, tmp_path / "empty")


def test_many_shapes_on_a_large_image_are_drawn_one_instance_at_a_time(tmp_path):
    """300 instances of a 1,000 x 1,000 image: the map holds them, not 300 full-size masks side by side."""
    import tracemalloc

    p = cat_dog_project(tmp_path, 1000, 1000, files=("a.png",))
    shapes = [
        {"label": "cat", "points": [[x, 100], [x + 2, 900]], "shape_type": "rectangle"}
        for x in np.linspace(0, 990, 300).tolist()
    ]
    (tmp_path / "a.json").write_text(json.dumps({"shapes": shapes, "imagePath": "a.png"}))
    tracemalloc.start()
    n = import_labelme(p, tmp_path / "a.json")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert n["annotations"] == 300 and p.labels(p.image_id("a.png"), 1).max() >= 290
    assert peak < 40e6, peak  # 300 boolean masks side by side were 300 MB
