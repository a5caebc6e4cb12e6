"""Every import format in one table, with the rule that tells them apart and the report of an import in words: the
recipe the CLI's `import` and the app's File -> Import both run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from annotator.config import State
from annotator.formats.coco_import import import_coco
from annotator.formats.cvat import import_cvat
from annotator.formats.labelme import import_labelme
from annotator.formats.png_masks import META_FILES, import_png
from annotator.formats.voc import import_voc
from annotator.formats.yolo_seg import import_yolo_seg
from annotator.project.store import Project
from annotator.utils.progress import NO_STEPS, Steps


@dataclass(frozen=True)
class Importer:
    label: str  # as the app's dialog shows it
    folder: bool  # reads a folder (else one file, or a folder holding it)
    read: Callable[..., dict]  # (project, source, state, overwrite[, steps]) -> counts


IMPORTERS: dict[str, Importer] = {
    "coco": Importer("COCO JSON (polygons or RLE)", False, import_coco),
    "yolo-seg": Importer("YOLO segmentation (a folder with data.yaml)", True, import_yolo_seg),
    "voc": Importer("Pascal VOC segmentation (a folder with labelmap.txt)", True, import_voc),
    "labelme": Importer("labelme JSON (a folder of files, or one file)", True, import_labelme),
    "cvat": Importer("CVAT for images 1.1 XML", False, import_cvat),
    "png": Importer("Mask PNG folder (with dataset_meta.json or palette.json)", True, import_png),
}
AUTO = "auto"


def detect_format(source: Path) -> str:
    """The format of `source`: a .json file is COCO, an .xml file or a folder with annotations.xml CVAT, a folder
    with data.yaml (or a .yaml) YOLO-seg, one with labelmap.txt and SegmentationClass/ VOC, one with
    dataset_meta.json or palette.json mask PNGs, another folder labelme files."""
    suffix = source.suffix.lower()
    if suffix == ".json":
        return "coco"
    if suffix == ".xml" or (source / "annotations.xml").is_file():
        return "cvat"
    if suffix in (".yaml", ".yml") or (source / "data.yaml").is_file():
        return "yolo-seg"
    if (source / "labelmap.txt").is_file() and (source / "SegmentationClass").is_dir():
        return "voc"
    return "png" if any((source / n).is_file() for n in META_FILES) else "labelme"


def import_annotations(
    project: Project,
    source: Path,
    fmt: str = AUTO,
    state: State = State.ACCEPTED,
    overwrite: bool = False,
    allow_overlap: bool = False,
    strict: bool = False,
    steps: Steps = NO_STEPS,
) -> dict:
    """Import `source` in format `fmt` (AUTO: detect_format) into the project (unsaved). `allow_overlap` and
    `strict` are COCO's; `steps` is called per mask stored. Returns the importer's counts; raises
    ImportFormatError naming a bad entry."""
    fmt = detect_format(source) if fmt == AUTO else fmt
    if fmt == "coco":
        return import_coco(project, source, state, overwrite, allow_overlap, strict, steps)
    return IMPORTERS[fmt].read(project, source, state, overwrite, steps)


def import_report(n: dict, overwrite_hint: str) -> tuple[str, list[str]]:
    """What an import did, in words, and its warnings, as the CLI prints them and the app shows them;
    `overwrite_hint` says how this front end replaces kept masks."""
    done = f"imported {n['annotations']} annotations as {n['masks']} masks on {n['images']} images"
    warnings = []
    if n["kept"]:
        warnings.append(f"kept {n['kept']} accepted or edited masks the file would have replaced ({overwrite_hint})")
    if n["unusable"]:
        warnings.append(f"left out {n['unusable']} annotations without a mask (box only or empty)")
    if n["unmatched"]:
        warnings.append(
            f"{len(n['unmatched'])} images of the file match no image of the folder, e.g. {n['unmatched'][0]}; "
            "their annotations were left out"
        )
    return done, warnings
