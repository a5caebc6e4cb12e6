"""Command line: `annotator` opens the app; `annotator propagate ...` runs headless."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Sequence

from annotator.crf import CRFParams

COMMANDS = ("propagate",)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="annotator", description="One mask in, a whole folder out.")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("propagate", help="propose one class's masks on every image of a folder (COCO out)")
    p.add_argument("--images", required=True, type=Path, help="folder of images (searched recursively)")
    p.add_argument("--support", required=True, action="append", metavar="IMAGE:MASK.png",
                   help="a support image and its mask (>127 = class); repeat for k-shot")
    p.add_argument("--label", required=True, help="the class name")
    p.add_argument("--out", required=True, type=Path, help="COCO instances JSON to write")
    p.add_argument("--model", default="panet", choices=["panet"])
    p.add_argument("--backbone", default="vgg16_imagenet", help="weights/NAME.safetensors (or .pth) to use")
    p.add_argument("--crf", dest="crf", action="store_true", default=True, help="dense-CRF refinement (default)")
    p.add_argument("--no-crf", dest="crf", action="store_false")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--input-size", type=int, default=417, help="side the images are resized to for the network")
    for f in CRFParams.__dataclass_fields__.values():
        p.add_argument(f"--crf-{f.name.replace('_', '-')}", dest=f"crf_{f.name}", type=type(f.default), default=f.default,
                       help=argparse.SUPPRESS if f.name == "max_side" else None)
    return ap


def _fail(msg: str) -> int:
    print(f"annotator: error: {msg}", file=sys.stderr)
    return 2


def run_propagate(args: argparse.Namespace) -> int:
    """The `propagate` command: supports -> proposals for every image -> one COCO file."""
    from tqdm import tqdm

    from annotator.coco import CocoBuilder
    from annotator.imageio import ImageReadError, list_images
    from annotator.predictor import Predictor
    from annotator.propagate import SupportError, load_support, propagate
    from annotator.weights import WeightsError

    if args.batch_size < 1:
        return _fail("--batch-size must be at least 1")
    try:
        supports = [load_support(s) for s in args.support]
        paths = list_images(args.images)
    except (SupportError, ImageReadError) as exc:
        return _fail(str(exc))
    if not args.out.parent.exists():
        return _fail(f"--out {args.out}: folder {args.out.parent} does not exist")
    crf = CRFParams(**{k: getattr(args, f"crf_{k}") for k in CRFParams.__dataclass_fields__}) if args.crf else None
    try:
        predictor = Predictor(args.backbone, args.device, args.input_size, crf, args.batch_size)
        predictor.set_supports([(im, m) for _, im, m in supports])
    except (WeightsError, ValueError) as exc:
        return _fail(str(exc))

    coco = CocoBuilder(categories=[{"id": 1, "name": args.label, "supercategory": ""}])
    skipped: list[str] = []
    n_masks = 0
    t0 = time.perf_counter()
    known = {p: m for p, _, m in supports}
    bar = tqdm(total=len(paths), unit="img", desc=f"{args.label} on {predictor.device_name}", file=sys.stderr,
               disable=None, dynamic_ncols=True)
    for res in propagate(predictor, paths, known, args.batch_size):
        bar.update(1)
        if res.error:
            skipped.append(res.error)
            tqdm.write(f"skipped: {res.error}", file=sys.stderr)
            continue
        image_id = coco.add_image(res.path.relative_to(args.images).as_posix(), res.height, res.width)
        if res.mask is not None and coco.add_mask(image_id, 1, res.mask, res.score):
            n_masks += 1
    bar.close()
    info = {"description": f"annotator propagate: {args.label}", "settings": predictor.settings(),
            "supports": [str(p) for p, _, _ in supports]}
    try:
        coco.write(args.out, info)
    except OSError as exc:
        return _fail(f"cannot write {args.out}: {exc.strerror or exc}")
    dt = time.perf_counter() - t0
    done = len(paths) - len(skipped)
    print(f"{args.label}: {n_masks} masks on {done} images ({len(skipped)} skipped) in {dt:.1f} s "
          f"({done / max(dt, 1e-9):.2f} img/s, {predictor.device_name}) -> {args.out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `annotator` and `python -m annotator`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS + ("-h", "--help"):
        from annotator.app import run_app

        return run_app(argv)
    args = _parser().parse_args(argv)
    if args.command == "propagate":
        return run_propagate(args)
    return _fail(f"unknown command {args.command}")
