"""Command line: `annotator` opens the app; `annotator propagate ...` runs headless."""

from __future__ import annotations

import argparse
import errno
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from annotator.config import (
    DEFAULT_BACKBONE,
    DEVICES,
    INPUT_SIZE,
    MAX_PIXELS,
    PIXEL_LIMIT_ENV,
    Model,
    Precision,
    State,
    out_of_range,
)
from annotator.inference.crf import CRFParams
from annotator.training.config import TrainConfig

COMMANDS = ("propagate", "init", "export", "import", "train")


def _parser() -> argparse.ArgumentParser:
    from annotator.formats.exporters import EXPORTERS  # its choices; loaded with the parser, like the commands' modules

    ap = argparse.ArgumentParser(prog="annotator", description="One mask in, a whole folder out.")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("propagate", help="propose one class's masks on every image of a folder (COCO out)")
    p.add_argument("--images", type=Path, help="folder of images (searched recursively)")
    p.add_argument(
        "--support",
        action="append",
        default=[],
        metavar="IMAGE:MASK.png",
        help="a support image and its mask (>127 = class; a scribble works too) or box=X0,Y0,X1,Y1; repeat for k-shot",
    )
    p.add_argument(
        "--negative",
        action="append",
        default=[],
        metavar="IMAGE[:MASK.png]",
        help="an image without the class (its whole area is background), or only the region of its mask "
        "(>127) that is not the class, e.g. a wrong proposal; repeatable",
    )
    p.add_argument("--label", help="the class name")
    p.add_argument("--out", type=Path, help="COCO instances JSON to write")
    p.add_argument(
        "--project",
        type=Path,
        help="learn from this project's accepted and edited masks (supports) and rejections (negatives) "
        "of --class, and write the proposals back into it instead of --images/--support/--out",
    )
    p.add_argument("--class", dest="class_name", metavar="NAME", help="with --project: the class to propagate")
    p.add_argument(
        "--include-rejected",
        action="store_true",
        help="with --project: propose again on images whose proposal was rejected",
    )
    p.add_argument(
        "--presence-threshold",
        type=float,
        default=0.0,
        metavar="P",
        help="a proposal whose presence score is below P (0-1) comes back empty: the class judged absent",
    )
    p.add_argument("--model", type=Model, default=Model.PANET, choices=list(Model))
    p.add_argument("--checkpoint", type=Path, help="SG-One head to use (default: weights/sgone_head.safetensors)")
    p.add_argument("--backbone", default=DEFAULT_BACKBONE, help="weights/NAME.safetensors (or .pth) to use")
    p.add_argument("--crf", dest="crf", action="store_true", default=True, help="dense-CRF refinement (default)")
    p.add_argument("--no-crf", dest="crf", action="store_false")
    p.add_argument("--device", default=DEVICES[0], help=" | ".join(DEVICES) + " | cuda:N")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--input-size", type=int, default=INPUT_SIZE, help="side the images are resized to for the network")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="decoding processes (default: up to 4, fewer on small machines; 0: a thread)",
    )
    p.add_argument(
        "--precision", type=Precision, default=Precision.AUTO, choices=list(Precision), help=Precision.__doc__
    )
    p.add_argument(
        "--feature-cache",
        type=Path,
        default=None,
        help="folder of cached backbone features (default: $ANNOTATOR_CACHE_DIR or ~/.cache/annotator/features)",
    )
    p.add_argument(
        "--no-feature-cache", dest="use_cache", action="store_false", help="neither read nor write cached features"
    )
    p.add_argument("--cache-gb", type=float, default=20.0, help="bound on the feature cache's disk use")
    for f in CRFParams.__dataclass_fields__.values():
        p.add_argument(
            f"--crf-{f.name.replace('_', '-')}",
            dest=f"crf_{f.name}",
            type=type(f.default),
            default=f.default,
            help=argparse.SUPPRESS if f.name == "max_side" else None,
        )
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
    p.add_argument("--feature-cache", type=Path, default=None)
    for name, default in vars(TrainConfig()).items():
        p.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    p = sub.add_parser("init", help="create a project over a folder of images (the folder is never modified)")
    p.add_argument("project", type=Path, help="project folder to create")
    p.add_argument("--images", required=True, type=Path)
    p.add_argument("--class", dest="classes", action="append", default=[], metavar="NAME", help="add a class")
    p = sub.add_parser("export", help="export a project as COCO (RLE or polygons), YOLO-seg or index PNGs")
    p.add_argument("project", type=Path)
    p.add_argument("--out", required=True, type=Path, help="FILE.json, or a folder for --format png and yolo-seg")
    p.add_argument("--format", default="coco-rle", choices=list(EXPORTERS))
    p.add_argument(
        "--val-fraction", type=float, default=0.0, help="yolo-seg: this share of the images goes to the val split"
    )
    p.add_argument("--seed", type=int, default=0, help="yolo-seg: the seed that draws the val split")
    p.add_argument("--include-proposals", action="store_true", help="also export unreviewed proposals (with score)")
    p.add_argument("--instances", action="store_true", help="one annotation per instance, not per class")
    p.add_argument(
        "--holes",
        default="rle",
        choices=["rle", "refuse"],
        help="coco-polygon: a mask with holes falls back to RLE (default) or stops the export",
    )
    p = sub.add_parser("import", help="import a COCO file or a YOLO-seg dataset into a project")
    p.add_argument("project", type=Path)
    p.add_argument("source", type=Path, help="a COCO .json file, or a YOLO-seg folder (or its data.yaml)")
    p.add_argument(
        "--format", default="auto", choices=["auto", "coco", "yolo-seg"], help="auto: told by the source's name"
    )
    p.add_argument("--as", dest="state", type=State, default=State.ACCEPTED, choices=[State.ACCEPTED, State.PROPOSED])
    p.add_argument("--overwrite", action="store_true", help="replace accepted and edited masks too (kept otherwise)")
    p.add_argument(
        "--allow-overlap",
        action="store_true",
        help="instances of a class that overlap: the later one takes the shared pixels (else refused)",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="refuse the file if an image matches none of the folder or an annotation has no mask",
    )
    for command in sub.choices.values():
        command.add_argument(
            "--max-pixels",
            type=int,
            default=MAX_PIXELS,
            metavar="N",
            help=f"skip (by name) images of more pixels than this (default {MAX_PIXELS:,})",
        )
    return ap


def run_project_command(args: argparse.Namespace) -> int:
    """`init`, `export` and `import`: the headless side of the project model."""
    from annotator.formats.coco_import import import_coco
    from annotator.formats.export import ExportError, ExportOptions, left_out_proposals
    from annotator.formats.importing import ImportFormatError
    from annotator.formats.yolo_seg import import_yolo_seg
    from annotator.io.imageio import ImageReadError
    from annotator.project.store import Project, ProjectError

    try:
        if args.command == "init":
            with Project.create(args.project, args.images) as proj:
                for note in proj.report.notes():
                    print(f"warning: {note}", file=sys.stderr)
                if proj.report.recovered:
                    print(f"{args.project}: restored the existing project, not created anew", file=sys.stderr)
                for name in args.classes:
                    if all(c.name != name.strip() for c in proj.classes.values()):
                        proj.add_class(name)
                proj.save()
                print(f"{args.project}: project over {len(proj.images)} images of {proj.image_root}")
            return 0
        with Project.open(args.project, read_only=args.command == "export") as proj:
            for note in proj.report.notes():
                print(f"warning: {note}", file=sys.stderr)
            if args.command == "import":
                if _import_format(args) == "coco":
                    n = import_coco(proj, args.source, args.state, args.overwrite, args.allow_overlap, args.strict)
                else:
                    n = import_yolo_seg(proj, args.source, args.state, args.overwrite)
                proj.save()
                print(f"imported {n['annotations']} annotations as {n['masks']} masks on {n['images']} images")
                if n["kept"]:
                    print(
                        f"warning: kept {n['kept']} accepted or edited masks the file would have replaced "
                        "(--overwrite replaces them)",
                        file=sys.stderr,
                    )
                if n["unusable"]:
                    print(
                        f"warning: left out {n['unusable']} annotations without a mask (box only or empty)",
                        file=sys.stderr,
                    )
                if n["unmatched"]:
                    print(
                        f"warning: {len(n['unmatched'])} images of the file match no image of the folder, e.g. "
                        f"{n['unmatched'][0]}; their annotations were left out",
                        file=sys.stderr,
                    )
                return 0
            from annotator.formats.exporters import EXPORTERS

            exporter = EXPORTERS[args.format]
            opts = ExportOptions(
                include_proposals=args.include_proposals,
                instances=args.instances,
                polygons=exporter.polygons,
                holes=args.holes,
                val_fraction=args.val_fraction,
                seed=args.seed,
            )
            n = exporter.write(proj, args.out, opts)
            if args.format == "png":
                print(f"wrote {n['images']} index PNGs and palette.json to {args.out}")
            elif args.format == "yolo-seg":
                print(f"wrote {n['images']} images ({n['val']} in val) with {n['lines']} polygons to {args.out}")
            else:
                extra = f" ({n['rle_fallbacks']} masks with holes kept as RLE)" if n["rle_fallbacks"] else ""
                print(f"wrote {n['annotations']} annotations on {n['images']} images to {args.out}{extra}")
            if n["skipped"]:
                print(
                    f"warning: skipped {len(n['skipped'])} images that cannot be read, e.g. {n['skipped'][0]}",
                    file=sys.stderr,
                )
            left = left_out_proposals(proj, opts)
            if left:
                print(
                    f"warning: left out {left} proposals not yet reviewed (--include-proposals exports them)",
                    file=sys.stderr,
                )
        return 0
    except (ProjectError, ExportError, ImportFormatError, ImageReadError) as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"{exc.filename or ''}: {exc.strerror or exc}")


def _import_format(args: argparse.Namespace) -> str:
    """`import`'s --format, with auto told by the source: a .json file is COCO, a folder or a .yaml is YOLO-seg."""
    if args.format != "auto":
        return args.format
    return "coco" if args.source.suffix.lower() == ".json" else "yolo-seg"


def _model_spec(args: argparse.Namespace):
    """The ModelSpec of `propagate`'s --model, --backbone and --checkpoint."""
    from annotator.build import ModelSpec

    return ModelSpec(model=args.model, backbone=args.backbone, checkpoint=args.checkpoint)


def _predictor(args: argparse.Namespace, device: str, cores: int):
    """The Predictor of `propagate`'s options (both forms): the model, the CRF (with batches, a batch's
    refinements run in up to `cores` worker processes), the precision and the feature cache."""
    from annotator.build import build_model
    from annotator.inference.feature_cache import FeatureCache, default_cache_folder
    from annotator.inference.predictor import Predictor

    crf = _crf_params(args)
    cache = None
    if args.use_cache:
        cache = FeatureCache(args.feature_cache or default_cache_folder(), disk_bytes=int(args.cache_gb * 2**30))
    procs = min(args.batch_size, cores) if crf and args.batch_size > 1 else 0
    return Predictor(
        build_model(_model_spec(args)),
        device,
        args.input_size,
        crf,
        args.batch_size,
        crf_processes=procs,
        precision=args.precision,
        cache=cache,
    )


# propagate's numeric options and their accepted ranges, checked before any work
RANGES = {
    "input_size": (33, 2048),
    "batch_size": (1, 1024),
    "workers": (0, 64),
    "cache_gb": (0.0, 1e6),
    "presence_threshold": (0.0, 1.0),
}


def _out_of_range(args: argparse.Namespace) -> str | None:
    """A one-line message for the first numeric option of `propagate` outside its range, else None."""
    problem = out_of_range(RANGES, lambda name: getattr(args, name))
    if problem:
        return f"--{problem}"
    try:
        _crf_params(args)
    except ValueError as exc:
        return f"--crf-{exc}"
    return None


def _fail(msg: str) -> int:
    print(f"annotator: error: {msg}", file=sys.stderr)
    return 2


def run_propagate(args: argparse.Namespace) -> int:
    """The `propagate` command: supports -> proposals for every image -> one COCO file. Under torchrun each
    process proposes a contiguous slice of the images and rank 0 joins the slices in order."""
    import torch
    from tqdm import tqdm

    from annotator.formats.coco import CocoSpool, stale_spools, write_coco
    from annotator.inference.device import available_cores
    from annotator.inference.distributed import close_world, init_world
    from annotator.inference.propagate import SupportError, folder_sample, load_negative, load_support, propagate
    from annotator.io.atomic import unwritable_reason
    from annotator.io.imageio import ImageReadError, list_images
    from annotator.io.weights import WeightsError

    problem = _out_of_range(args)
    if problem:
        return _fail(problem)
    if args.project is not None:
        return run_propagate_project(args)
    for flag, value in (
        ("--images", args.images),
        ("--support", args.support),
        ("--label", args.label),
        ("--out", args.out),
    ):
        if not value:
            return _fail(f"{flag} is required (or give --project and --class)")
    if not args.label.strip():
        return _fail("--label must name the class")
    problem = unwritable_reason(args.out)
    if problem:
        return _fail(f"--out {args.out}: {problem}")
    try:
        supports = [load_support(s) for s in args.support]
        negatives = [load_negative(s) for s in args.negative]
        paths = list_images(args.images)
    except (SupportError, ImageReadError) as exc:
        return _fail(str(exc))
    if not paths:
        return _fail(f"--images {args.images}: no images in it; {args.out} was left as it was")
    world = init_world()
    cores = max(1, available_cores() // world.size)
    torch.set_num_threads(cores)
    workers = args.workers if args.workers is not None else min(4, max(0, cores - 1))
    try:
        predictor = _predictor(args, world.device(args.device), cores)
        taught = {p.resolve() for p, _, _ in supports} | {p.resolve() for p, _, _ in negatives}
        folder = folder_sample(predictor, [p for p in paths if p.resolve() not in taught])
        predictor.set_supports([(im, m) for _, im, m in supports], [(im, r) for _, im, r in negatives], folder)
    except (WeightsError, ValueError) as exc:
        return _fail(str(exc))

    for sp in stale_spools(args.out) if world.main else []:
        sp.unlink(missing_ok=True)
    spools = [args.out.with_name(f".{args.out.name}.{world.run_id()}.part{r}.jsonl") for r in range(world.size)]
    skipped: list[str] = []
    n_masks = 0
    t0 = time.perf_counter()
    known = {p: m for p, _, m in supports}
    mine = world.shard(paths)
    bar = tqdm(
        total=len(mine),
        unit="img",
        desc=f"{args.label} on {predictor.device_name}",
        file=sys.stderr,
        disable=None if world.main else True,
        dynamic_ncols=True,
    )
    try:
        spool = CocoSpool(spools[world.rank])
        try:
            for res in propagate(predictor, mine, known, args.batch_size, workers):
                bar.update(1)
                if res.error:
                    skipped.append(res.error)
                    tqdm.write(f"skipped: {res.error}", file=sys.stderr)
                    continue
                if res.score is not None and res.score < args.presence_threshold:  # a support scores 1
                    res.mask, res.score = np.zeros_like(res.mask), None
                n_masks += spool.add(
                    res.path.relative_to(args.images).as_posix(), res.height, res.width, res.mask, res.score
                )
        finally:
            bar.close()
            spool.close()
            predictor.close()
        world.barrier()
        if world.main:
            info = {
                "description": f"annotator propagate: {args.label}",
                "settings": predictor.settings(),
                "supports": [str(p) for p, _, _ in supports],
                "negatives": [str(p) for p, _, _ in negatives],
                "learned_from": {"masks": predictor.learned.supports, "rejections": predictor.learned.negatives},
            }
            n_img, n_masks = write_coco(args.out, spools, {"id": 1, "name": args.label, "supercategory": ""}, info)
    except KeyboardInterrupt:
        return _interrupted(f"{args.out} was left as it was")
    except OSError as exc:
        if exc.errno in WRITE_ERRORS:  # a read-only or full disk, named as the user knows it
            return _fail(f"--out {args.out}: cannot write ({exc.strerror or exc}); {args.out} was left as it was")
        return _fail(f"{exc.filename or ''}: {exc.strerror or exc}")
    except RuntimeError as exc:  # a worker process died
        return _fail(str(exc))
    finally:
        if world.main:
            for sp in spools:
                sp.unlink(missing_ok=True)
    if world.main:
        dt = time.perf_counter() - t0
        procs_note = f", {world.size} processes" if world.size > 1 else ""
        print(
            f"{args.label}: {n_masks} masks on {n_img} images ({len(paths) - n_img} skipped) in {dt:.1f} s "
            f"({n_img / max(dt, 1e-9):.2f} img/s, {predictor.device_name}{procs_note}; "
            f"{predictor.learned.summary()}) -> {args.out}"
        )
    close_world(world)
    return 0


WRITE_ERRORS = (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.EFBIG)


def _interrupted(what: str) -> int:
    """Ctrl+C: a one-line message and the shell's exit code for SIGINT."""
    print(f"annotator: interrupted; {what}", file=sys.stderr)
    return 130


def _crf_params(args: argparse.Namespace) -> CRFParams | None:
    """The CRF parameters of the --crf-* flags (ValueError naming one out of range), or None with --no-crf."""
    params = CRFParams(**{k: getattr(args, f"crf_{k}") for k in CRFParams.__dataclass_fields__}).check()
    return params if args.crf else None


def run_propagate_project(args: argparse.Namespace) -> int:
    """`propagate --project P --class NAME`: learn from the project's masks and rejections of the class, propose
    it on every image not yet accepted (nor rejected, unless --include-rejected), and store the proposals."""
    from annotator.project.store import Project, ProjectError

    for flag, value in (
        ("--images", args.images),
        ("--support", args.support),
        ("--negative", args.negative),
        ("--out", args.out),
        ("--label", args.label),
    ):
        if value:
            return _fail(f"{flag} does not go with --project: the project gives the images, masks and rejections")
    if not args.class_name:
        return _fail("--project needs --class NAME")
    try:
        proj = Project.open(args.project)
    except ProjectError as exc:
        return _fail(str(exc))
    with proj:
        for note in proj.report.notes():
            print(f"warning: {note}", file=sys.stderr)
        return _propagate_project(args, proj)


def _propagate_project(args: argparse.Namespace, proj) -> int:
    """The body of `propagate --project` on the opened (and locked) project."""
    import torch
    from tqdm import tqdm

    from annotator.inference.device import available_cores
    from annotator.inference.propagate import SupportError
    from annotator.io.weights import WeightsError
    from annotator.project.review import unreviewed
    from annotator.project.store import ProjectError
    from annotator.project.workflows import propagate_into_project

    class_id = proj.class_named(args.class_name)
    if class_id is None:
        names = ", ".join(c.name for c in proj.classes.values()) or "none"
        return _fail(f"--class '{args.class_name}': no such class in {args.project} (classes: {names})")
    torch.set_num_threads(available_cores())
    ids = unreviewed(proj, class_id, include_rejected=args.include_rejected)
    t0 = time.perf_counter()
    bar = tqdm(total=len(ids), unit="img", desc=args.class_name, file=sys.stderr, disable=None, dynamic_ncols=True)
    try:
        predictor = _predictor(args, args.device, available_cores())
        try:
            done = propagate_into_project(
                proj,
                class_id,
                predictor,
                ids,
                args.presence_threshold,
                batch_size=args.batch_size,
                include_rejected=args.include_rejected,
                on_result=lambda *_: bar.update(1),
            )
        finally:
            predictor.close()
            bar.close()
        proj.save()
    except (SupportError, WeightsError, ProjectError, ValueError) as exc:
        return _fail(str(exc))
    dt = time.perf_counter() - t0
    print(
        f"{args.class_name}: proposed on {done} images in {dt:.1f} s ({predictor.device_name}; "
        f"{predictor.learned.summary()}) -> {args.project}"
    )
    return 0


def run_train(args: argparse.Namespace) -> int:
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
        return _fail("give at least one of --images, --pairs, --coco")
    if not args.out.parent.exists():
        return _fail(f"--out {args.out}: folder {args.out.parent} does not exist")
    if args.resume and not state_path(args.out).exists():
        return _fail(f"--resume: no saved state beside {args.out}")
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
            return _fail("no usable training image (each needs a region covering 3-60% of it, or a mask)")
    except (ImageReadError, ValueError) as exc:
        return _fail(str(exc))
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
        )
    except (WeightsError, ValueError) as exc:
        return _fail(str(exc))
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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `annotator` and `python -m annotator`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS + ("-h", "--help"):
        from annotator.app import run_app

        return run_app(argv)
    args = _parser().parse_args(argv)
    if args.max_pixels < 1:
        return _fail(f"--max-pixels {args.max_pixels}: must be at least 1")
    os.environ[PIXEL_LIMIT_ENV] = str(args.max_pixels)  # worker processes inherit it
    if args.command == "propagate":
        return run_propagate(args)
    if args.command == "train":
        return run_train(args)
    return run_project_command(args)
