"""labelme's JSON, out and in: one file per image (`<relative path without extension>.json`), its `shapes` each a
labelled polygon (also read: rectangles, circles and labelme's bitmap `mask` shapes), `group_id` tying the shapes of
one instance together, `imagePath` relative to the JSON file.

A polygon cannot hold a hole, so a mask is written as `outline_polygons` gives it: its bands share the instance's
`group_id`. Read back, the shapes of one (label, group_id) are one instance (a shape without a group_id is its own)
and the union of a class's shapes is the mask written, pixel for pixel; a later instance takes pixels shared with
an earlier one. labelme's `imageData` is left out (null): the image stays where it is.
"""

from __future__ import annotations

import base64
import json
import math
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from annotator.config import State
from annotator.formats.export import (
    ExportOptions,
    background_images,
    exported_records,
    image_size_or_skip,
    instance_polygons,
    stem_names,
)
from annotator.formats.importing import (
    MAX_INSTANCES,
    ImportFormatError,
    Planned,
    image_matcher,
    image_size,
    is_kept,
    label_map,
    store,
)
from annotator.io.atomic import atomic_write_bytes
from annotator.project.store import Project
from annotator.utils.progress import NO_STEPS, Steps

LABELME_VERSION = "5.4.1"  # the file layout written (labelme reads older and newer ones alike)
MAX_FILE_BYTES = 256 * 2**20  # a labelme file is one image's shapes; larger is not one


def export_labelme(
    project: Project, out_dir: Path | str, opts: ExportOptions | None = None, steps: Steps = NO_STEPS
) -> dict:
    """Write a labelme JSON per image with an exported mask (or rejected for every class: no shapes) into
    `out_dir`, mirroring subfolders, `imagePath` pointing at the project's image. Returns the counts."""
    out_dir, opts = Path(out_dir), opts or ExportOptions()
    out_dir.mkdir(parents=True, exist_ok=True)
    records = exported_records(project, opts)
    chosen = sorted(set(records) | background_images(project))
    json_of = stem_names(project, chosen, ".json", "labelme", "its file")
    written, shapes_written, skipped = 0, 0, []
    for k, i in enumerate(chosen):
        steps(k, len(chosen))
        size = image_size_or_skip(project, i, skipped)
        if size is None:
            continue
        h, w = size
        out = out_dir / json_of[i]
        shapes = [
            {
                "label": project.classes[class_id].name,
                "points": [[round(float(x), 3), round(float(y), 3)] for x, y in poly],
                "group_id": group,
                "description": "",
                "shape_type": "polygon",
                "flags": {},
                "mask": None,
            }
            for class_id, group, poly in instance_polygons(project, i, records.get(i, []), opts)
        ]
        doc = {
            "version": LABELME_VERSION,
            "flags": {},
            "shapes": shapes,
            "imagePath": Path(os.path.relpath(project.image_path(i), out.parent)).as_posix(),
            "imageData": None,
            "imageHeight": h,
            "imageWidth": w,
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out, json.dumps(doc, ensure_ascii=False, indent=1).encode())
        written += 1
        shapes_written += len(shapes)
    return {"images": written, "shapes": shapes_written, "skipped": skipped}


def _points(shape: dict, where: str) -> np.ndarray:
    """A shape's points [K,2], checked: finite numbers."""
    pts = shape.get("points")
    try:
        xy = np.asarray(pts, dtype=np.float64)
    except (TypeError, ValueError):
        raise ImportFormatError(f"{where}: 'points' must be a list of [x, y] pairs") from None
    if xy.ndim != 2 or xy.shape[1] != 2 or not np.isfinite(xy).all():
        raise ImportFormatError(f"{where}: 'points' must be a list of [x, y] pairs of finite numbers")
    return xy


def shape_outline(shape: dict, where: str) -> np.ndarray | tuple[int, int, np.ndarray] | None:
    """One labelme shape, checked, as what rasterise() draws: a polygon [K,2] (rectangles and circles become
    one), or a bitmap mask's (x0, y0, pixels); None for a shape without an area (line, linestrip, point)."""
    kind = shape.get("shape_type") or "polygon"
    xy = _points(shape, where)
    if kind == "polygon":
        if len(xy) < 3:
            raise ImportFormatError(f"{where}: a polygon needs at least 3 points")
        return xy
    if kind == "rectangle":
        if len(xy) != 2:
            raise ImportFormatError(f"{where}: a rectangle has 2 points")
        (x0, y0), (x1, y1) = xy.min(0), xy.max(0)
        return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    if kind == "circle":
        if len(xy) != 2:
            raise ImportFormatError(f"{where}: a circle has 2 points (centre, a point on it)")
        r = float(np.hypot(*(xy[1] - xy[0])))
        t = np.linspace(0, 2 * math.pi, max(16, min(720, int(4 * r))), endpoint=False)
        return xy[0] + r * np.stack([np.cos(t), np.sin(t)], 1)
    if kind == "mask":  # a base64 PNG covering the box of its two points
        try:
            png = base64.b64decode(shape.get("mask") or "", validate=True)
            small = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
        except (ValueError, TypeError, cv2.error):
            small = None
        if small is None:
            raise ImportFormatError(f"{where}: 'mask' is not a base64 PNG")
        x0, y0 = (int(round(v)) for v in xy.min(0))
        return x0, y0, small > 0
    return None


def rasterise(outline: np.ndarray | tuple[int, int, np.ndarray], h: int, w: int) -> np.ndarray:
    """The pixels of a shape_outline on an h x w image (a bitmap clipped to it)."""
    if isinstance(outline, tuple):
        x0, y0, small = outline
        out = np.zeros((h, w), bool)
        ys, xs = slice(max(y0, 0), min(y0 + small.shape[0], h)), slice(max(x0, 0), min(x0 + small.shape[1], w))
        if ys.start < ys.stop and xs.start < xs.stop:
            out[ys, xs] = small[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]
        return out
    return mask_utils.decode(mask_utils.frPyObjects([outline.reshape(-1).tolist()], h, w))[..., 0] > 0


def _instance_masks(instances: Iterable[list], h: int, w: int, tally: Counter[str]) -> Iterator[np.ndarray]:
    """Each instance's pixels (the union of its shapes' outlines), drawn one instance at a time; `tally` counts the
    shapes drawn and those that cover no pixel (unusable)."""
    for outlines in instances:
        union = np.zeros((h, w), bool)
        for o in outlines:
            m = rasterise(o, h, w)
            tally["drawn" if m.any() else "unusable"] += 1
            union |= m
        yield union


def plan_instances(
    project: Project,
    image: int,
    instances: dict[str, dict[object, list]],
    shape: tuple[int, int],
    overwrite: bool,
    where: str,
    tally: Counter[str],
) -> list[Planned]:
    """The masks to store for one image from its outlines (label -> instance key -> shape_outline()s), drawn one
    instance at a time; `tally` counts the shapes "drawn", those that cover no pixel ("unusable") and the masks
    "kept" (accepted or edited, not overwriting). A label whose shapes all cover no pixel is not stored."""
    h, w = shape
    planned: list[Planned] = []
    for label, shapes in instances.items():
        if len(shapes) > MAX_INSTANCES:
            raise ImportFormatError(f"{where}: {len(shapes)} instances of '{label}', more than {MAX_INSTANCES}")
        labels = label_map(_instance_masks(shapes.values(), h, w, tally), len(shapes), (h, w))
        if not labels.any():
            continue
        if is_kept(project, image, label, overwrite):
            tally["kept"] += 1
            continue
        planned.append(Planned(image, label, labels))
    return planned


def import_counts(found: int, planned: list[Planned], tally: Counter[str], unmatched: list[str]) -> dict:
    """What a shapes import (labelme, CVAT) did and left out, as the CLI reports it."""
    return {
        "images": found,
        "masks": len(planned),
        "annotations": tally["drawn"],
        "kept": tally["kept"],
        "unusable": tally["unusable"],
        "unmatched": unmatched,
    }


def _read(path: Path) -> dict:
    """One labelme file, checked to be one: a JSON object with a list of shapes and an imagePath."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ImportFormatError(f"{path}: {path.stat().st_size:,} bytes, too large for a labelme file")
        doc = json.loads(path.read_bytes())
    except (OSError, UnicodeError, json.JSONDecodeError) as exc:
        raise ImportFormatError(f"{path}: not a readable labelme file ({exc})") from None
    if (
        not isinstance(doc, dict)
        or not isinstance(doc.get("shapes"), list)
        or not isinstance(doc.get("imagePath"), str)
    ):
        raise ImportFormatError(f"{path}: not a labelme file (needs 'shapes' and 'imagePath')")
    return doc


def import_labelme(
    project: Project,
    source: Path | str,
    state: State = State.ACCEPTED,
    overwrite: bool = False,
    steps: Steps = NO_STEPS,
) -> dict:
    """Add labelme files (one, or a folder of them, searched recursively) to the project: the classes by label,
    the shapes of one (label, group_id) as an instance. Everything is read and checked before anything is stored;
    accepted and edited masks are kept unless `overwrite`. Returns the counts of what was done and left out."""
    source = Path(source)
    files = [source] if source.is_file() else sorted(source.rglob("*.json"))
    if not files:
        raise ImportFormatError(f"{source}: no labelme .json files in it")
    match_image = image_matcher(project)
    planned: list[Planned] = []
    unmatched: list[str] = []
    tally: Counter[str] = Counter()  # shapes drawn and unusable, masks kept
    found = 0
    for path in files:
        doc = _read(path)
        given = doc["imagePath"].replace("\\", "/")
        beside = os.path.normpath((path.resolve().parent / given).as_posix())  # relative to the file, as labelme
        pid = match_image(Path(beside).as_posix())
        if pid is None:
            pid = match_image(given)  # else as other tools write it: relative to the image folder, or a base name
        if pid is None:
            unmatched.append(doc["imagePath"])
            continue
        found += 1
        h, w = image_size(project, pid, f"{path}: image {doc['imagePath']}")
        if (doc.get("imageHeight"), doc.get("imageWidth")) not in ((h, w), (None, None)):
            raise ImportFormatError(
                f"{path}: imageHeight x imageWidth {doc.get('imageHeight')} x {doc.get('imageWidth')} differ from "
                f"the image's {h} x {w}"
            )
        # label -> instance key -> its shapes' outlines, in file order; all checked before any is drawn
        instances: dict[str, dict[object, list]] = {}
        for n, shape in enumerate(doc["shapes"]):
            where = f"{path}: shape {n}"
            label = shape.get("label") if isinstance(shape, dict) else None
            if not isinstance(label, str) or not label.strip():
                raise ImportFormatError(f"{where}: needs a 'label'")
            outline = shape_outline(shape, where)
            if outline is None:
                tally["unusable"] += 1
                continue
            group = shape.get("group_id")
            key = ("group", group) if isinstance(group, int) else ("shape", n)
            instances.setdefault(label.strip(), {}).setdefault(key, []).append(outline)
        planned += plan_instances(project, pid, instances, (h, w), overwrite, str(path), tally)
    store(project, planned, state, overwrite, source.name, steps)
    return import_counts(found, planned, tally, unmatched)
