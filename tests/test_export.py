"""Export loses nothing: random masks round-trip through COCO RLE and pycocotools pixel for pixel."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from PIL import Image
from pycocotools.coco import COCO

from annotator.cli import main
from annotator.config import State
from annotator.formats.export import ExportError, ExportOptions, export_coco, export_png
from annotator.formats.exporters import EXPORTERS
from annotator.project.store import Project
from annotator.utils.progress import Cancelled, Steps
from tests.synthetic import mask_cases, scene, write_rgb

H, W = 23, 31


@pytest.fixture(scope="module")
def proj(tmp_path_factory):
    root = tmp_path_factory.mktemp("exp")
    (root / "images").mkdir()
    write_rgb(root / "images" / "x.png", scene(H, W, None, 0, seed=0)[0])
    p = Project.create(root / "proj", root / "images")
    p.add_class("thing")
    return p


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(m=mask_cases(H, W))
def test_rle_round_trip_is_pixel_exact(proj, tmp_path_factory, m):
    x = proj.image_id("x.png")
    proj.set_mask(x, 1, m)
    out = tmp_path_factory.mktemp("o") / "out.json"
    export_coco(proj, out)
    api = COCO(str(out))
    anns = api.loadAnns(api.getAnnIds())
    if not m.any():
        assert anns == []
        return
    (ann,) = anns
    assert ann["iscrowd"] == 0 and ann["area"] == int(m.sum())
    assert np.array_equal(api.annToMask(ann).astype(bool), m)
    (img,) = api.dataset["images"]
    assert (img["height"], img["width"]) == (H, W)


def _two_blobs(with_hole: bool):
    m = np.zeros((H, W), bool)
    m[2:12, 2:12] = True
    m[15:21, 20:29] = True
    if with_hole:
        m[5:8, 5:8] = False
    return m


def test_instances_are_components_or_the_users_split(proj, tmp_path):
    x = proj.image_id("x.png")
    proj.set_mask(x, 1, _two_blobs(False))
    export_coco(proj, tmp_path / "a.json", ExportOptions(instances=True))
    assert len(json.loads((tmp_path / "a.json").read_text())["annotations"]) == 2
    labels = np.zeros((H, W), np.uint8)
    labels[2:12, 2:12] = 1
    labels[15:21, 20:29] = 1  # the user says both blobs are one instance...
    labels[2:12, 8:12] = 2  # ...and split the first one
    proj.set_mask(x, 1, labels)
    export_coco(proj, tmp_path / "b.json", ExportOptions(instances=True))
    api = COCO(str(tmp_path / "b.json"))
    got = sorted(int(api.annToMask(a).sum()) for a in api.loadAnns(api.getAnnIds()))
    assert got == sorted([int((labels == 1).sum()), int((labels == 2).sum())])
    export_coco(proj, tmp_path / "c.json")  # semantic: one per class
    assert len(json.loads((tmp_path / "c.json").read_text())["annotations"]) == 1


def _areas(path) -> list[int]:
    api = COCO(str(path))
    return sorted(int(api.annToMask(a).sum()) for a in api.loadAnns(api.getAnnIds()))


def test_an_instance_export_leaves_out_specks_under_the_minimum_area(proj, tmp_path, capsys):
    x = proj.image_id("x.png")
    m = np.zeros((H, W), bool)
    m[2:12, 2:12] = True  # 100 px
    m[15:20, 20:24] = True  # 20 px
    m[20, 2] = m[1, 28] = m[21, 14] = m[22, 15] = True  # a CRF's speckle: 1-2 px parts
    proj.set_mask(x, 1, m)
    export_coco(proj, tmp_path / "a.json", ExportOptions(instances=True))  # the default minimum: 16 px
    assert _areas(tmp_path / "a.json") == [20, 100]
    export_coco(proj, tmp_path / "b.json", ExportOptions(instances=True, min_area=0))
    assert _areas(tmp_path / "b.json") == [1, 1, 2, 20, 100]
    export_coco(proj, tmp_path / "c.json", ExportOptions(instances=True, min_area=21))
    assert _areas(tmp_path / "c.json") == [100]
    export_coco(proj, tmp_path / "d.json")  # semantic: every pixel, specks too
    assert _areas(tmp_path / "d.json") == [int(m.sum())]
    labels = m.astype(np.uint8)
    labels[20, 2] = 2  # the user's own instances: each loses its specks, and one of specks only is left out
    labels[15:20, 20:24] = 3
    proj.set_mask(x, 1, labels)
    export_coco(proj, tmp_path / "e.json", ExportOptions(instances=True))
    assert _areas(tmp_path / "e.json") == [20, 100]
    proj.save()
    for extra, want in (([], [20, 100]), (["--min-area", "0"], [1, 20, 103])):
        out = tmp_path / f"cli{len(extra)}.json"
        assert main(["export", str(proj.folder), "--out", str(out), "--instances", *extra]) == 0
        assert _areas(out) == want
    capsys.readouterr()


def test_polygons_without_holes_and_the_hole_policy(proj, tmp_path):
    x = proj.image_id("x.png")
    m = _two_blobs(False)
    proj.set_mask(x, 1, m)
    export_coco(proj, tmp_path / "p.json", ExportOptions(polygons=True))
    api = COCO(str(tmp_path / "p.json"))
    (ann,) = api.loadAnns(api.getAnnIds())
    assert isinstance(ann["segmentation"], list) and len(ann["segmentation"]) == 2
    got = api.annToMask(ann).astype(bool)
    assert np.array_equal(got, m)  # traced along pixel edges, pycocotools rasterises them back exactly
    proj.set_mask(x, 1, _two_blobs(True))
    n = export_coco(proj, tmp_path / "h.json", ExportOptions(polygons=True))
    assert n["rle_fallbacks"] == 1
    ann = json.loads((tmp_path / "h.json").read_text())["annotations"][0]
    assert isinstance(ann["segmentation"], dict)  # the hole survives as RLE
    with pytest.raises(ExportError, match="x.png.*holes"):
        export_coco(proj, tmp_path / "r.json", ExportOptions(polygons=True, holes="refuse"))


def test_accepted_only_by_default_and_proposals_with_score(proj, tmp_path):
    x = proj.image_id("x.png")
    proj.set_state(x, 1, "unlabelled")
    proj.records.pop((x, 1), None)
    assert proj.set_proposal(x, 1, _two_blobs(False), 0.37, {"model": "panet"})
    export_coco(proj, tmp_path / "a.json")
    assert json.loads((tmp_path / "a.json").read_text())["annotations"] == []
    export_coco(proj, tmp_path / "b.json", ExportOptions(include_proposals=True))
    (ann,) = json.loads((tmp_path / "b.json").read_text())["annotations"]
    assert ann["score"] == 0.37


def test_png_export_and_palette(proj, tmp_path):
    x = proj.image_id("x.png")
    proj.set_mask(x, 1, _two_blobs(True))
    export_png(proj, tmp_path / "png")
    img = Image.open(tmp_path / "png" / "x.png.png")
    assert img.mode == "P"
    assert np.array_equal(np.array(img) == 1, _two_blobs(True))
    pal = json.loads((tmp_path / "png" / "palette.json").read_text())
    assert pal["1"]["name"] == "thing" and img.getpalette()[3:6] == [
        int(pal["1"]["color"][i : i + 2], 16) for i in (1, 3, 5)
    ]


def test_png_export_writes_datumaro_dataset_meta_by_pixel_value(tmp_path):
    """dataset_meta.json (datumaro's common semantic segmentation) lists a name and the PNG's colour for every
    pixel value up to the last class, the ids a deleted class left unused included, so values never shift."""
    (tmp_path / "images").mkdir()
    write_rgb(tmp_path / "images" / "x.png", scene(H, W, None, 0, seed=0)[0])
    proj = Project.create(tmp_path / "proj", tmp_path / "images")
    proj.add_class("thing")
    gone, kept = proj.add_class("gone").id, proj.add_class("kept").id
    proj.delete_class(gone)
    x = proj.image_id("x.png")
    proj.set_mask(x, kept, _two_blobs(True))
    export_png(proj, tmp_path / "png")
    meta = json.loads((tmp_path / "png" / "dataset_meta.json").read_text())
    assert meta["background_label"] == "0"
    assert meta["label_map"] == {"0": "background", "1": "thing", str(gone): f"_unused_{gone}_", str(kept): "kept"}
    palette = Image.open(tmp_path / "png" / "x.png.png").getpalette()
    assert meta["segmentation_colors"] == [palette[3 * k : 3 * k + 3] for k in range(kept + 1)]
    assert np.array_equal(np.array(Image.open(tmp_path / "png" / "x.png.png")) == kept, _two_blobs(True))


def test_export_command(proj, tmp_path, capsys):
    proj.set_mask(proj.image_id("x.png"), 1, _two_blobs(False))
    proj.save()
    assert main(["export", str(proj.folder), "--out", str(tmp_path / "e.json")]) == 0
    assert "wrote 1 image, 1 annotation to" in capsys.readouterr().out
    COCO(str(tmp_path / "e.json"))
    assert main(["export", str(proj.folder), "--out", str(tmp_path / "pp"), "--format", "png"]) == 0
    assert (tmp_path / "pp" / "x.png.png").exists()
    assert main(["export", str(tmp_path / "nothing"), "--out", str(tmp_path / "f.json")]) != 0
    assert "not an annotator project" in capsys.readouterr().err


def test_png_export_writes_background_for_images_rejected_for_every_class(tmp_path):
    root = tmp_path / "images"
    root.mkdir()
    for name, seed in (("a.png", 1), ("empty.png", 2), ("todo.png", 3)):
        write_rgb(root / name, scene(H, W, None, 0, seed=seed)[0])
    p = Project.create(tmp_path / "proj", root)
    p.add_class("thing")
    p.add_class("other")
    p.set_mask(p.image_id("a.png"), 1, _two_blobs(False))
    e = p.image_id("empty.png")
    for c in (1, 2):
        p.set_proposal(e, c, _two_blobs(False), 0.5, {})
        p.set_state(e, c, State.REJECTED)
    p.set_proposal(p.image_id("todo.png"), 1, _two_blobs(False), 0.5, {})
    p.set_state(p.image_id("todo.png"), 1, State.REJECTED)  # rejected for one class only: not yet labelled
    assert export_png(p, tmp_path / "png")["images"] == 2
    assert np.array_equal(np.array(Image.open(tmp_path / "png" / "a.png.png")) == 1, _two_blobs(False))
    empty = np.array(Image.open(tmp_path / "png" / "empty.png.png"))
    assert empty.shape == (H, W) and not empty.any()
    assert not (tmp_path / "png" / "todo.png.png").exists()


@pytest.mark.parametrize("fmt", sorted(EXPORTERS))
def test_every_export_reports_a_step_per_image_and_stops_when_cancelled(tmp_path, fmt):
    root = tmp_path / "images"
    root.mkdir()
    for i in range(4):
        write_rgb(root / f"{i}.png", scene(H, W, None, 0, seed=i)[0])
    p = Project.create(tmp_path / "proj", root)
    cid = p.add_class("thing").id
    for i in range(4):
        p.set_mask(p.image_id(f"{i}.png"), cid, scene(H, W, (11, 15), 5, seed=i)[1])
    seen: list[tuple[int, int]] = []
    EXPORTERS[fmt].write(p, tmp_path / "all", ExportOptions(), Steps(lambda d, t: seen.append((d, t))))
    assert seen == [(k, 4) for k in range(4)]
    stop = Steps(lambda d, t: seen.append((d, t)), cancelled=lambda: len(seen) >= 6)
    with pytest.raises(Cancelled):
        EXPORTERS[fmt].write(p, tmp_path / "cut", ExportOptions(), stop)
    assert seen[4:] == [(0, 4), (1, 4)]  # stopped before its third image
    if not EXPORTERS[fmt].folder:  # one file, written at the end: not there
        assert not (tmp_path / "cut").exists()
