"""By hand, not in CI: the real tools read annotator's exports, with every instance of every image under its class:
datumaro our COCO (RLE), CVAT and VOC, labelme our labelme JSON, Ultralytics' YOLODataset our YOLO-seg. Set
ANNOTATOR_DATUMARO_PYTHON and ANNOTATOR_LABELME_PYTHON to Pythons that have them, and ANNOTATOR_ULTRALYTICS_PATH to
a folder with ultralytics to put on this Python's path (tests/data/README.md says how to make them), to run them;
without them the tests are skipped."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from annotator.cli import main
from annotator.project.store import Project
from tests.data.fixture_source import CLASSES, SHAPES, SIZE, image
from tests.synthetic import write_rgb

PYTHON = os.environ.get("ANNOTATOR_DATUMARO_PYTHON")
LABELME_PYTHON = os.environ.get("ANNOTATOR_LABELME_PYTHON")
ULTRALYTICS_PATH = os.environ.get("ANNOTATOR_ULTRALYTICS_PATH")

READ = """
import json, sys
from datumaro.components.annotation import AnnotationType
from datumaro.components.dataset import Dataset
ds = Dataset.import_from(sys.argv[2], sys.argv[1])
names = ds.categories()[AnnotationType.label]
out = {}
for item in ds:
    for a in item.annotations:
        if a.type == AnnotationType.mask:
            area = int((a.image > 0).sum())
        elif a.type == AnnotationType.polygon:
            area = float(a.get_area())
        else:
            continue
        out.setdefault(item.id.rsplit("/", 1)[-1], []).append([names[a.label].name, area])
print(json.dumps(out))
"""

READ_LABELME = """
import glob, json, sys
from labelme import utils
from labelme._label_file import read_label_file
out = {}
for f in sorted(glob.glob(sys.argv[1] + "/**/*.json", recursive=True)):
    data = read_label_file(f)  # reads the image through the file's relative imagePath, checks its size
    names = sorted({s["label"] for s in data.shapes})
    cls, ins = utils.shapes_to_label(utils.img_data_to_arr(data.image_data).shape, data.shapes,
                                     {n: k for k, n in enumerate(names, start=1)})
    stem = f[len(sys.argv[1]) + 1 : -5]
    for i in sorted(set(ins.ravel().tolist()) - {0}):
        label = names[int(cls[ins == i][0]) - 1]
        out.setdefault(stem, []).append([label, int((ins == i).sum())])
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """fixture_source's images and polygons as a project: each polygon one instance of its class."""
    root = tmp_path_factory.mktemp("dm")
    (root / "images").mkdir()
    names = sorted({s[0] for s in SHAPES})
    for name in names:
        write_rgb(root / "images" / name, image(name))
    proj = Project.create(root / "proj", root / "images")
    ids = {c: proj.add_class(c).id for c in CLASSES}
    for name in names:
        for cls in CLASSES:
            labels = np.zeros(SIZE, np.uint8)
            shapes = [pts for n, c, pts in SHAPES if n == name and c == cls]
            for k, pts in enumerate(shapes, start=1):
                cv2.fillPoly(labels, [np.array(pts, np.int32).reshape(-1, 2)], k)
            if shapes:
                proj.set_mask(proj.image_id(name), ids[cls], labels)
    proj.save()
    return proj


def _expected(proj: Project) -> dict[str, list[tuple[str, int]]]:
    out: dict[str, list[tuple[str, int]]] = {}
    for (image_id, class_id), _ in proj.records.items():
        labels = proj.labels(image_id, class_id)
        stem = proj.images[image_id].file.rsplit(".", 1)[0]
        for k in np.unique(labels)[1:]:
            out.setdefault(stem, []).append((proj.classes[class_id].name, int((labels == k).sum())))
    return {k: sorted(v) for k, v in out.items()}


READ_YOLO = """
import json, sys
import cv2, numpy as np, yaml
from ultralytics.data.dataset import YOLODataset
root = sys.argv[1]
y = yaml.safe_load(open(root + "/data.yaml"))
out = {}
for split in sorted({y["train"], y["val"]}):
    ds = YOLODataset(img_path=root + "/" + split, data={"names": y["names"], "nc": len(y["names"]), "channels": 3},
                     task="segment", augment=False)
    for label in ds.labels:
        h, w = label["shape"]
        stem = label["im_file"].rsplit("/", 1)[-1].rsplit(".", 1)[0]
        for c, seg in zip(label["cls"].ravel(), label["segments"]):
            m = np.zeros((h, w), np.uint8)
            cv2.fillPoly(m, [np.round(seg * [w, h] - 0.5).astype(np.int32)], 1)
            out.setdefault(stem, []).append([y["names"][int(c)], int(m.sum())])
print(json.dumps(out))
"""


def _compare(got_json: str, want: dict[str, list[tuple[str, int]]], low: float, high: float) -> None:
    """Each image's instances come back under their classes, their areas within [low, high] of ours."""
    got = {k: sorted((c, a) for c, a in v) for k, v in json.loads(got_json.splitlines()[-1]).items()}
    assert sorted(got) == sorted(want)
    for stem, instances in want.items():
        assert [c for c, _ in got[stem]] == [c for c, _ in instances], stem
        for (_, a), (_, b) in zip(got[stem], instances):
            assert low * b <= a <= high * b, (stem, got[stem], instances)


@pytest.mark.skipif(not PYTHON, reason="set ANNOTATOR_DATUMARO_PYTHON to a Python with datumaro")
@pytest.mark.parametrize(
    ("ours", "theirs", "target", "exact"),
    [
        ("coco-rle", "coco_instances", "annotations/instances_default.json", True),
        ("cvat", "cvat", "annotations.xml", False),
        ("voc", "voc_segmentation", "", True),
    ],
)
def test_datumaro_reads_our_export(project, tmp_path, capsys, ours, theirs, target, exact):
    out = tmp_path / theirs
    dest = out / target if target else out
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(project.image_root, out / "images", dirs_exist_ok=True)  # datumaro's COCO and CVAT look there
    assert main(["export", str(project.folder), "--out", str(dest), "--format", ours, "--instances"]) == 0
    capsys.readouterr()
    read = subprocess.run([PYTHON, "-c", READ, theirs, str(out)], capture_output=True, text=True, timeout=300)
    assert read.returncode == 0, read.stderr[-2000:]
    _compare(read.stdout, _expected(project), 1.0 if exact else 0.7, 1.0)  # a polygon's area is a little less


@pytest.mark.skipif(not LABELME_PYTHON, reason="set ANNOTATOR_LABELME_PYTHON to a Python with labelme")
def test_labelme_reads_our_export(project, tmp_path, capsys):
    out = tmp_path / "labelme"
    assert main(["export", str(project.folder), "--out", str(out), "--format", "labelme", "--instances"]) == 0
    capsys.readouterr()
    read = subprocess.run([LABELME_PYTHON, "-c", READ_LABELME, str(out)], capture_output=True, text=True, timeout=300)
    assert read.returncode == 0, read.stderr[-2000:]
    _compare(read.stdout, _expected(project), 0.7, 1.3)  # labelme draws polygons with PIL, edges included


@pytest.mark.skipif(not ULTRALYTICS_PATH, reason="set ANNOTATOR_ULTRALYTICS_PATH to a folder with ultralytics")
def test_ultralytics_reads_our_yolo_seg_export(project, tmp_path, capsys):
    out = tmp_path / "yolo"
    args = ["export", str(project.folder), "--out", str(out), "--format", "yolo-seg", "--val-fraction", "0.5"]
    assert main([*args, "--instances"]) == 0
    capsys.readouterr()
    env = {**os.environ, "PYTHONPATH": ULTRALYTICS_PATH, "YOLO_OFFLINE": "1"}
    read = subprocess.run(
        [sys.executable, "-c", READ_YOLO, str(out)], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path
    )
    assert read.returncode == 0, read.stderr[-2000:]
    _compare(read.stdout, _expected(project), 0.7, 1.3)  # its polygons rasterised by OpenCV here
