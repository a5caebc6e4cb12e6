"""Mask PNG folders in: a class value per pixel, named by `dataset_meta.json` (datumaro's common semantic
segmentation meta, as the PNG export writes it) or `palette.json` (the PNG export's own), one PNG per image.

A PNG names its image as the PNG export does (`sub/a.jpg.png` is `sub/a.jpg`), or by its stem as other tools do
(`sub/a.png` for `sub/a.jpg`). Palette, grey and RGB PNGs are read (RGB by the meta's colours). Each class of an
image is one mask: a semantic PNG holds no instances.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from annotator.config import State
from annotator.formats.importing import (
    ImportFormatError,
    Planned,
    image_by_stem,
    image_matcher,
    image_size,
    is_kept,
    read_index_png,
    store,
)
from annotator.project.store import Project
from annotator.utils.progress import NO_STEPS, Steps

META_FILES = ("dataset_meta.json", "palette.json")


def read_meta(source: Path) -> tuple[dict[int, str], dict[tuple[int, int, int], int], int]:
    """(value -> class name, RGB colour -> value, background value) of a mask folder, from dataset_meta.json, else
    palette.json; ImportFormatError naming the file when neither is there or it is not such a file."""
    path = next((source / n for n in META_FILES if (source / n).is_file()), None)
    if path is None:
        raise ImportFormatError(f"{source}: a PNG mask folder needs {' or '.join(META_FILES)} to name its values")
    try:
        data = json.loads(path.read_text("utf-8"))
        if path.name == "dataset_meta.json":
            names = {int(k): str(v) for k, v in data["label_map"].items()}
            colours = {tuple(map(int, c)): k for k, c in enumerate(data.get("segmentation_colors", []))}
            background = int(data.get("background_label", 0))
        else:
            names = {int(k): str(v["name"]) for k, v in data.items()}
            colours = {tuple(int(v["color"][i : i + 2], 16) for i in (1, 3, 5)): int(k) for k, v in data.items()}
            background = 0
    except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise ImportFormatError(f"{path}: not a mask folder's label map ({exc.__class__.__name__}: {exc})") from None
    if any(len(c) != 3 for c in colours):
        raise ImportFormatError(f"{path}: a colour is not three values")
    return names, colours, background


def import_png(
    project: Project,
    source: Path | str,
    state: State = State.ACCEPTED,
    overwrite: bool = False,
    steps: Steps = NO_STEPS,
) -> dict:
    """Add a mask PNG folder to the project: classes by the meta's names, a mask per class present in each PNG.
    Everything is read and checked before anything is stored. Returns the counts of what was done and left out."""
    source = Path(source)
    names, colours, background = read_meta(source)
    match, by_stem = image_matcher(project), image_by_stem(project)
    planned, unmatched, kept, images = [], [], 0, 0
    for png in sorted(p for p in source.rglob("*.png") if p.is_file()):
        rel = png.relative_to(source).as_posix()
        name = rel[: -len(".png")]
        pid = match(name)  # the PNG export's a.jpg.png
        if pid is None:
            pid = by_stem(name)  # other tools' a.png
        if pid is None:
            unmatched.append(rel)
            continue
        values = read_index_png(png, colours, f"{source.name}'s label map")
        if values.shape != image_size(project, pid, str(png)):
            raise ImportFormatError(f"{png}: {values.shape[1]}x{values.shape[0]} is not the image's size")
        images += 1
        for k in np.unique(values).tolist():
            if k == background:
                continue
            name = names.get(k)
            if name is None or (name.startswith("_unused_") and name.endswith("_")):
                raise ImportFormatError(f"{png}: value {k} names no class in the label map")
            if is_kept(project, pid, name, overwrite):
                kept += 1
                continue
            planned.append(Planned(pid, name, (values == k).astype(np.uint8)))
    store(project, planned, state, overwrite, source.name, steps)
    return {
        "images": images,
        "masks": len(planned),
        "annotations": len(planned),
        "kept": kept,
        "unusable": 0,
        "unmatched": unmatched,
    }
