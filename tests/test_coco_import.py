"""Importing COCO (RLE and polygons) into a project, and clear messages for bad entries."""

from __future__ import annotations

import json

import numpy as np
import pytest

from annotator.cli import main
from annotator.formats.coco import encode_rle
from annotator.formats.coco_import import CocoImportError, import_coco
from annotator.formats.importers import import_annotations
from annotator.project.store import Project
from annotator.utils.progress import Cancelled, Steps
from tests.synthetic import scene, write_rgb


@pytest.fixture
def proj(tmp_path):
    (tmp_path / "images").mkdir()
    for n in ("a.png", "b.png"):
        write_rgb(tmp_path / "images" / n, scene(20, 30, None, 0, seed=1)[0])
    return Project.create(tmp_path / "proj", tmp_path / "images")


SIZE = {"height": 20, "width": 30}


def _coco(tmp_path, anns, images=None, name="in.json"):
    images = images or [{"id": 7, "file_name": "a.png", "height": 20, "width": 30}]
    path = tmp_path / name
    path.write_text(
        json.dumps(
            {"images": images, "annotations": anns, "categories": [{"id": 3, "name": "cat"}, {"id": 4, "name": "dog"}]}
        )
    )
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
    assert n == {"images": 1, "masks": 2, "annotations": 3, "kept": 0, "unusable": 0, "unmatched": []}
    a = proj.image_id("a.png")
    cat_id = next(c.id for c in proj.classes.values() if c.name == "cat")
    labels = proj.labels(a, cat_id)
    assert np.array_equal(labels == 1, m)  # pixel-exact, hole included
    assert (labels == 2).sum() == 64 and proj.record(a, cat_id).state == "accepted"


@pytest.mark.parametrize(
    "bad, words",
    [
        ({"images": [{"id": 1, "file_name": "nope.png", "height": 20, "width": 30}]}, "'nope.png' matches no image"),
        (
            {"images": [{"id": 1, "file_name": "a.png", "height": 21, "width": 30}]},
            "'a.png' is 30x20, the file says 30x21",
        ),
        ({"seg": {"size": [20, 30], "counts": "@@@@garbage"}}, "annotation 1: invalid segmentation"),
        ({"seg": {"size": [20, 30], "counts": [5, 5]}}, "annotation 1: invalid segmentation .*add up"),
        ({"seg": {"size": [10, 30], "counts": [300]}}, "annotation 1: invalid segmentation .*size"),
        ({"seg": [[1, 2, 3]]}, "annotation 1: invalid segmentation .*3 points"),
        ({"image_id": 99}, "annotation 1: unknown image_id 99"),
    ],
)
def test_bad_entries_are_named(proj, tmp_path, bad, words):
    images = bad.get("images", [{"id": 1, "file_name": "a.png", "height": 20, "width": 30}])
    ann = {
        "id": 1,
        "image_id": bad.get("image_id", 1),
        "category_id": 3,
        "segmentation": bad.get("seg", [[0, 0, 5, 0, 5, 5]]),
        "iscrowd": 0,
    }
    with pytest.raises(CocoImportError, match=words):
        import_coco(proj, _coco(tmp_path, [ann], images), strict=True)
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
    rc = main(
        [
            "train",
            "--coco",
            str(bad),
            "--coco-images",
            str(tmp_path / "images"),
            "--out",
            str(tmp_path / "head.safetensors"),
            "--device",
            "cpu",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "t.json: annotation 9: invalid segmentation" in err and err.count("\n") == 1, err
    assert not (tmp_path / "head.safetensors").exists()


def _mask(rows: slice, cols: slice) -> np.ndarray:
    m = np.zeros((20, 30), bool)
    m[rows, cols] = True
    return m


def _ann(i: int, m: np.ndarray, cat: int = 3, image_id: int = 7, **extra) -> dict:
    return {"id": i, "image_id": image_id, "category_id": cat, "segmentation": encode_rle(m), "iscrowd": 0, **extra}


def test_import_keeps_accepted_and_edited_masks_unless_overwrite(proj, tmp_path, capsys):
    """Reliability defect 3: `import --as proposed` turned accepted masks into the file's proposals."""
    mine = _mask(slice(0, 20), slice(0, 20))
    a = proj.image_id("a.png")
    cat = proj.add_class("cat").id
    proj.set_mask(a, cat, mine)
    proj.save()
    small = _coco(tmp_path, [_ann(1, _mask(slice(0, 2), slice(0, 5)), score=0.25)])
    assert main(["import", str(proj.folder), str(small), "--as", "proposed"]) == 0
    assert "kept 1 accepted or edited masks" in capsys.readouterr().err
    again = Project.open(proj.folder)
    assert np.array_equal(again.mask(a, cat), mine) and again.record(a, cat).state == "accepted"
    assert main(["import", str(proj.folder), str(small), "--as", "proposed", "--overwrite"]) == 0
    again = Project.open(proj.folder)
    rec = again.record(a, cat)
    assert rec.state == "proposed" and rec.score == 0.25 and again.mask(a, cat).sum() == 10  # the file's score


def test_overlapping_instances_are_refused_by_name_or_layered_on_request(proj, tmp_path):
    """Reliability defect 4: overlapping instances of one class lost pixels silently."""
    big, small = _mask(slice(0, 15), slice(0, 20)), _mask(slice(5, 10), slice(5, 10))
    path = _coco(tmp_path, [_ann(11, big), _ann(12, small)])
    with pytest.raises(CocoImportError, match="annotation 12 overlaps annotation 11 of 'cat' on a.png"):
        import_coco(proj, path)
    assert proj.records == {}
    import_coco(proj, path, allow_overlap=True)
    labels = proj.labels(proj.image_id("a.png"), 1)
    assert (labels == 2).sum() == 25 and (labels == 1).sum() == 300 - 25


@pytest.mark.parametrize(
    "seg, words",
    [
        ([[0, 0, 1e9, 0, 5, 5]], "within"),
        ({"size": [20, 30], "counts": [300.0, 300.0]}, "whole numbers"),
        ({"size": [20, 30], "counts": [-1, 601]}, "whole numbers"),
    ],
)
def test_crafted_coordinates_and_counts_are_refused(proj, tmp_path, seg, words):
    """Reliability defect 10: huge or NaN coordinates crashed the process; float counts were taken."""
    with pytest.raises(CocoImportError, match=f"annotation 1: invalid segmentation .*{words}"):
        import_coco(proj, _coco(tmp_path, [{"id": 1, "image_id": 7, "category_id": 3, "segmentation": seg}]))


def test_nan_which_json_does_not_have_is_refused_in_one_line(proj, tmp_path):
    nan = [[0, 0, float("nan"), 0, 5, 5]]
    path = _coco(tmp_path, [{"id": 1, "image_id": 7, "category_id": 3, "segmentation": nan}])
    with pytest.raises(CocoImportError, match="not a readable COCO file") as err:
        import_coco(proj, path)
    assert "\n" not in str(err.value) and proj.records == {}


def test_more_instances_than_a_label_map_holds_are_refused(proj, tmp_path, monkeypatch):
    from annotator.formats import coco_import

    monkeypatch.setattr(coco_import, "MAX_INSTANCES", 3)  # 65,535 in real life; the rule is the same
    anns = [_ann(i, _mask(slice(i, i + 1), slice(0, 1))) for i in range(4)]
    with pytest.raises(CocoImportError, match="image 7 has more than 3 instances of category 'cat', the most a mask"):
        import_coco(proj, _coco(tmp_path, anns))


@pytest.mark.parametrize(
    "data, words",
    [
        ({"images": 5}, "'images' is not a list"),
        ({"images": [], "annotations": [5]}, "annotation #0 is not an object"),
        ({"images": [], "categories": [{"id": 1}]}, "category 1 has no name"),
        ({"images": [{"id": 1, "file_name": "a.png"}]}, "image 'a.png' has no valid height"),
        ({"version": "5.0", "shapes": [], "imagePath": "a.png"}, "a labelme JSON file"),
        ({"images": [], "annotations": [{"image_id": 1, "file_name": "a.png", "segments_info": []}]}, "COCO panoptic"),
        ([1, 2], "top level is not an object"),
    ],
)
def test_files_that_are_not_coco_instances_say_what_they_are(proj, tmp_path, capsys, data, words):
    path = tmp_path / "odd.json"
    path.write_text(json.dumps(data))
    assert main(["import", str(proj.folder), str(path)]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1, err


def test_peer_tools_paths_box_only_annotations_and_padded_names_are_taken_as_they_are(proj, tmp_path, capsys):
    m = _mask(slice(2, 6), slice(2, 6))
    images = [
        {"id": 1, "file_name": "./a.png", "height": 20, "width": 30},
        {"id": 2, "file_name": str(tmp_path / "images" / "b.png"), "height": 20, "width": 30},
        {"id": 3, "file_name": "elsewhere/nothing.png", "height": 20, "width": 30},
    ]
    anns = [
        _ann(1, m, image_id=1),
        _ann(2, m, image_id=2, cat=5),
        {"id": 3, "image_id": 1, "category_id": 3, "bbox": [0, 0, 2, 2], "segmentation": []},
    ]
    path = tmp_path / "peer.json"
    path.write_text(
        json.dumps(
            {"images": images, "annotations": anns, "categories": [{"id": 3, "name": "dog"}, {"id": 5, "name": " dog"}]}
        )
    )
    assert main(["import", str(proj.folder), str(path)]) == 0
    err = capsys.readouterr().err
    assert "left out 1 annotations without a mask" in err and "elsewhere/nothing.png" in err
    again = Project.open(proj.folder)
    assert [c.name for c in again.classes.values()] == ["dog"]  # " dog" is dog, not a duplicate of it
    assert all(again.mask(again.image_id(n), 1).sum() == 16 for n in ("a.png", "b.png"))
    assert main(["import", str(proj.folder), str(path), "--strict", "--overwrite"]) == 2


def test_a_large_file_is_streamed_not_held_whole(proj, tmp_path):
    """Reliability defect 10: a 118 MB file exhausted memory (parsed whole, 6-7x its size in Python objects).
    Annotations are now parsed one at a time: the import's peak allocation stays well under the file's size."""
    import tracemalloc

    t = np.linspace(0, 2 * np.pi, 500, endpoint=False)
    ring = np.round(np.stack([15 + 9 * np.cos(t), 10 + 6 * np.sin(t)], 1).ravel(), 2).tolist()
    ann = json.dumps({"image_id": 7, "category_id": 3, "segmentation": [ring]})[1:-1]
    path = tmp_path / "big.json"
    with path.open("w") as f:
        f.write('{"images": [{"id": 7, "file_name": "a.png", "height": 20, "width": 30}], ')
        f.write('"categories": [{"id": 3, "name": "cat"}], "annotations": [')
        f.write(",".join("{" + f'"id": {i}, ' + ann + "}" for i in range(2000)))
        f.write("]}")
    size = path.stat().st_size
    tracemalloc.start()
    try:
        done = import_coco(proj, path, allow_overlap=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert done["annotations"] == 2000 and size > 12e6
    assert peak < size / 4, f"peak {peak / 1e6:.1f} MB for a {size / 1e6:.1f} MB file"


def test_an_import_reports_a_step_per_mask_and_a_cancelled_one_keeps_only_the_masks_stored_before(proj, tmp_path):
    images = [{"id": 7, "file_name": "a.png", "height": 20, "width": 30}, {"id": 8, "file_name": "b.png", **SIZE}]
    m = _mask(slice(2, 9), slice(3, 12))
    path = _coco(tmp_path, [_ann(1, m), _ann(2, m, cat=4), _ann(3, m, image_id=8)], images)
    seen: list[tuple[int, int]] = []
    with pytest.raises(Cancelled):  # cancelled while reading: not even the classes are added
        import_annotations(proj, path, steps=Steps(cancelled=lambda: True))
    assert not proj.classes and not proj.records
    stop = Steps(lambda d, t: seen.append((d, t)), cancelled=lambda: len(seen) == 1)
    with pytest.raises(Cancelled):
        import_annotations(proj, path, steps=stop)
    assert seen == [(0, 3)]  # one mask stored, then stopped before the second
    stored = [(i, c) for (i, c), r in proj.records.items() if r.state == "accepted"]
    assert len(stored) == 1 and np.array_equal(proj.mask(*stored[0]), m)
    seen.clear()
    import_annotations(proj, path, steps=Steps(lambda d, t: seen.append((d, t))))
    assert seen == [(0, 2), (1, 2)]  # again: the one stored is accepted now, so kept; the other two are stored
    assert sum(r.state == "accepted" for r in proj.records.values()) == 3
