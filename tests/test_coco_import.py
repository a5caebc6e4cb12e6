"""Importing COCO (RLE and polygons) into a project, and clear messages for bad entries."""
from __future__ import annotations

import json

import numpy as np
import pytest

from annotator.cli import main
from annotator.coco import encode_rle
from annotator.coco_import import CocoImportError, import_coco
from annotator.project import Project
from tests.synthetic import scene, write_rgb


@pytest.fixture
def proj(tmp_path):
    (tmp_path / "images").mkdir()
    for n in ("a.png", "b.png"):
        write_rgb(tmp_path / "images" / n, scene(20, 30, None, 0, seed=1)[0])
    return Project.create(tmp_path / "proj", tmp_path / "images")


def _coco(tmp_path, anns, images=None, name="in.json"):
    images = images or [{"id": 7, "file_name": "a.png", "height": 20, "width": 30}]
    path = tmp_path / name
    path.write_text(json.dumps({"images": images, "annotations": anns,
                                "categories": [{"id": 3, "name": "cat"}, {"id": 4, "name": "dog"}]}))
    return path


def test_rle_and_polygon_annotations_become_masks_with_instances(proj, tmp_path):
    m = np.zeros((20, 30), bool)
    m[2:8, 3:9] = True
    m[4:6, 5:7] = False  # a hole, only RLE keeps it
    anns = [
        {"id": 1, "image_id": 7, "category_id": 3, "segmentation": encode_rle(m), "iscrowd": 0},
        {"id": 2, "image_id": 7, "category_id": 3, "segmentation": [[20, 10, 28, 10, 28, 18, 20, 18]], "iscrowd": 0},
        {"id": 3, "image_id": 7, "category_id": 4, "segmentation": [[0, 0, 5, 0, 5, 5, 0, 5]], "iscrowd": 0},
    ]
    n = import_coco(proj, _coco(tmp_path, anns))
    assert n == {"images": 1, "masks": 2, "annotations": 3}
    a = proj.image_id("a.png")
    cat_id = next(c.id for c in proj.classes.values() if c.name == "cat")
    labels = proj.labels(a, cat_id)
    assert np.array_equal(labels == 1, m)  # pixel-exact, hole included
    assert (labels == 2).sum() == 64 and proj.record(a, cat_id).state == "accepted"


@pytest.mark.parametrize("bad, words", [
    ({"images": [{"id": 1, "file_name": "nope.png", "height": 20, "width": 30}]}, "'nope.png' .* not in the project"),
    ({"images": [{"id": 1, "file_name": "a.png", "height": 21, "width": 30}]}, "'a.png' is 30x20, the file says 30x21"),
    ({"seg": {"size": [20, 30], "counts": "@@@@garbage"}}, "annotation 1: invalid segmentation"),
    ({"seg": {"size": [20, 30], "counts": [5, 5]}}, "annotation 1: invalid segmentation .*add up"),
    ({"seg": {"size": [10, 30], "counts": [300]}}, "annotation 1: invalid segmentation .*size"),
    ({"seg": [[1, 2, 3]]}, "annotation 1: invalid segmentation .*3 points"),
    ({"image_id": 99}, "annotation 1: unknown image_id 99"),
])
def test_bad_entries_are_named(proj, tmp_path, bad, words):
    images = bad.get("images", [{"id": 1, "file_name": "a.png", "height": 20, "width": 30}])
    ann = {"id": 1, "image_id": bad.get("image_id", 1), "category_id": 3,
           "segmentation": bad.get("seg", [[0, 0, 5, 0, 5, 5]]), "iscrowd": 0}
    with pytest.raises(CocoImportError, match=words):
        import_coco(proj, _coco(tmp_path, [ann], images))
    assert proj.records == {}  # nothing half-imported


def test_import_command_round_trips_with_export(proj, tmp_path, capsys):
    m = np.zeros((20, 30), bool)
    m[1:19, 1:4] = True
    path = _coco(tmp_path, [{"id": 1, "image_id": 7, "category_id": 4, "segmentation": encode_rle(m), "iscrowd": 0}])
    proj.save()
    assert main(["import", str(proj.folder), str(path)]) == 0
    assert main(["export", str(proj.folder), "--out", str(tmp_path / "out.json")]) == 0
    out = json.loads((tmp_path / "out.json").read_text())
    (ann,) = out["annotations"]
    assert ann["segmentation"] == encode_rle(m) and out["categories"][0]["name"] == "dog"
    assert main(["import", str(proj.folder), str(tmp_path / "missing.json")]) != 0
    assert "not a readable COCO file" in capsys.readouterr().err


def test_train_reads_coco_as_import_does_so_a_bad_polygon_is_a_message_not_a_traceback(proj, tmp_path, capsys):
    bad = _coco(tmp_path, [{"id": 9, "image_id": 7, "category_id": 3, "segmentation": [[1, 1, 5, 5]]}], name="t.json")
    rc = main(["train", "--coco", str(bad), "--coco-images", str(tmp_path / "images"), "--out",
               str(tmp_path / "head.safetensors"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 2 and "t.json: annotation 9: invalid segmentation" in err and err.count("\n") == 1, err
    assert not (tmp_path / "head.safetensors").exists()
