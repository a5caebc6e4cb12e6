"""Importing a COCO instances file (RLE or polygons) into a project, to continue work begun elsewhere.

Everything is checked before anything is written: an unknown image name, a size that does not match
the image, or an invalid segmentation stops the import with a message that names the entry.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from annotator.config import State
from annotator.imageio import ImageReadError
from annotator.project import Project
from annotator.utils.sampling import evenly_spaced


class CocoImportError(ValueError):
    """The COCO file cannot be imported; the message names the offending entry."""


def _decode(seg, h: int, w: int, where: str) -> np.ndarray:
    try:
        if isinstance(seg, list):
            if not seg or any(len(p) < 6 or len(p) % 2 for p in seg):
                raise ValueError("a polygon needs at least 3 points (6 numbers)")
            rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
        elif isinstance(seg, dict) and isinstance(seg.get("counts"), list):
            if list(seg.get("size", [])) != [h, w]:
                raise ValueError(f"RLE size {seg.get('size')} is not the image's {[h, w]}")
            if sum(seg["counts"]) != h * w:
                raise ValueError("RLE counts do not add up to height x width")
            rle = mask_utils.frPyObjects(seg, h, w)
        elif isinstance(seg, dict) and isinstance(seg.get("counts"), (str, bytes)):
            if list(seg.get("size", [])) != [h, w]:
                raise ValueError(f"RLE size {seg.get('size')} is not the image's {[h, w]}")
            counts = seg["counts"].encode("ascii") if isinstance(seg["counts"], str) else seg["counts"]
            rle = {"size": [h, w], "counts": counts}
            if int(mask_utils.area(rle)) > h * w:
                raise ValueError("RLE covers more pixels than the image has")
        else:
            raise ValueError("segmentation is neither polygons nor RLE")
        m = mask_utils.decode(rle)
    except (ValueError, TypeError, KeyError, UnicodeError, OverflowError) as exc:
        raise CocoImportError(f"{where}: invalid segmentation ({exc})") from None
    if m.shape[:2] != (h, w):
        raise CocoImportError(f"{where}: segmentation decodes to {m.shape[1]}x{m.shape[0]}, image is {w}x{h}")
    return m.astype(bool)


@dataclass
class CocoMasks:
    """A COCO file's masks, grouped by (image key, category id), with its category names and counts."""

    masks: dict[tuple[Hashable, int], list[np.ndarray]]
    categories: dict[int, str]
    images: int
    annotations: int


def read_coco(path: Path | str, locate: Callable[[str], tuple[Hashable, int, int]],
              max_images: int | None = None) -> CocoMasks:
    """The masks of a COCO instances file, every entry checked before anything is returned.
    `locate(file_name)` gives an image's key and its (height, width) on disk, or raises CocoImportError;
    `max_images` keeps that many evenly spaced images."""
    path = Path(path)
    try:
        data = json.loads(path.read_text("utf-8"))
        images, anns, cats = data["images"], data.get("annotations", []), data.get("categories", [])
        cat_map: dict[int, str] = {c["id"]: c["name"] for c in cats}
        ids = {im["id"] for im in images}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CocoImportError(f"{path}: not a readable COCO file ({exc})") from None
    left_out = ids - set(evenly_spaced(sorted(ids), max_images)) if max_images is not None else set()
    images = [im for im in images if im["id"] not in left_out]
    img_map: dict[int, tuple[Hashable, int, int]] = {}
    for im in images:
        key, h, w = locate(str(im.get("file_name", "")).replace("\\", "/"))
        if (im.get("height"), im.get("width")) != (h, w):
            raise CocoImportError(f"{path}: image '{im['file_name']}' is {w}x{h}, the file says "
                                  f"{im.get('width')}x{im.get('height')}")
        img_map[im["id"]] = (key, h, w)
    grouped: dict[tuple[Hashable, int], list[np.ndarray]] = {}
    for a in anns:
        where = f"{path.name}: annotation {a.get('id')}"
        if a.get("image_id") in left_out:
            continue
        if a.get("image_id") not in img_map:
            raise CocoImportError(f"{where}: unknown image_id {a.get('image_id')}")
        if a.get("category_id") not in cat_map:
            raise CocoImportError(f"{where}: unknown category_id {a.get('category_id')}")
        key, h, w = img_map[a["image_id"]]
        grouped.setdefault((key, a["category_id"]), []).append(_decode(a.get("segmentation"), h, w, where))
    return CocoMasks(grouped, cat_map, len(img_map), sum(len(m) for m in grouped.values()))


def import_coco(project: Project, path: Path | str, state: State = State.ACCEPTED) -> dict:
    """Add the file's categories (matched by name) and masks (as instances) to the project."""
    path = Path(path)

    def locate(file_name: str) -> tuple[int, int, int]:
        pid = project.image_id(file_name)
        if pid is None:
            raise CocoImportError(f"{path}: image '{file_name}' is not in the project's folder")
        try:
            return (pid, *project.size_of(pid))
        except ImageReadError as exc:
            raise CocoImportError(f"{path}: image '{file_name}': {exc}") from None

    coco = read_coco(path, locate)
    by_image_and_name: dict[tuple[int, str], list[np.ndarray]] = {}  # categories named alike are one class
    for (pid, cat), masks in coco.masks.items():
        by_image_and_name.setdefault((pid, coco.categories[cat]), []).extend(masks)
    by_name = {c.name: c.id for c in project.classes.values()}
    for name in sorted({n for _, n in by_image_and_name}):
        if name not in by_name:
            by_name[name] = project.add_class(name).id
    for (pid, name), masks in by_image_and_name.items():
        labels = np.zeros(masks[0].shape, np.uint16 if len(masks) > 254 else np.uint8)
        for i, m in enumerate(masks, start=1):
            labels[m] = i
        project.set_mask(pid, by_name[name], labels, state=state)
    return {"images": coco.images, "masks": len(by_image_and_name), "annotations": coco.annotations}
