"""YOLO-seg out and in: the Ultralytics layout, masks back pixel for pixel, and bad datasets named line by line."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycocotools import mask as mask_utils

from annotator.cli import main
from annotator.config import State
from annotator.formats.export import ExportError, ExportOptions
from annotator.formats.importing import ImportFormatError
from annotator.formats.polygons import outline_polygons
from annotator.formats.yolo_seg import export_yolo_seg, import_yolo_seg
from annotator.project.store import Project
from tests.synthetic import cat_dog_project, mask_cases, scene, write_rgb

H, W = 23, 31


def _project(root, files=("a.png", "sub/b.png", "c.png")):
    return cat_dog_project(root, H, W, files)


@settings(max_examples=200, deadline=None)
@given(h=st.integers(1, 40), w=st.integers(1, 40), data=st.data())
def test_outline_polygons_rasterise_back_to_the_mask(h, w, data):
    m = data.draw(mask_cases(max(h, 16), max(w, 16)))[:h, :w]
    polys = outline_polygons(m)
    if not m.any():
        assert polys == []
        return
    rles = mask_utils.frPyObjects([p.reshape(-1).tolist() for p in polys], h, w)
    assert np.array_equal(mask_utils.decode(mask_utils.merge(rles)).astype(bool), m)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("yolo")
    return _project(root / "src"), root


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cat=mask_cases(H, W), dog=mask_cases(H, W))
def test_round_trip_through_the_ultralytics_layout_is_pixel_exact(pair, tmp_path_factory, cat, dog):
    src, _ = pair
    a = src.image_id("a.png")
    for class_id, m in ((1, cat), (2, dog)):
        src.set_mask(a, class_id, m) if m.any() else src.clear_mask(a, class_id)
    out = tmp_path_factory.mktemp("out")
    export_yolo_seg(src, out / "ds")
    dst = _project(tmp_path_factory.mktemp("dst"))
    n = import_yolo_seg(dst, out / "ds")
    assert n["unmatched"] == [] and n["kept"] == 0
    for class_id, m in ((1, cat), (2, dog)):
        got = dst.mask(dst.image_id("a.png"), class_id)
        assert np.array_equal(got if got is not None else np.zeros((H, W), bool), m)


def test_the_layout_data_yaml_split_and_background_images(tmp_path):
    p = _project(tmp_path)
    a, b, c = (p.image_id(f) for f in ("a.png", "sub/b.png", "c.png"))
    m = np.zeros((H, W), bool)
    m[3:9, 4:12] = True
    m[15:20, 20:28] = True  # two parts: two lines
    p.set_mask(a, 2, m)
    p.set_mask(b, 1, m)
    p.set_proposal(c, 1, m, 0.9, {})
    for class_id in (1, 2):
        p.set_state(c, class_id, State.REJECTED)  # c has neither class: a background image
    n = export_yolo_seg(p, tmp_path / "ds", ExportOptions(val_fraction=0.34, seed=1))
    assert n["images"] == 3 and n["lines"] == 4 and n["val"] == 1
    data = yaml.safe_load((tmp_path / "ds" / "data.yaml").read_text())
    assert data["names"] == {0: "cat", 1: "dog"} and data["val"] == "images/val"
    labels = sorted((tmp_path / "ds" / "labels").rglob("*.txt"))
    assert sorted(q.relative_to(tmp_path / "ds" / "labels").as_posix().split("/", 1)[1] for q in labels) == [
        "a.txt",
        "c.txt",
        "sub/b.txt",
    ]
    texts = {q.stem: q.read_text() for q in labels}
    assert texts["c"] == ""
    assert [line.split()[0] for line in texts["a"].splitlines()] == ["1", "1"]
    assert all(0 <= float(v) <= 1 for line in texts["b"].splitlines() for v in line.split()[1:])
    for q in labels:  # each label beside its image, as Ultralytics finds it (/labels/ -> /images/)
        rel = q.relative_to(tmp_path / "ds" / "labels").with_suffix(".png")
        assert (tmp_path / "ds" / "images" / rel).is_file()
    again = export_yolo_seg(p, tmp_path / "ds2", ExportOptions(val_fraction=0.34, seed=1))
    assert (
        sorted(x.name for x in (tmp_path / "ds2" / "images" / "val").rglob("*.png"))
        == sorted(x.name for x in (tmp_path / "ds" / "images" / "val").rglob("*.png"))
        and again["val"] == 1
    )
    export_yolo_seg(p, tmp_path / "ds")  # again into the same folder, with no val split: nothing left in val
    assert not [x for x in (tmp_path / "ds").rglob("*") if "val" in x.parts and x.is_file()]
    assert len(list((tmp_path / "ds" / "images" / "train").rglob("*.png"))) == 3
    with pytest.raises(ExportError, match="val fraction must be at least 0 and below 1, not 1.5"):
        export_yolo_seg(p, tmp_path / "ds", ExportOptions(val_fraction=1.5))


def test_images_sharing_a_stem_are_refused_by_name(tmp_path):
    p = _project(tmp_path, files=("x.png", "x.jpg"))
    for f in ("x.png", "x.jpg"):
        p.set_mask(p.image_id(f), 1, np.ones((H, W), bool))
    with pytest.raises(ExportError, match="x.jpg and x.png|x.png and x.jpg"):
        export_yolo_seg(p, tmp_path / "ds")


def _dataset(root, lines, names=("cat", "dog")):
    (root / "labels" / "train").mkdir(parents=True)
    (root / "images" / "train").mkdir(parents=True)
    write_rgb(root / "images" / "train" / "a.png", scene(H, W, None, 0, seed=0)[0])
    (root / "data.yaml").write_text(yaml.safe_dump({"names": list(names)}))
    (root / "labels" / "train" / "a.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.mark.parametrize(
    "lines, words",
    [
        (["7 0.1 0.1 0.5 0.1 0.5 0.5"], "a.txt:1: class index 7 is not one of data.yaml's 2 names"),
        (["0 0.1 0.1 0.5"], "a.txt:1: a polygon needs x y pairs"),
        (["0 0.1 0.1 0.5 0.1 0.5 1.7"], "a.txt:1: coordinates must be normalised"),
        (["", "0 0.1 0.1 nan 0.1 0.5 0.5"], "a.txt:2: coordinates must be normalised"),
        (["cat 0.1 0.1 0.5 0.1 0.5 0.5"], "a.txt:1: not a class index followed by numbers"),
    ],
)
def test_a_bad_line_is_named_and_nothing_is_stored(tmp_path, lines, words):
    p = _project(tmp_path / "p")
    with pytest.raises(ImportFormatError, match=words):
        import_yolo_seg(p, _dataset(tmp_path / "ds", lines))
    assert not p.records


def test_bad_data_yaml_and_box_lines(tmp_path):
    p = _project(tmp_path / "p")
    ds = _dataset(tmp_path / "ds", ["0 0.5 0.5 0.2 0.2", "1 0.1 0.1 0.5 0.1 0.5 0.5"])
    n = import_yolo_seg(p, ds / "data.yaml")  # the data.yaml itself names the dataset too
    assert n["unusable"] == 1 and n["masks"] == 1  # a box-only line is counted, not guessed at
    assert p.mask(p.image_id("a.png"), 2).any()
    (ds / "data.yaml").write_text("names: [unclosed")
    with pytest.raises(ImportFormatError, match="data.yaml: not a readable data.yaml"):
        import_yolo_seg(p, ds)
    (ds / "data.yaml").write_text("names: {0: cat, 2: dog}")
    with pytest.raises(ImportFormatError, match="'names' must list the class names"):
        import_yolo_seg(p, ds)
    with pytest.raises(ImportFormatError, match="no data.yaml"):
        import_yolo_seg(p, tmp_path / "p")


def test_cli_export_and_import_keep_accepted_masks(tmp_path, capsys):
    p = _project(tmp_path / "src")
    m = np.zeros((H, W), bool)
    m[2:10, 2:10] = True
    p.set_mask(p.image_id("a.png"), 1, m)
    p.save()
    p.close()
    assert main(["export", str(tmp_path / "src" / "proj"), "--format", "yolo-seg", "--out", str(tmp_path / "ds")]) == 0
    dst = _project(tmp_path / "dst")
    other = np.zeros((H, W), bool)
    other[0, 0] = True
    dst.set_mask(dst.image_id("a.png"), 1, other)
    dst.save()
    dst.close()
    proj = str(tmp_path / "dst" / "proj")
    assert main(["import", proj, str(tmp_path / "ds")]) == 0
    assert "kept 1 accepted or edited masks" in capsys.readouterr().err
    with Project.open(proj, read_only=True) as q:
        assert np.array_equal(q.mask(q.image_id("a.png"), 1), other)
    assert main(["import", proj, str(tmp_path / "ds"), "--overwrite"]) == 0
    with Project.open(proj, read_only=True) as q:
        assert np.array_equal(q.mask(q.image_id("a.png"), 1), m)
    (tmp_path / "ds" / "labels" / "train" / "a.txt").write_text("0 0.1 0.1\n")
    assert main(["import", proj, str(tmp_path / "ds"), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "a.txt:1: a polygon needs x y pairs" in err and len(err.strip().splitlines()) == 1


def test_many_lines_on_a_large_image_are_drawn_one_at_a_time(tmp_path):
    """300 instances of a 1,000 x 1,000 image: the map holds them, not 300 full-size masks side by side."""
    import tracemalloc

    p = cat_dog_project(tmp_path, 1000, 1000, files=("a.png",))
    lines = [f"0 {x:.3f} 0.1 {x + 0.002:.3f} 0.1 {x + 0.002:.3f} 0.9" for x in np.linspace(0.0, 0.99, 300)]
    ds = _dataset(tmp_path / "ds", lines)
    tracemalloc.start()
    n = import_yolo_seg(p, ds)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert n["annotations"] == 300 and p.labels(p.image_id("a.png"), 1).max() >= 290
    assert peak < 40e6, peak  # 300 boolean masks side by side were 300 MB
