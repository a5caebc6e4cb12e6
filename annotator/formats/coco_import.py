"""Importing a COCO instances file (RLE or polygons) into a project, to continue work begun elsewhere.

Everything is checked before anything is written: a file that is not COCO instances, a size that does not
match the image, an invalid segmentation or overlapping instances stop the import with a message that names
the entry. Files are taken as peer tools write them: image names are matched by relative path or unique base
name, and annotations without a mask are left out and counted (unless strict).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import ijson
import numpy as np
from pycocotools import mask as mask_utils

from annotator.config import State
from annotator.formats.importing import (
    MAX_INSTANCES,
    ImportFormatError,
    Planned,
    image_matcher,
    is_kept,
    label_map,
    store,
)
from annotator.io.imageio import ImageReadError
from annotator.project.store import Project
from annotator.utils.progress import NO_STEPS, Steps
from annotator.utils.sampling import evenly_spaced


class CocoImportError(ImportFormatError):
    """The COCO file cannot be imported; the message names the offending entry."""


MAX_COORD = 1e6  # a polygon vertex further out than this is not an annotation of an image


def _decode(seg, h: int, w: int, where: str) -> np.ndarray:
    try:
        if isinstance(seg, list):
            if not seg or any(not isinstance(p, list) or len(p) < 6 or len(p) % 2 for p in seg):
                raise ValueError("a polygon needs at least 3 points (6 numbers)")
            if not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v) <= MAX_COORD for p in seg for v in p
            ):  # NaN fails the comparison too
                raise ValueError(f"polygon coordinates must be numbers within +-{MAX_COORD:g}")
            rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
        elif isinstance(seg, dict) and isinstance(seg.get("counts"), list):
            if list(seg.get("size", [])) != [h, w]:
                raise ValueError(f"RLE size {seg.get('size')} is not the image's {[h, w]}")
            if not all(type(c) is int and c >= 0 for c in seg["counts"]):
                raise ValueError("RLE counts must be whole numbers >= 0")
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
class Instance:
    """One annotation's mask, kept compressed (RLE) so that a large file's masks do not all sit in memory as
    pixels, with its id (to name it) and its score, if the file gives one."""

    id: object
    rle: dict
    score: float | None

    @property
    def mask(self) -> np.ndarray:
        return mask_utils.decode(self.rle).astype(bool)


@dataclass
class CocoMasks:
    """A COCO file's masks, grouped by (image key, category id), with its category names, counts, and what was
    left out: annotations without a usable mask, and image names that match no image."""

    masks: dict[tuple[Hashable, int], list[Instance]]
    categories: dict[int, str]
    images: int
    annotations: int
    unusable: int = 0
    unmatched: list[str] = field(default_factory=list)


_MISSING = object()


def _values(path: Path, prefix: str) -> Iterator[object]:
    """The JSON values at `prefix` (ijson's notation: "annotations.item" is each annotation), parsed one at a time
    so that memory holds one, not the file; CocoImportError when the file is not readable JSON."""
    try:
        with path.open("rb") as f:
            yield from ijson.items(f, prefix, use_float=True)
    except (OSError, ValueError, ijson.JSONError) as exc:  # yajl's message goes on to quote the file: one line
        raise CocoImportError(f"{path}: not a readable COCO file ({str(exc).splitlines()[0]})") from None


def _first(path: Path, prefix: str) -> object:
    """The first value at `prefix`, or _MISSING."""
    values = _values(path, prefix)
    try:
        return next(values, _MISSING)
    finally:
        values.close()


def _not_coco(path: Path) -> str:
    """Why a file without an 'images' entry is not COCO instances, naming what it is where it can tell."""
    if _first(path, "shapes") is not _MISSING and _first(path, "imagePath") is not _MISSING:
        return "a labelme JSON file, not COCO instances (import it with --format labelme)"
    try:
        with path.open("rb") as f:
            top = next(ijson.parse(f), ("", "", None))[1]
    except (OSError, ValueError, ijson.JSONError) as exc:
        return f"not a readable COCO file ({str(exc).splitlines()[0]})"
    return "not a COCO file (the top level is not an object)" if top != "start_map" else "no 'images' list"


def _images_problem(images: object, categories: object) -> str | None:
    """Why the images and categories lists are not COCO instances', or None."""
    for key, value in (("images", images), ("categories", categories)):
        if not isinstance(value, list):
            return f"'{key}' is not a list"
    for i, im in enumerate(images):
        if not isinstance(im, dict) or not isinstance(im.get("id"), (int, str)):
            return f"image #{i} is not an object with an id"
        for key in ("height", "width"):
            if not (isinstance(im.get(key), int) and im[key] > 0):
                return f"image '{im.get('file_name')}' has no valid {key}"
    for c in categories:
        named = isinstance(c, dict) and isinstance(c.get("name"), str) and c["name"].strip()
        if not named or not isinstance(c.get("id"), (int, str)):
            return f"category {c.get('id') if isinstance(c, dict) else c!r} has no name"
    return None


def _annotation_problem(a: object, i: int) -> str | None:
    """Why the i-th annotation is not one of COCO instances, or None."""
    if not isinstance(a, dict):
        return f"annotation #{i} is not an object"
    if "segments_info" in a:
        return "a COCO panoptic file, not COCO instances"
    if not all(isinstance(a.get(k), (int, str)) for k in ("image_id", "category_id")):
        return f"annotation {a.get('id', f'#{i}')!r:.40} has no image_id or category_id"
    return None


def _usable(seg: object) -> bool:
    """Whether a segmentation holds a mask at all (box-only and empty ones do not)."""
    return bool(seg) and isinstance(seg, (list, dict))


def read_coco(
    path: Path | str,
    locate: Callable[[str], tuple[Hashable, int, int] | None],
    max_images: int | None = None,
    strict: bool = False,
) -> CocoMasks:
    """The masks of a COCO instances file, every entry checked before anything is returned. Its annotations are
    streamed, each kept as RLE once decoded, so a large file's memory is its masks', not its JSON's.
    `locate(file_name)` gives an image's key and its (height, width) on disk, or None if no image matches it;
    `max_images` keeps that many evenly spaced images. Unmatched images and annotations without a mask are
    left out and counted; with `strict` either is an error."""
    path = Path(path)
    images = _first(path, "images")
    if images is _MISSING:
        raise CocoImportError(f"{path}: {_not_coco(path)}")
    categories = _first(path, "categories")
    categories = [] if categories is _MISSING else categories
    problem = _images_problem(images, categories)
    if problem:
        raise CocoImportError(f"{path}: {problem}")
    cat_map: dict[int, str] = {c["id"]: c["name"].strip() for c in categories}
    ids = [im["id"] for im in images]
    left_out = set(ids) - set(evenly_spaced(sorted(ids, key=str), max_images)) if max_images is not None else set()
    img_map: dict[object, tuple[Hashable, int, int]] = {}
    unmatched: list[str] = []
    for im in images:
        if im["id"] in left_out:
            continue
        name = str(im.get("file_name", ""))
        found = locate(name)
        if found is None:
            if strict:
                raise CocoImportError(f"{path}: image '{name}' matches no image of the folder")
            unmatched.append(name)
            left_out.add(im["id"])
            continue
        key, h, w = found
        if (im["height"], im["width"]) != (h, w):
            raise CocoImportError(f"{path}: image '{name}' is {w}x{h}, the file says {im['width']}x{im['height']}")
        img_map[im["id"]] = (key, h, w)
    del images
    grouped: dict[tuple[Hashable, int], list[Instance]] = {}
    per_group: Counter = Counter()  # categories named alike become one mask
    unusable = seen = 0
    for seen, a in enumerate(_values(path, "annotations.item"), start=1):
        problem = _annotation_problem(a, seen - 1)
        if problem:
            raise CocoImportError(f"{path}: {problem}")
        where = f"{path.name}: annotation {a.get('id')}"
        if a["image_id"] in left_out:
            continue
        if a["image_id"] not in img_map:
            raise CocoImportError(f"{where}: unknown image_id {a['image_id']}")
        if a["category_id"] not in cat_map:
            raise CocoImportError(f"{where}: unknown category_id {a['category_id']}")
        if not _usable(a.get("segmentation")):
            if strict:
                raise CocoImportError(f"{where}: no mask (box only, or an empty segmentation)")
            unusable += 1
            continue
        group = (a["image_id"], cat_map[a["category_id"]])
        per_group[group] += 1
        if per_group[group] > MAX_INSTANCES:
            raise CocoImportError(
                f"{path.name}: image {group[0]} has more than {MAX_INSTANCES} instances of category "
                f"'{group[1]}', the most a mask holds"
            )
        key, h, w = img_map[a["image_id"]]
        score = a.get("score")
        score = float(score) if isinstance(score, (int, float)) and math.isfinite(score) else None
        rle = mask_utils.encode(np.asfortranarray(_decode(a["segmentation"], h, w, where).astype(np.uint8)))
        grouped.setdefault((key, a["category_id"]), []).append(Instance(a.get("id"), rle, score))
    whole = _first(path, "annotations") if not seen else []  # small: it holds no annotation
    if whole is not _MISSING and not isinstance(whole, list):
        raise CocoImportError(f"{path}: 'annotations' is not a list")
    return CocoMasks(grouped, cat_map, len(img_map), sum(len(m) for m in grouped.values()), unusable, unmatched)


def _refuse_overlap(path: Path, instances: list[Instance], name: str, image: str) -> None:
    """CocoImportError naming the first instance that shares pixels with earlier ones; decoded only if the RLEs'
    areas say that one does."""
    rles = [inst.rle for inst in instances]
    if int(mask_utils.area(mask_utils.merge(rles))) == int(mask_utils.area(rles).sum()):
        return
    seen = np.zeros(tuple(rles[0]["size"]), np.int32)
    for i, inst in enumerate(instances, start=1):
        m = inst.mask
        if seen[m].any():
            others = sorted({str(instances[k - 1].id) for k in np.unique(seen[m]) if k})
            raise CocoImportError(
                f"{path}: annotation {inst.id} overlaps annotation {', '.join(others)} of '{name}' on {image}; a "
                "mask holds one instance per pixel (--allow-overlap: the later one takes the shared pixels)"
            )
        seen[m] = i


def import_coco(
    project: Project,
    path: Path | str,
    state: State = State.ACCEPTED,
    overwrite: bool = False,
    allow_overlap: bool = False,
    strict: bool = False,
    steps: Steps = NO_STEPS,
) -> dict:
    """Add the file's categories (matched by name) and masks (as instances) to the project. An accepted or
    edited mask is kept unless `overwrite`; instances of one class that overlap are refused unless
    `allow_overlap` (the later one then takes the shared pixels). Returns the counts of what was done and
    left out."""
    path = Path(path)
    match_image = image_matcher(project)

    def locate(file_name: str) -> tuple[int, int, int] | None:
        pid = match_image(file_name)
        if pid is None:
            return None
        try:
            return (pid, *project.size_of(pid))
        except ImageReadError as exc:
            raise CocoImportError(f"{path}: image '{file_name}': {exc}") from None

    coco = read_coco(path, locate, strict=strict)
    by_image_and_name: dict[tuple[int, str], list[Instance]] = {}  # categories named alike are one class
    for (pid, cat), instances in coco.masks.items():
        by_image_and_name.setdefault((pid, coco.categories[cat]), []).extend(instances)
    planned: list[Planned] = []
    skipped = 0
    for (pid, name), instances in by_image_and_name.items():
        if is_kept(project, pid, name, overwrite):
            skipped += 1
            continue
        if not allow_overlap:
            _refuse_overlap(path, instances, name, project.images[pid].file)
        scores = [inst.score for inst in instances if inst.score is not None]
        shape = tuple(instances[0].rle["size"])
        labels = partial(label_map, (inst.mask for inst in instances), len(instances), shape)
        planned.append(Planned(pid, name, labels, float(np.mean(scores)) if scores else None))
    store(project, planned, state, overwrite, path.name, steps)
    return {
        "images": coco.images,
        "masks": len(planned),
        "annotations": coco.annotations,
        "kept": skipped,
        "unusable": coco.unusable,
        "unmatched": coco.unmatched,
    }
