"""YOLO segmentation in the Ultralytics layout, out and in: `images/<split>/`, `labels/<split>/*.txt` (a line per
polygon: the class index, then x y pairs normalised to [0, 1]) and `data.yaml` naming the classes in index order.

Ultralytics reads a line as one instance and cannot hold a hole, so a mask is written as `outline_polygons`
gives it: a line per part, and a part with holes as several bands side by side (the holes stay holes; such an
object trains as several instances of its class). Read back, each line is an instance of its class (a later line
takes pixels shared with an earlier one) and the union of a class's lines is the mask written, pixel for pixel.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import yaml
from pycocotools import mask as mask_utils

from annotator.config import State
from annotator.formats.export import (
    ExportOptions,
    background_images,
    exported_records,
    image_size_or_skip,
    instance_polygons,
    stem_names,
    val_split,
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
from annotator.io.atomic import atomic_copy, atomic_write_bytes
from annotator.io.imageio import IMAGE_EXTENSIONS
from annotator.project.store import Project
from annotator.utils.progress import NO_STEPS, Steps


def _line(index: int, poly: np.ndarray, h: int, w: int) -> str:
    xy = poly / np.array([w, h])
    return f"{index} " + " ".join(f"{v:.6f}" for v in xy.reshape(-1))  # 1e-6 of a side: under 0.1 px to 100k px


def export_yolo_seg(
    project: Project,
    out_dir: Path | str,
    opts: ExportOptions | None = None,
    steps: Steps = NO_STEPS,
) -> dict:
    """Write the Ultralytics layout into `out_dir`: a copy of each image with an exported mask (or rejected for
    every class: a background image, with an empty label file), its label file and data.yaml. `opts.val_fraction`
    of them, drawn with `opts.seed`, go to the val split (none: val is the train split). Exporting again into the
    same folder replaces each image's files, in whichever split it now falls."""
    out_dir, opts = Path(out_dir), opts or ExportOptions()
    classes = sorted(project.classes)
    index = {c: i for i, c in enumerate(classes)}
    records = exported_records(project, opts)
    chosen = sorted(set(records) | background_images(project))
    label_of = stem_names(project, chosen, ".txt", "YOLO", "a label file")  # relative to its split
    val = val_split(chosen, opts)
    for part in ("images", "labels"):  # the layout is there even when no image is exported
        (out_dir / part / "train").mkdir(parents=True, exist_ok=True)
    written, lines, skipped = 0, 0, []
    for k, i in enumerate(chosen):
        steps(k, len(chosen))
        size = image_size_or_skip(project, i, skipped)
        if size is None:
            continue
        h, w = size
        file = project.images[i].file
        split = "val" if i in val else "train"
        label = label_of[i]
        other = "train" if split == "val" else "val"
        for stale in (out_dir / "images" / other / file, out_dir / "labels" / other / label):
            stale.unlink(missing_ok=True)  # an earlier export into this folder put the image in the other split
        text = [
            _line(index[class_id], p, h, w)
            for class_id, _, p in instance_polygons(project, i, records.get(i, []), opts)
        ]
        image_out = out_dir / "images" / split / file
        image_out.parent.mkdir(parents=True, exist_ok=True)
        atomic_copy(project.image_path(i), image_out)
        label_out = out_dir / "labels" / split / label
        label_out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(label_out, "".join(t + "\n" for t in text).encode())
        written += 1
        lines += len(text)
    data = {
        "train": "images/train",
        "val": "images/val" if val else "images/train",
        "names": {index[c]: project.classes[c].name for c in classes},
    }
    atomic_write_bytes(out_dir / "data.yaml", yaml.safe_dump(data, sort_keys=False, allow_unicode=True).encode())
    return {"images": written, "lines": lines, "val": len(val), "skipped": skipped}


def read_names(data_yaml: Path) -> list[str]:
    """The class names of a data.yaml, in index order (`names` as a list, or as a mapping from index to name)."""
    try:
        data = yaml.safe_load(data_yaml.read_text("utf-8"))
    except (OSError, UnicodeError, yaml.YAMLError) as exc:
        raise ImportFormatError(f"{data_yaml}: not a readable data.yaml ({str(exc).splitlines()[0]})") from None
    names = data.get("names") if isinstance(data, dict) else None
    if isinstance(names, dict) and all(isinstance(k, int) for k in names) and sorted(names) == list(range(len(names))):
        names = [names[k] for k in range(len(names))]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n.strip() for n in names):
        raise ImportFormatError(f"{data_yaml}: 'names' must list the class names (a list, or index: name)")
    return [n.strip() for n in names]


def _polygon(tokens: list[str], names: list[str], where: str) -> tuple[int, list[float]] | None:
    """(class index, normalised coordinates) of one label line; None for a box-only line (5 numbers)."""
    try:
        cls = int(tokens[0])
        xy = [float(t) for t in tokens[1:]]
    except ValueError:
        raise ImportFormatError(f"{where}: not a class index followed by numbers") from None
    if not 0 <= cls < len(names):
        raise ImportFormatError(f"{where}: class index {cls} is not one of data.yaml's {len(names)} names")
    if len(xy) == 4:
        return None
    if len(xy) < 6 or len(xy) % 2:
        raise ImportFormatError(f"{where}: a polygon needs x y pairs, at least 3 of them")
    if not all(math.isfinite(v) and -1e-3 <= v <= 1 + 1e-3 for v in xy):
        raise ImportFormatError(f"{where}: coordinates must be normalised to [0, 1]")
    return cls, xy


def import_yolo_seg(
    project: Project,
    source: Path | str,
    state: State = State.ACCEPTED,
    overwrite: bool = False,
    steps: Steps = NO_STEPS,
) -> dict:
    """Add an Ultralytics-layout dataset (its folder, or its data.yaml) to the project: the classes by name, each
    label line as an instance. Everything is read and checked before anything is stored; accepted and edited
    masks are kept unless `overwrite`. Returns the counts of what was done and left out."""
    source = Path(source)
    root = source.parent if source.is_file() else source
    data_yaml = source if source.is_file() else root / "data.yaml"
    if not data_yaml.is_file():
        raise ImportFormatError(f"{root}: no data.yaml (a YOLO dataset names its classes there)")
    names = read_names(data_yaml)
    images_dir, labels_dir = root / "images", root / "labels"
    if not labels_dir.is_dir():
        raise ImportFormatError(f"{root}: no labels/ folder")
    images = {
        p.relative_to(images_dir).with_suffix("").as_posix(): p.relative_to(root).as_posix()
        for p in (images_dir.rglob("*") if images_dir.is_dir() else ())
        if p.suffix.lower() in IMAGE_EXTENSIONS
    }
    match_image = image_matcher(project)
    planned: list[Planned] = []
    unmatched: list[str] = []
    kept = unusable = annotations = found = 0
    for label_file in sorted(labels_dir.rglob("*.txt")):
        rel = label_file.relative_to(labels_dir).with_suffix("").as_posix()
        name = images.get(rel, f"images/{rel}")
        pid = match_image(name)
        if pid is None:
            unmatched.append(name)
            continue
        found += 1
        h, w = image_size(project, pid, f"{label_file}: image {name}")
        try:
            text = label_file.read_text("utf-8")
        except (OSError, UnicodeError) as exc:
            raise ImportFormatError(f"{label_file}: not a readable label file ({exc})") from None
        per_class: dict[int, list[list[float]]] = {}  # polygons in pixels; rasterised one at a time below
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            got = _polygon(line.split(), names, f"{label_file}:{n}")
            if got is None:
                unusable += 1
                continue
            cls, xy = got
            per_class.setdefault(cls, []).append((np.asarray(xy).reshape(-1, 2) * [w, h]).reshape(-1).tolist())
            annotations += 1
        for cls, polys in per_class.items():
            if len(polys) > MAX_INSTANCES:
                raise ImportFormatError(
                    f"{label_file}: {len(polys)} lines of class '{names[cls]}', more than {MAX_INSTANCES}"
                )
            if is_kept(project, pid, names[cls], overwrite):
                kept += 1
                continue
            masks = (mask_utils.decode(mask_utils.frPyObjects([p], h, w))[..., 0] > 0 for p in polys)
            planned.append(Planned(pid, names[cls], label_map(masks, len(polys), (h, w))))
    store(project, planned, state, overwrite, data_yaml.parent.name, steps)
    return {
        "images": found,
        "masks": len(planned),
        "annotations": annotations,
        "kept": kept,
        "unusable": unusable,
        "unmatched": unmatched,
    }
