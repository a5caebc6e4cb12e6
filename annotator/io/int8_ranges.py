"""The int8 backbone's calibrated activation ranges: made once from photos, shipped in weights/, checked by sha256.

`python -m annotator.io.int8_ranges IMAGE_FOLDER ...` calibrates the VGG-16 of weights/ on the images (network
input size, ImageNet normalisation) and writes weights/vgg16_imagenet.int8.json; weights/README.md says which
images made the shipped file. Run time reads that JSON (no pickle) and rebuilds the int8 backbone from the
safetensors weights in about a second.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

from annotator.config import DEFAULT_BACKBONE, INPUT_SIZE
from annotator.io.atomic import atomic_write_bytes
from annotator.io.weights import VGG16_SHA256, WEIGHTS_DIR, WeightsError, sha256_file
from annotator.modeling.quantized import Ranges

RANGES_FILE = f"{DEFAULT_BACKBONE}.int8.json"
RANGES_SHA256 = "5071ad6024344a64dad580065442023fbadb3679a28895b46743c7d568e5fd42"  # the shipped file


def load_ranges(backbone: str, weights_dir: Path = WEIGHTS_DIR) -> Ranges:
    """The ranges calibrated for `backbone`; WeightsError when it has none (only the shipped VGG-16 has) or the
    file is not the shipped one."""
    if backbone != DEFAULT_BACKBONE:
        raise WeightsError(f"int8 needs calibrated ranges, which only {DEFAULT_BACKBONE} has (not {backbone})")
    path = weights_dir / RANGES_FILE
    if not path.is_file():
        raise WeightsError(f"{path} is missing; it ships with the repository")
    if sha256_file(path) != RANGES_SHA256:
        raise WeightsError(f"{path} does not match its recorded sha256; restore it from the repository")
    doc = json.loads(path.read_text())
    if doc.get("weights_sha256") != VGG16_SHA256:
        raise WeightsError(f"{path} was calibrated for other weights")
    return {name: (float(lo), float(hi)) for name, (lo, hi) in doc["ranges"].items()}


def _batches(paths: list[Path], predictor, batch: int = 8):
    """The images as the fp32 `predictor` feeds its backbone (network size, normalised), `batch` at a time."""
    from annotator.inference.loading import resize_for_network
    from annotator.io.imageio import read_image

    for i in range(0, len(paths), batch):
        px = np.stack([resize_for_network(read_image(p), INPUT_SIZE) for p in paths[i : i + batch]])
        yield predictor.network_input(torch.from_numpy(px))


def main(argv: list[str] | None = None) -> int:
    from annotator.build import build_model
    from annotator.inference.predictor import Predictor
    from annotator.io.imageio import list_images
    from annotator.modeling.quantized import calibrate

    ap = argparse.ArgumentParser(description="Calibrate the int8 backbone's activation ranges on photos.")
    ap.add_argument("folders", nargs="+", type=Path, help="folders of photos (unlabelled)")
    ap.add_argument("--out", type=Path, default=WEIGHTS_DIR / RANGES_FILE)
    args = ap.parse_args(argv)
    paths = [p for folder in args.folders for p in list_images(folder)]
    if not paths:
        print("no images in the folders given", file=sys.stderr)
        return 2
    predictor = Predictor(build_model(), device="cpu", input_size=INPUT_SIZE, crf=None, precision="fp32")
    ranges = calibrate(predictor.model.backbone, _batches(paths, predictor))
    if not all(math.isfinite(v) for r in ranges.values() for v in r):
        print("calibration gave a non-finite range", file=sys.stderr)
        return 2
    doc = {
        "backbone": DEFAULT_BACKBONE,
        "weights_sha256": VGG16_SHA256,
        "input_size": INPUT_SIZE,
        "images": len(paths),
        "folders": [f.name for f in args.folders],
        "observer": "min/max per tensor, quint8",
        "ranges": ranges,
    }
    atomic_write_bytes(args.out, (json.dumps(doc, indent=1) + "\n").encode())
    print(f"{args.out}: {len(ranges)} ranges from {len(paths)} images; sha256 {sha256_file(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
