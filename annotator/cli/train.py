"""`annotator train`: train SG-One's head, self-supervised on unlabelled folders and/or on masks."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from annotator.cli.common import fail
from annotator.config import DEVICES, Precision
from annotator.training.config import TrainConfig


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The `train` subcommand and its options."""
    p = sub.add_parser("train", help="train SG-One's head: self-supervised on unlabelled images and/or on masks")
    p.add_argument("--images", type=Path, action="append", default=[], help="unlabelled folder (superpixel episodes)")
    p.add_argument("--pairs", type=Path, help="labelled folder: images/NAME.* with masks/NAME.png (>127 = class)")
    p.add_argument("--coco", type=Path, help="labelled COCO file (its images under --coco-images)")
    p.add_argument("--coco-images", type=Path)
    p.add_argument("--out", required=True, type=Path, help="checkpoint to write (head; plus OUT.state for resuming)")
    p.add_argument("--init", type=Path, help="start from this head (e.g. the shipped one, to adapt it)")
    p.add_argument("--resume", action="store_true", help="continue from OUT's saved step")
    p.add_argument("--max-images", type=int, default=300, help="evenly spaced subset of each source")
    p.add_argument("--device", default=DEVICES[0], help=" | ".join(DEVICES) + " | cuda:N")
    p.add_argument(
        "--precision", type=Precision, default=Precision.AUTO, choices=list(Precision), help=Precision.__doc__
    )
    p.add_argument("--feature-cache", type=Path, default=None)
    for name, default in vars(TrainConfig()).items():
        p.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)


def run(args: argparse.Namespace) -> int:
    """The `train` command: featurise the sources' views once, then train SG-One's head with progress;
    Ctrl+C stops after the current step and saves, and --resume continues from there."""
    import signal

    from tqdm import tqdm

    from annotator.io.imageio import ImageReadError, list_images, read_image, read_mask
    from annotator.io.weights import WeightsError
    from annotator.project.workflows import train_head
    from annotator.training.loop import labelled_sources, state_path, unlabelled_sources
    from annotator.utils.sampling import evenly_spaced

    cfg = TrainConfig(**{k: getattr(args, k) for k in vars(TrainConfig())})
    if not (args.images or args.pairs or args.coco):
        return fail("give at least one of --images, --pairs, --coco")
    if not args.out.parent.exists():
        return fail(f"--out {args.out}: folder {args.out.parent} does not exist")
    if args.resume and not state_path(args.out).exists():
        return fail(f"--resume: no saved state beside {args.out}")
    try:
        sources = []
        for folder in args.images:
            imgs = []
            for p in evenly_spaced(list_images(folder), args.max_images):
                try:
                    imgs.append((p, read_image(p)))
                except ImageReadError as exc:
                    print(f"skipped: {exc}", file=sys.stderr)
            sources += unlabelled_sources(imgs, cfg)
        items = []
        if args.pairs:
            for p in evenly_spaced(list_images(args.pairs / "images"), args.max_images):
                items.append((p, read_image(p), read_mask(args.pairs / "masks" / f"{p.stem}.png").astype(np.int32)))
        if args.coco:
            items += _coco_items(args.coco, args.coco_images or args.coco.parent, args.max_images)
        sources += labelled_sources(items)
        if not sources:
            return fail("no usable training image (each needs a region covering 3-60% of it, or a mask)")
    except (ImageReadError, ValueError) as exc:
        return fail(str(exc))
    bars = [tqdm(total=len(sources), desc="featurising views", unit="img", file=sys.stderr, disable=None)]

    def on_step(step: int, loss: float) -> None:
        if len(bars) == 1:  # the views are featurised: training begins
            bars[0].close()
            bars.append(tqdm(total=cfg.steps, desc="training SG-One", unit="step", file=sys.stderr, disable=None))
        bars[-1].n = step
        bars[-1].set_postfix(loss=f"{loss:.4f}")
        bars[-1].refresh()

    stopping = []
    previous = signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
    try:
        step, device = train_head(
            sources,
            cfg,
            args.out,
            args.device,
            args.init,
            args.resume,
            args.feature_cache,
            stop=lambda: bool(stopping),
            on_features=lambda _: bars[0].update(1),
            on_step=on_step,
            precision=args.precision,
        )
    except (WeightsError, ValueError) as exc:
        return fail(str(exc))
    finally:
        for bar in bars:
            bar.close()
        signal.signal(signal.SIGINT, previous)
    verb = "stopped" if stopping else "trained"
    print(
        f"{verb} at step {step}/{cfg.steps} on {len(sources)} images ({device}) -> {args.out}"
        + (" (continue with --resume)" if stopping else "")
    )
    return 0


def _coco_items(coco_file: Path, image_root: Path, n: int) -> list:
    """(path, image, category-id map) of up to n of a COCO file's annotated images (later annotations on top),
    read and checked as `import` reads them; CocoImportError or ImageReadError name what is wrong."""
    from annotator.formats.coco_import import read_coco
    from annotator.io.imageio import image_size, read_image

    def locate(name: str) -> tuple[str, int, int] | None:  # headers only; nothing outside the folder
        path = image_root / name
        if not path.resolve().is_relative_to(image_root.resolve()) or not path.is_file():
            return None
        return (name, *image_size(path))

    coco = read_coco(coco_file, locate, max_images=n)
    labels: dict[str, np.ndarray] = {}
    for (file_name, cat), instances in coco.masks.items():
        lab = labels.setdefault(file_name, np.zeros(tuple(instances[0].rle["size"]), np.int32))
        for inst in instances:
            lab[inst.mask] = cat
    return [(image_root / f, read_image(image_root / f), lab) for f, lab in labels.items()]  # annotated ones only
