"""Pascal VOC segmentation, out and in: `SegmentationClass/<id>.png` (a class index per pixel) and
`SegmentationObject/<id>.png` (an instance index per pixel), both palette PNGs in VOC's colour map, `labelmap.txt`
(the classes in index order, as datumaro and CVAT write it) and `ImageSets/Segmentation/<subset>.txt` (the ids).

An image's id is its relative path without the extension. VOC holds one class per pixel: where two classes
overlap, the later class (by id) takes the pixel, as in the PNG export.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from annotator.config import State
from annotator.formats.export import (
    ExportError,
    ExportOptions,
    background_images,
    exported_records,
    image_size_or_skip,
    instance_masks,
    palette_png,
    stem_names,
    val_split,
)
from annotator.formats.importing import (
    ImportFormatError,
    Planned,
    image_by_stem,
    is_kept,
    label_map,
    read_index_png,
    store,
)
from annotator.io.atomic import atomic_write_bytes
from annotator.project.store import Project
from annotator.utils.progress import NO_STEPS, Steps

LABELMAP_HEADER = "# label:color_rgb:parts:actions"


def _palette() -> list[int]:
    """VOC's colour map for all 256 indices, flat, as PIL's putpalette takes it: the devkit's bits of the index
    interleaved into the colours' high bits (1 is (128, 0, 0), 2 (0, 128, 0), 3 (128, 128, 0)...)."""
    out = []
    for k in range(256):
        r = g = b = 0
        c = k
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        out += [r, g, b]
    return out


PALETTE = _palette()


def export_voc(
    project: Project, out_dir: Path | str, opts: ExportOptions | None = None, steps: Steps = NO_STEPS
) -> dict:
    """Write the VOC segmentation layout into `out_dir` for each image with an exported mask (or rejected for every
    class: all background). Instances are the user's, else connected components. `opts.val_fraction` of the images,
    drawn with `opts.seed`, are listed in val.txt and the rest in train.txt (none: all in default.txt)."""
    out_dir, opts = Path(out_dir), opts or ExportOptions()
    classes = sorted(project.classes)
    if len(classes) > 254:
        raise ExportError(f"VOC holds at most 254 classes in its 8-bit PNGs, not {len(classes)}")
    for c in classes:
        if ":" in project.classes[c].name:
            raise ExportError(f"class '{project.classes[c].name}': VOC's labelmap.txt cannot hold a ':' in a name")
    index = {c: k for k, c in enumerate(classes, start=1)}
    records = exported_records(project, opts)
    chosen = sorted(set(records) | background_images(project))
    ids = stem_names(project, chosen, "", "VOC", "its PNGs")
    val = val_split(chosen, opts)
    for folder in ("SegmentationClass", "SegmentationObject", "ImageSets/Segmentation"):  # even with no image
        (out_dir / folder).mkdir(parents=True, exist_ok=True)
    written, objects, skipped, listed = 0, 0, [], {"train": [], "val": []}
    for k, i in enumerate(chosen):
        steps(k, len(chosen))
        size = image_size_or_skip(project, i, skipped)
        if size is None:
            continue
        cls_map, obj_map = np.zeros(size, np.uint8), np.zeros(size, np.uint8)
        n = 0
        for class_id, _ in records.get(i, []):
            for m in instance_masks(project.labels(i, class_id), True, opts.min_area):
                n += 1
                if n > 255:
                    raise ExportError(f"{project.images[i].file}: more than 255 objects, VOC's 8-bit PNGs hold 255")
                cls_map[m], obj_map[m] = index[class_id], n
        for folder, data in (("SegmentationClass", cls_map), ("SegmentationObject", obj_map)):
            target = out_dir / folder / f"{ids[i]}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(target, palette_png(data, PALETTE))
        listed["val" if i in val else "train"].append(ids[i])
        written, objects = written + 1, objects + n
    sets = out_dir / "ImageSets" / "Segmentation"
    for name, items in listed.items() if val else [("default", listed["train"])]:
        atomic_write_bytes(sets / f"{name}.txt", "".join(f"{s}\n" for s in items).encode())
    lines = [LABELMAP_HEADER, "background:0,0,0::"]
    lines += [f"{project.classes[c].name}:{','.join(map(str, PALETTE[3 * k : 3 * k + 3]))}::" for c, k in index.items()]
    atomic_write_bytes(out_dir / "labelmap.txt", ("\n".join(lines) + "\n").encode())
    return {"images": written, "objects": objects, "val": len(listed["val"]), "skipped": skipped}


def read_labelmap(path: Path) -> tuple[list[str], list[int]]:
    """The class names of a labelmap.txt in index order (index 0 is the background), and their colours as flat
    RGB triples: each line's own `R,G,B`, or VOC's colour for its index where the line gives none (as datumaro
    writes it)."""
    names, colours = [], []
    for n, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        name, _, rest = line.partition(":")
        if not name.strip():
            raise ImportFormatError(f"{path}:{n}: a line without a class name")
        rgb = rest.split(":", 1)[0].strip()
        try:
            colour = [int(v) for v in rgb.split(",")] if rgb else PALETTE[3 * len(names) : 3 * len(names) + 3]
        except ValueError:
            colour = []
        if len(colour) != 3 or not all(0 <= v <= 255 for v in colour):
            raise ImportFormatError(f"{path}:{n}: the colour '{rgb}' is not R,G,B from 0 to 255")
        names.append(name.strip())
        colours += colour
    return names, colours


def _colour_table(colours: list[int]) -> dict[tuple[int, int, int], int]:
    """RGB -> index of flat RGB triples (the first index wins a repeated colour), with VOC's void colour as 255."""
    table = {tuple(colours[i : i + 3]): i // 3 for i in range(len(colours) - 3, -1, -3)}
    table[tuple(PALETTE[3 * 255 : 3 * 256])] = 255
    return table


def import_voc(
    project: Project,
    source: Path | str,
    state: State = State.ACCEPTED,
    overwrite: bool = False,
    steps: Steps = NO_STEPS,
) -> dict:
    """Add a VOC segmentation folder to the project: classes by labelmap.txt's names, masks as palette indices or,
    in RGB masks (datumaro's), by labelmap.txt's colours (objects by VOC's colour map), an image by its id (its
    relative path without the extension), instances from SegmentationObject where it is there. 255 (VOC's "void"
    border) is left out. Everything is read and checked before anything is stored. Returns the counts of what was
    done and left out."""
    source = Path(source)
    if not (source / "labelmap.txt").is_file() or not (source / "SegmentationClass").is_dir():
        raise ImportFormatError(f"{source}: not a VOC segmentation folder (no labelmap.txt or SegmentationClass/)")
    names, colours = read_labelmap(source / "labelmap.txt")
    by_id = image_by_stem(project)
    class_colours, object_colours = _colour_table(colours), _colour_table(PALETTE)
    planned, unmatched, kept, annotations, images = [], [], 0, 0, 0
    for png in sorted((source / "SegmentationClass").rglob("*.png")):
        voc_id = png.relative_to(source / "SegmentationClass").with_suffix("").as_posix()
        pid = by_id(voc_id)
        if pid is None:
            unmatched.append(voc_id)
            continue
        cls_map = read_index_png(png, class_colours, "labelmap.txt or VOC's colour map")
        if cls_map.shape != project.size_of(pid):
            raise ImportFormatError(f"{png}: {cls_map.shape[1]}x{cls_map.shape[0]} is not the image's size")
        obj_png = source / "SegmentationObject" / png.relative_to(source / "SegmentationClass")
        obj_map = read_index_png(obj_png, object_colours, "VOC's colour map") if obj_png.is_file() else None
        if obj_map is not None and obj_map.shape != cls_map.shape:
            raise ImportFormatError(f"{obj_png}: its size is not SegmentationClass's")
        images += 1
        for k in np.unique(cls_map):
            if k in (0, 255):
                continue
            if k >= len(names):
                raise ImportFormatError(f"{png}: class index {k} is not in labelmap.txt")
            if is_kept(project, pid, names[k], overwrite):
                kept += 1
                continue
            m = cls_map == k
            objects = np.unique(obj_map[m]) if obj_map is not None else []
            parts = [m & (obj_map == o) for o in objects if o not in (0, 255)]
            rest = m & ~np.logical_or.reduce(parts) if parts else m
            parts += [rest] if rest.any() else []  # pixels of the class in no object: one more instance
            annotations += len(parts)
            planned.append(Planned(pid, names[k], label_map(parts, len(parts), m.shape)))
    store(project, planned, state, overwrite, source.name, steps)
    return {
        "images": images,
        "masks": len(planned),
        "annotations": annotations,
        "kept": kept,
        "unusable": 0,
        "unmatched": unmatched,
    }
