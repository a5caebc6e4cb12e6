"""COCO instances output: lossless RLE masks (iscrowd 0) with area, bbox and score, via pycocotools."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from glob import escape as glob_escape
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from annotator.io.atomic import atomic_write_json, atomic_writer, compact_json
from annotator.project.lock import pid_alive


def encode_rle(mask: np.ndarray) -> dict:
    """COCO compressed RLE of a boolean [H,W] mask, with `counts` as a str (JSON-ready)."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def decode_rle(rle: dict) -> np.ndarray:
    """Boolean [H,W] mask of a COCO RLE (compressed counts as str or bytes)."""
    counts = rle["counts"]
    obj = {"size": rle["size"], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    return mask_utils.decode(obj).astype(bool)


def mask_annotation(mask: np.ndarray, ann_id: int, image_id: int, category_id: int, score: float | None) -> dict:
    """A COCO annotation for a non-empty mask: RLE segmentation, `iscrowd` 0, area, bbox and optional score."""
    rle = encode_rle(mask)
    ann = {
        "id": ann_id,
        "image_id": image_id,
        "category_id": category_id,
        "segmentation": rle,
        "area": int(mask_utils.area(rle)),
        "bbox": [float(v) for v in mask_utils.toBbox(rle)],
        "iscrowd": 0,
    }
    if score is not None:
        ann["score"] = round(float(score), 6)
    return ann


@dataclass
class CocoBuilder:
    """Accumulates images and mask annotations (as RLE, never as pixels) and writes one COCO file."""

    categories: list[dict]
    images: list[dict] = field(default_factory=list)
    annotations: list[dict] = field(default_factory=list)

    def add_image(self, file_name: str, height: int, width: int) -> int:
        """Register an image and return its id (1-based, in order of addition)."""
        image_id = len(self.images) + 1
        self.images.append({"id": image_id, "file_name": file_name, "height": int(height), "width": int(width)})
        return image_id

    def add_mask(self, image_id: int, category_id: int, mask: np.ndarray, score: float | None = None) -> dict | None:
        """Add the mask as an annotation; an empty mask adds nothing and returns None."""
        if not mask.any():
            return None
        ann = mask_annotation(mask, len(self.annotations) + 1, image_id, category_id, score)
        self.annotations.append(ann)
        return ann

    def to_dict(self, info: dict | None = None) -> dict:
        return {
            "info": info or {},
            "licenses": [],
            "images": self.images,
            "annotations": self.annotations,
            "categories": self.categories,
        }

    def write(self, path: Path | str, info: dict | None = None) -> None:
        """Write the COCO file atomically (a crash leaves the previous file, never half of one)."""
        atomic_write_json(path, self.to_dict(info))


def stale_spools(out: Path) -> list[Path]:
    """Spool files a killed single-process run on `out` left behind (their process is gone)."""
    found = []
    for sp in out.parent.glob(f".{glob_escape(out.name)}.*.part*.jsonl"):
        pid = sp.name[len(out.name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            found.append(sp)
    return found


class CocoSpool:
    """Results of a streamed run, one JSON line per image as it comes (RLE, never pixels), so a run over
    100,000 images holds none of them in memory; `write_coco` turns spools into the COCO file."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._f = open(self.path, "w", encoding="utf-8")

    def add(self, file_name: str, height: int, width: int, mask: np.ndarray | None, score: float | None) -> bool:
        """Record an image and its mask (None or empty: no annotation). Returns whether a mask was added."""
        ann = None
        if mask is not None and mask.any():
            ann = mask_annotation(mask, 0, 0, 0, score)
            for k in ("id", "image_id", "category_id"):
                del ann[k]
        line = {"file_name": file_name, "height": int(height), "width": int(width), "ann": ann}
        self._f.write(compact_json(line) + "\n")
        return ann is not None

    def close(self) -> None:
        self._f.close()


def _spooled(spools: Sequence[Path]) -> Iterator[dict]:
    for sp in spools:
        with open(sp, encoding="utf-8") as f:
            for line in f:
                yield json.loads(line)


def write_coco(path: Path | str, spools: Sequence[Path], category: dict, info: dict) -> tuple[int, int]:
    """Write one COCO file from spools read in order (ids follow that order), streaming and atomically.
    Returns (images, annotations)."""
    n_img = n_ann = 0
    with atomic_writer(path) as out:
        out.write(
            f'{{"info":{compact_json(info)},"licenses":[],"categories":[{compact_json(category)}],"images":['.encode()
        )
        for n_img, rec in enumerate(_spooled(spools), 1):
            img = {"id": n_img, "file_name": rec["file_name"], "height": rec["height"], "width": rec["width"]}
            out.write((b"," if n_img > 1 else b"") + compact_json(img).encode())
        out.write(b'],"annotations":[')
        for image_id, rec in enumerate(_spooled(spools), 1):
            if rec["ann"] is None:
                continue
            n_ann += 1
            ann = {"id": n_ann, "image_id": image_id, "category_id": category["id"], **rec["ann"]}
            out.write((b"," if n_ann > 1 else b"") + compact_json(ann).encode())
        out.write(b"]}")
    return n_img, n_ann
