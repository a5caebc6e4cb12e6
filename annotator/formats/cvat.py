"""CVAT for images 1.1 XML, out and in: one `annotations.xml` for the whole project, an `<image>` per image (its path
relative to the image folder, its width and height) holding the shapes.

Out, a mask goes as `outline_polygons` gives it (a polygon holds no hole): its bands share the instance's `group_id`,
so it comes back pixel for pixel. In, polygons, boxes and CVAT's masks (`rle` counts of alternating background and
object runs, row by row over the `left`/`top`/`width`/`height` box, background first) are read; the shapes of one
(label, group_id) are one instance, and polylines, points and tags are counted as left out.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from annotator.config import MAX_PIXELS, State
from annotator.formats.export import (
    ExportOptions,
    background_images,
    exported_records,
    image_size_or_skip,
    instance_polygons,
)
from annotator.formats.importing import ImportFormatError, Planned, image_matcher, image_size, store
from annotator.formats.labelme import import_counts, plan_instances
from annotator.io.atomic import atomic_write_bytes
from annotator.project.store import Project
from annotator.utils.progress import NO_STEPS, Steps

CVAT_VERSION = "1.1"
MAX_FILE_BYTES = 512 * 2**20  # the XML is read whole; larger is refused by name


def _points_text(poly: np.ndarray) -> str:
    return ";".join(f"{round(float(x), 3)},{round(float(y), 3)}" for x, y in poly)


def export_cvat(project: Project, out: Path | str, opts: ExportOptions | None = None, steps: Steps = NO_STEPS) -> dict:
    """Write CVAT for images 1.1 XML to `out`: every image with an exported mask (or rejected for every class: no
    shapes), its masks as polygons. Returns the counts."""
    out, opts = Path(out), opts or ExportOptions()
    records = exported_records(project, opts)
    chosen = sorted(set(records) | background_images(project))
    root = ET.Element("annotations")
    ET.SubElement(root, "version").text = CVAT_VERSION
    task = ET.SubElement(ET.SubElement(root, "meta"), "task")
    ET.SubElement(task, "name").text = project.image_root.name
    ET.SubElement(task, "size").text = str(len(chosen))
    ET.SubElement(task, "mode").text = "annotation"
    labels = ET.SubElement(task, "labels")
    for c in sorted(project.classes.values(), key=lambda c: c.id):
        label = ET.SubElement(labels, "label")
        ET.SubElement(label, "name").text = c.name
        ET.SubElement(label, "color").text = c.color
        ET.SubElement(label, "type").text = "polygon"
        ET.SubElement(label, "attributes")
    written, shapes, skipped = 0, 0, []
    for k, i in enumerate(chosen):
        steps(k, len(chosen))
        size = image_size_or_skip(project, i, skipped)
        if size is None:
            continue
        h, w = size
        image = ET.SubElement(root, "image", id=str(written), name=project.images[i].file, width=str(w), height=str(h))
        for class_id, group, poly in instance_polygons(project, i, records.get(i, []), opts):
            attrs = {"label": project.classes[class_id].name, "source": "manual", "occluded": "0"}
            attrs |= {"points": _points_text(poly), "z_order": "0"}
            if group is not None:
                attrs["group_id"] = str(group)
            ET.SubElement(image, "polygon", attrs)
            shapes += 1
        written += 1
    ET.indent(root, space=" ")
    atomic_write_bytes(out, ET.tostring(root, encoding="utf-8", xml_declaration=True))
    return {"images": written, "shapes": shapes, "skipped": skipped}


def _number(shape: ET.Element, name: str, where: str) -> float:
    try:
        value = float(shape.get(name, ""))
    except ValueError:
        raise ImportFormatError(f"{where}: '{name}' must be a number") from None
    if not np.isfinite(value):
        raise ImportFormatError(f"{where}: '{name}' must be a finite number")
    return value


def _polygon(text: str, where: str) -> np.ndarray:
    try:
        xy = np.array([[float(v) for v in p.split(",")] for p in text.split(";") if p.strip()], np.float64)
    except ValueError:
        xy = None
    if xy is None or xy.ndim != 2 or xy.shape[1] != 2 or not np.isfinite(xy).all():
        raise ImportFormatError(f"{where}: 'points' must be x,y pairs of finite numbers separated by ';'")
    if len(xy) < 3:
        raise ImportFormatError(f"{where}: a polygon needs at least 3 points")
    return xy


def _mask(shape: ET.Element, where: str) -> tuple[int, int, np.ndarray]:
    """A CVAT mask as (x0, y0, pixels of its box)."""
    x0, y0, bw, bh = (_number(shape, k, where) for k in ("left", "top", "width", "height"))
    if min(bw, bh) < 1 or any(v != int(v) for v in (x0, y0, bw, bh)):
        raise ImportFormatError(f"{where}: a mask's left, top, width and height must be whole, its box not empty")
    if bw * bh > MAX_PIXELS:  # a crafted box would be decoded whole before it is clipped to the image
        raise ImportFormatError(f"{where}: a mask's box of {int(bw)} x {int(bh)} is over {MAX_PIXELS:,} pixels")
    try:
        counts = np.array([int(c) for c in shape.get("rle", "").split(",")], np.int64)
    except ValueError:
        raise ImportFormatError(f"{where}: 'rle' must be whole counts separated by ','") from None
    if (counts < 0).any() or counts.sum() != bw * bh:
        raise ImportFormatError(f"{where}: 'rle' counts must sum to width x height ({int(bw * bh)})")
    values = np.arange(len(counts)) % 2 == 1  # background first
    return int(x0), int(y0), np.repeat(values, counts).reshape(int(bh), int(bw))


def shape_outline(shape: ET.Element, where: str) -> np.ndarray | tuple[int, int, np.ndarray] | None:
    """One CVAT shape, checked, as labelme.rasterise draws it: a polygon [K,2] (a box becomes one) or a mask's
    (x0, y0, pixels); None for a shape without an area (polyline, points, tag)."""
    if shape.tag == "polygon":
        return _polygon(shape.get("points", ""), where)
    if shape.tag == "box":
        x0, y0, x1, y1 = (_number(shape, k, where) for k in ("xtl", "ytl", "xbr", "ybr"))
        return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    if shape.tag == "mask":
        return _mask(shape, where)
    return None


def _images(path: Path) -> Iterator[ET.Element]:
    """The `<image>` elements of a CVAT for images XML file, checked to be one."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ImportFormatError(f"{path}: {path.stat().st_size:,} bytes, too large for a CVAT XML file")
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise ImportFormatError(f"{path}: not a readable CVAT XML file ({exc})") from None
    if root.tag != "annotations":
        raise ImportFormatError(f"{path}: not a CVAT for images XML file (its root is <{root.tag}>)")
    if root.find("track") is not None:
        raise ImportFormatError(f"{path}: CVAT for video (tracks); export the task as CVAT for images")
    yield from root.iter("image")


def import_cvat(
    project: Project,
    source: Path | str,
    state: State = State.ACCEPTED,
    overwrite: bool = False,
    steps: Steps = NO_STEPS,
) -> dict:
    """Add a CVAT for images XML file (or a folder's annotations.xml) to the project: classes by label, the shapes
    of one (label, group_id) as an instance. Everything is read and checked before anything is stored; accepted and
    edited masks are kept unless `overwrite`. Returns the counts of what was done and left out."""
    source = Path(source)
    path = source / "annotations.xml" if source.is_dir() else source
    match_image = image_matcher(project)
    planned: list[Planned] = []
    unmatched: list[str] = []
    tally: Counter[str] = Counter()  # shapes drawn and unusable, masks kept
    found = 0
    for image in _images(path):
        name = image.get("name") or ""
        pid = match_image(name)
        if pid is None:
            unmatched.append(name)
            continue
        found += 1
        h, w = image_size(project, pid, f"{path}: image {name}")
        if (image.get("height"), image.get("width")) not in ((str(h), str(w)), (None, None)):
            raise ImportFormatError(
                f"{path}: image {name}: height x width {image.get('height')} x {image.get('width')} differ from "
                f"the image's {h} x {w}"
            )
        instances: dict[str, dict[object, list]] = {}  # label -> instance key -> outlines, in file order
        for n, shape in enumerate(image):
            where = f"{path}: image {name}, shape {n} <{shape.tag}>"
            label = (shape.get("label") or "").strip()
            if not label:
                raise ImportFormatError(f"{where}: needs a 'label'")
            outline = shape_outline(shape, where)
            if outline is None:
                tally["unusable"] += 1
                continue
            group = shape.get("group_id")
            key = ("group", group) if group not in (None, "", "0") else ("shape", n)
            instances.setdefault(label, {}).setdefault(key, []).append(outline)
        planned += plan_instances(project, pid, instances, (h, w), overwrite, str(path), tally)
    store(project, planned, state, overwrite, path.name, steps)
    return import_counts(found, planned, tally, unmatched)
