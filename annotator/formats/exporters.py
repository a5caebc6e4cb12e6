"""Every export format in one table, read by the CLI and by the app's export dialog."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from annotator.formats.export import ExportOptions, export_coco, export_png
from annotator.formats.yolo_seg import export_yolo_seg
from annotator.project.store import Project


@dataclass(frozen=True)
class Exporter:
    label: str  # as the app's dialog shows it
    folder: bool  # writes a folder (else one file)
    write: Callable[[Project, Path, ExportOptions], dict]  # returns counts, with 'images' and 'skipped'
    polygons: bool = False  # COCO with polygons rather than RLE


EXPORTERS: dict[str, Exporter] = {
    "coco-rle": Exporter("COCO, RLE masks (lossless)", False, export_coco),
    "coco-polygon": Exporter("COCO, polygons", False, export_coco, polygons=True),
    "yolo-seg": Exporter("YOLO segmentation (Ultralytics layout)", True, export_yolo_seg),
    "png": Exporter("PNG index masks + palette", True, export_png),
}
