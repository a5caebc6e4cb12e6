"""Property-based fuzzing of what users hand us: a COCO file to import and a project.json to open. Whatever
the content, the outcome is success or the module's own one-line error, never a crash, and a refused import
changes nothing. Bounded in examples so that CI stays fast."""

from __future__ import annotations

import copy
import json
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annotator.formats.coco import encode_rle
from annotator.formats.coco_import import CocoImportError, import_coco
from annotator.project.store import Project, ProjectError
from tests.synthetic import scene, write_rgb

H, W = 12, 16
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", 150)),
    deadline=None,  # more: FUZZ_EXAMPLES=N
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(allow_nan=True), st.text(max_size=12)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    (root / "images").mkdir()
    for name in ("a.png", "b.png"):
        write_rgb(root / "images" / name, scene(H, W, None, 0, seed=len(name))[0])
    return root


def _valid_coco() -> dict:
    m = np.zeros((H, W), bool)
    m[2:6, 3:9] = True
    return {
        "images": [{"id": 1, "file_name": "a.png", "height": H, "width": W}],
        "categories": [{"id": 1, "name": "thing"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "segmentation": encode_rle(m)},
            {"id": 2, "image_id": 1, "category_id": 1, "segmentation": [[10, 1, 15, 1, 15, 8]]},
        ],
    }


def _paths(obj, prefix=()):
    """Every (path, value) inside a JSON value, for picking what to mutate."""
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, (*prefix, i))


@st.composite
def mutated(draw, base: dict):
    """A valid document with one to three of its parts replaced by arbitrary JSON values."""
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(doc) if p]
        path = draw(st.sampled_from(paths))
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        parent[path[-1]] = draw(json_values)
    return doc


@FUZZ
@given(data=st.one_of(json_values, mutated(_valid_coco())))
def test_any_coco_file_imports_or_is_refused_with_nothing_changed(folder, tmp_path_factory, data):
    work = tmp_path_factory.mktemp("c")
    path = work / "in.json"
    path.write_text(json.dumps(data))
    with Project.create(work / "proj", folder / "images") as proj:
        try:
            import_coco(proj, path)
        except CocoImportError as exc:
            assert "\n" not in str(exc)
            assert proj.records == {} and proj.classes == {}


@pytest.fixture(scope="module")
def index(folder) -> dict:
    """A valid project.json with a class, a mask and a support."""
    with Project.create(folder / "proj-base", folder / "images") as proj:
        proj.add_class("thing")
        m = np.zeros((H, W), bool)
        m[1:5, 1:5] = True
        proj.set_mask(proj.image_id("a.png"), 1, m)
        proj.add_support(proj.image_id("a.png"), 1)
        proj.save()
        return json.loads((proj.folder / "project.json").read_text())


@FUZZ
@given(data=st.data())
def test_any_project_index_opens_or_is_refused_with_a_message(index, tmp_path_factory, data):
    doc = data.draw(st.one_of(json_values, mutated(index)))
    work = tmp_path_factory.mktemp("p")
    (work / "masks").mkdir()
    (work / "project.json").write_text(json.dumps(doc))
    try:
        with Project.open(work) as proj:
            for image_id, class_id in proj.records:  # whatever was kept can be read, or is named as damaged
                try:
                    proj.labels(image_id, class_id)
                except ProjectError as exc:
                    assert "\n" not in str(exc)
    except ProjectError as exc:
        assert "\n" not in str(exc)
