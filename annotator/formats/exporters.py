"""Every export format in one table, read by the CLI and by the app's export dialog."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from annotator.formats.cvat import export_cvat
from annotator.formats.export import export_coco, export_png
from annotator.formats.labelme import export_labelme
from annotator.formats.voc import export_voc
from annotator.formats.yolo_seg import export_yolo_seg


@dataclass(frozen=True)
class Exporter:
    label: str  # as the app's dialog shows it
    folder: bool  # writes a folder (else one file)
    write: Callable[..., dict]  # (project, out, options[, steps]) -> counts, with 'images' and 'skipped'
    polygons: bool = False  # COCO with polygons rather than RLE
    counts: Callable[[dict], str] = lambda n: f"{count(n['images'], 'image')}, {count(n['annotations'], 'annotation')}"
    file: tuple[str, str] = ("annotations.json", "COCO JSON (*.json)")  # one file's default name and dialog filter
    splits: bool = False  # writes a train/val split (ExportOptions.val_fraction, seed)

    def summary(self, n: dict, out: Path) -> str:
        """What an export wrote, in words, as the CLI and the app report it: "28 images, 6 annotations to OUT"."""
        extra = f" ({count(n['rle_fallbacks'], 'mask')} with holes kept as RLE)" if n.get("rle_fallbacks") else ""
        return f"{self.counts(n)} to {out}{extra}"

    def report(self, n: dict, out: Path, left: int, proposals_hint: str) -> tuple[str, list[str]]:
        """What an export wrote (`summary`) and its warnings, as the CLI prints them and the app shows them: the
        images it could not read, and the `left` proposals not yet reviewed (`proposals_hint`: how this front end
        exports them)."""
        warnings = []
        if n["skipped"]:
            warnings.append(f"skipped {len(n['skipped'])} images that cannot be read, e.g. {n['skipped'][0]}")
        if left:
            warnings.append(f"left out {left} proposals not yet reviewed ({proposals_hint})")
        return self.summary(n, out), warnings


def count(n: int, noun: str) -> str:
    """'1 image', '2 images'."""
    return f"{n} {noun}{'s' * (n != 1)}"


EXPORTERS: dict[str, Exporter] = {
    "coco-rle": Exporter("COCO, RLE masks (lossless)", False, export_coco),
    "coco-polygon": Exporter("COCO, polygons", False, export_coco, polygons=True),
    "yolo-seg": Exporter(
        "YOLO segmentation (Ultralytics layout)",
        True,
        export_yolo_seg,
        splits=True,
        counts=lambda n: f"{count(n['images'], 'image')} ({n['val']} in val), {count(n['lines'], 'polygon')}",
    ),
    "labelme": Exporter(
        "labelme JSON (a file per image)",
        True,
        export_labelme,
        counts=lambda n: f"{count(n['images'], 'labelme file')}, {count(n['shapes'], 'shape')}",
    ),
    "voc": Exporter(
        "Pascal VOC segmentation (class and object PNGs, labelmap.txt)",
        True,
        export_voc,
        splits=True,
        counts=lambda n: f"{count(n['images'], 'image')} ({n['val']} in val), {count(n['objects'], 'object')}",
    ),
    "cvat": Exporter(
        "CVAT for images 1.1 XML (polygons)",
        False,
        export_cvat,
        counts=lambda n: f"{count(n['images'], 'image')}, {count(n['shapes'], 'polygon')}",
        file=("annotations.xml", "CVAT XML (*.xml)"),
    ),
    "png": Exporter(
        "PNG index masks + palette",
        True,
        export_png,
        counts=lambda n: f"{count(n['images'], 'index PNG')}, palette.json and dataset_meta.json",
    ),
}
