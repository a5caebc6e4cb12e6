"""Exporting a project: COCO instances (lossless RLE or polygons) and index PNGs with a palette.

What is exported is the user's choice: accepted masks only (default) or proposals too (with their
score); one annotation per class per image (semantic) or one per instance (the user's split, else
connected components; parts under `min_area` pixels, the CRF's specks, are left out). Polygons
cannot hold holes: such a mask falls back to RLE or is refused.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image

from annotator.config import MIN_INSTANCE_AREA, State
from annotator.formats.coco import CocoBuilder
from annotator.formats.polygons import hole_tops, outline_polygons
from annotator.inference.mask_parts import parts_of_at_least
from annotator.io.atomic import atomic_write_bytes, atomic_write_json
from annotator.io.imageio import ImageReadError
from annotator.project.store import MaskRecord, Project
from annotator.utils.progress import NO_STEPS, Steps


class ExportError(RuntimeError):
    """The export cannot be made as asked; the message names the image and class."""


@dataclass(frozen=True)
class ExportOptions:
    include_proposals: bool = False
    instances: bool = False  # one annotation per instance instead of per class
    polygons: bool = False
    holes: str = "rle"  # with polygons, a mask with holes: "rle" (fall back) or "refuse"
    val_fraction: float = 0.0  # yolo-seg, voc: the share of images in the val split ...
    seed: int = 0  # ... drawn with this seed
    min_area: int = MIN_INSTANCE_AREA  # with instances: parts of fewer pixels are left out


def _exported_states(opts: ExportOptions) -> set[str]:
    return {State.ACCEPTED, State.PROPOSED} if opts.include_proposals else {State.ACCEPTED}


def left_out_proposals(project: Project, opts: ExportOptions) -> int:
    """How many unreviewed proposals the export leaves out (the user is told, with the option that adds them)."""
    if opts.include_proposals:
        return 0
    return sum(
        1 for (_, c), r in project.records.items() if r.state == State.PROPOSED and r.mask and c in project.classes
    )


def exported_records(project: Project, opts: ExportOptions) -> dict[int, list[tuple[int, MaskRecord]]]:
    """Image id -> its (class id, record) pairs the export writes: a mask in an exported state, of a class
    that still exists."""
    states = _exported_states(opts)
    out: dict[int, list[tuple[int, MaskRecord]]] = {}
    for (image_id, class_id), rec in sorted(project.records.items()):
        if rec.state in states and rec.mask and class_id in project.classes:
            out.setdefault(image_id, []).append((class_id, rec))
    return out


def background_images(project: Project) -> set[int]:
    """Ids of the images rejected for every class: reviewed and found free of them all, so exported as background
    (an empty label file, an all-background PNG) rather than left out as not yet labelled."""
    classes = list(project.classes)
    return {i for i in project.images if classes and all(project.record(i, c).state == State.REJECTED for c in classes)}


def image_size_or_skip(project: Project, image_id: int, skipped: list[str]) -> tuple[int, int] | None:
    """The image's size, or None (its reason added to `skipped`) when it cannot be read: missing, damaged, or
    over the pixel limit. One such image is left out by name; it does not stop the export."""
    try:
        return project.size_of(image_id)  # remembered; read from the header only the first time
    except ImageReadError as exc:
        skipped.append(str(exc))
        return None


def stem_names(project: Project, ids: list[int], suffix: str, tool: str, what: str) -> dict[int, str]:
    """Each image's output as `tool` names `what`: its relative path with `suffix` for the extension. Two images
    that would share one (a.jpg, a.png) are an ExportError, raised before anything is written."""
    names: dict[int, str] = {}
    taken: dict[str, str] = {}
    for i in ids:
        file = project.images[i].file
        name = f"{file.rsplit('.', 1)[0]}{suffix}"
        if name in taken:
            raise ExportError(
                f"{taken[name]} and {file}: {tool} names {what} by the image's name without its extension, so "
                "these two would share one; rename one of them"
            )
        taken[name] = file
        names[i] = name
    return names


def val_split(chosen: list[int], opts: ExportOptions) -> set[int]:
    """The ids of `chosen` that go to the val split: `opts.val_fraction` of them, drawn with `opts.seed`;
    ExportError for a fraction outside [0, 1)."""
    if not 0 <= opts.val_fraction < 1:
        raise ExportError(f"the val fraction must be at least 0 and below 1, not {opts.val_fraction}")
    return set(random.Random(opts.seed).sample(chosen, round(opts.val_fraction * len(chosen))))


def palette_png(index: np.ndarray, palette: list[int]) -> bytes:
    """An 8-bit index map [H,W] as a palette PNG (`palette`: 256 flat RGB triples)."""
    img = Image.fromarray(index, mode="P")
    img.putpalette(palette)
    buf = BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def png_name(file: str) -> str:
    """The index PNG of an image: its relative path and full name plus `.png` (a.jpg -> a.jpg.png), so that
    images sharing a stem (a.jpg, a.png) never share an output, and subfolders are mirrored."""
    return f"{file}.png"


def instance_masks(labels: np.ndarray, instances: bool, min_area: int = 0) -> list[np.ndarray]:
    """Masks to annotate: the union (semantic), or each user instance, or else each connected component. Per
    instance, parts of fewer than `min_area` pixels are left out first (an instance left empty goes too)."""
    if not instances:
        return [labels > 0]
    ids = [i for i in np.unique(labels) if i != 0]
    if len(ids) > 1:
        masks = [labels == i for i in ids]
        if min_area <= 1:
            return masks
        kept = [parts_of_at_least(m, min_area) for m in masks]
        return [np.logical_or.reduce(parts) for parts in kept if parts]
    return parts_of_at_least(labels > 0, min_area)


def instance_polygons(
    project: Project, image_id: int, records: list[tuple[int, MaskRecord]], opts: ExportOptions
) -> Iterator[tuple[int, int, np.ndarray]]:
    """(class id, instance number from 1, outline polygon [K,2]) of each exported instance of one image (per
    `opts.instances` and `opts.min_area`), in the order of its `records`: what the polygon formats write."""
    for class_id, _ in records:
        for n, m in enumerate(instance_masks(project.labels(image_id, class_id), opts.instances, opts.min_area), 1):
            for poly in outline_polygons(m):
                yield class_id, n, poly


def polygons_of(mask: np.ndarray) -> list[list[float]] | None:
    """COCO polygons (flat x, y lists) of each part of a mask, exact at pixel centres (formats.polygons), or None
    if it has holes, which COCO polygons cannot hold."""
    if hole_tops(mask):
        return None
    return [[round(v, 2) for v in p.reshape(-1).tolist()] for p in outline_polygons(mask)]


def export_coco(
    project: Project, out: Path | str, opts: ExportOptions = ExportOptions(), steps: Steps = NO_STEPS
) -> dict:
    """Write a COCO instances file atomically; returns counts {'images', 'annotations', 'rle_fallbacks'}. `steps`:
    called per image (Cancelled stops it before anything is written)."""
    cats = [{"id": c.id, "name": c.name, "supercategory": ""} for c in project.classes.values()]
    coco = CocoBuilder(categories=cats)
    fallbacks = 0
    by_image = exported_records(project, opts)
    skipped: list[str] = []
    for k, (image_id, entry) in enumerate(sorted(project.images.items())):
        steps(k, len(project.images))
        size = image_size_or_skip(project, image_id, skipped)
        if size is None:
            continue
        coco_id = coco.add_image(entry.file, *size)
        for class_id, rec in by_image.get(image_id, []):
            labels = project.labels(image_id, class_id)
            score = rec.score if rec.state == State.PROPOSED else None
            for m in instance_masks(labels, opts.instances, opts.min_area):
                ann = coco.add_mask(coco_id, class_id, m, score)
                if ann is None or not opts.polygons:
                    continue
                polys = polygons_of(m)
                if polys is None:
                    if opts.holes == "refuse":
                        name = project.classes[class_id].name
                        raise ExportError(
                            f"{entry.file}: the '{name}' mask has holes, which polygons cannot hold; "
                            "export as RLE or let such masks fall back to RLE"
                        )
                    fallbacks += 1
                else:
                    ann["segmentation"] = polys
    coco.write(out, info={"description": f"annotator export of {project.folder.name}"})
    return {
        "images": len(coco.images),
        "annotations": len(coco.annotations),
        "rle_fallbacks": fallbacks,
        "skipped": skipped,
    }


def export_png(
    project: Project, out_dir: Path | str, opts: ExportOptions = ExportOptions(), steps: Steps = NO_STEPS
) -> dict:
    """One palette PNG per image with an exported mask, or rejected for every class (all background), named by
    png_name (0 = background, k = class k; a later class wins an overlap), palette.json and dataset_meta.json
    (datumaro's label map)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    by_image = exported_records(project, opts)
    if max(project.classes, default=0) > 255:
        raise ExportError("PNG export holds at most 255 classes")
    palette = [0, 0, 0] * 256
    for c in project.classes.values():
        palette[3 * c.id : 3 * c.id + 3] = [int(c.color[i : i + 2], 16) for i in (1, 3, 5)]
    written, skipped = 0, []
    background = background_images(project)
    for k, (image_id, entry) in enumerate(sorted(project.images.items())):
        steps(k, len(project.images))
        recs = by_image.get(image_id, [])
        size = image_size_or_skip(project, image_id, skipped) if recs or image_id in background else None
        if size is None:
            continue
        index = np.zeros(size, np.uint8)
        for class_id, _ in recs:
            index[project.mask(image_id, class_id)] = class_id
        target = out_dir / png_name(entry.file)
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target, palette_png(index, palette))
        written += 1
    names = {0: "background", **{c.id: c.name for c in project.classes.values()}}
    atomic_write_json(
        out_dir / "palette.json",
        {
            str(k): {"name": name, "color": "#{:02x}{:02x}{:02x}".format(*palette[3 * k : 3 * k + 3])}
            for k, name in names.items()
        },
    )
    # datumaro's (and OpenVINO's) dataset_meta.json: colours listed by pixel value, so ids a deleted class left
    # unused are listed too, by a name no class can clash with
    top = max(names)
    atomic_write_json(
        out_dir / "dataset_meta.json",
        {
            "label_map": {str(k): names.get(k, f"_unused_{k}_") for k in range(top + 1)},
            "background_label": "0",
            "segmentation_colors": [palette[3 * k : 3 * k + 3] for k in range(top + 1)],
        },
    )
    return {"images": written, "skipped": skipped}
