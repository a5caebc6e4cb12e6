"""`annotator propagate`: supports and a folder in, one COCO file out; or, with --project, learn from a project's
reviews of a class and write the proposals back into it."""

from __future__ import annotations

import argparse
import errno
import sys
import time
from pathlib import Path

import numpy as np

from annotator.cli.common import fail
from annotator.config import (
    DEFAULT_BACKBONE,
    DEVICES,
    INPUT_SIZE,
    Model,
    Precision,
    network_shape,
    out_of_range,
    parse_input_size,
)
from annotator.inference.crf import CRF_HELP, CRFParams


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The `propagate` subcommand and its options."""
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
    p.add_argument(
        "--input-size",
        type=_input_size,
        default=INPUT_SIZE,
        metavar="SIDE|HxW",
        help="the network's input: a side (square), or HEIGHTxWIDTH such as 417x737, the aspect of 16:9 video "
        "frames (labelling_effort: fewer draws, at 1.8x the backbone's time)",
    )
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
        "--no-feature-cache",
        dest="use_cache",
        action="store_false",
        help="neither read nor write cached features on disk (one run still keeps some in memory)",
    )
    p.add_argument("--cache-gb", type=float, default=20.0, help="bound on the feature cache's disk use")
    for f in CRFParams.__dataclass_fields__.values():
        p.add_argument(
            f"--crf-{f.name.replace('_', '-')}",
            dest=f"crf_{f.name}",
            type=type(f.default),
            default=f.default,
            help=argparse.SUPPRESS if f.name == "max_side" else f"{CRF_HELP[f.name]} (default {f.default})",
        )


# propagate's numeric options and their accepted ranges, checked before any work
RANGES = {
    "input_size": (33, 2048),
    "batch_size": (1, 1024),
    "workers": (0, 64),
    "cache_gb": (0.0, 1e6),
    "presence_threshold": (0.0, 1.0),
}


def _input_size(text: str):
    """--input-size's argparse type: config.parse_input_size, its message shown as it is."""
    try:
        return parse_input_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _checked_value(args: argparse.Namespace, name: str):
    """An option's value as its range is checked: the input size's side that is out of range, if one is."""
    value = getattr(args, name)
    if name != "input_size":
        return value
    lo, hi = RANGES[name]
    sides = network_shape(value)
    return next((s for s in sides if not lo <= s <= hi), sides[0])


def options_out_of_range(args: argparse.Namespace) -> str | None:
    """A one-line message for the first numeric option of `propagate` outside its range, else None."""
    problem = out_of_range(RANGES, lambda name: _checked_value(args, name))
    if problem:
        return f"--{problem}"
    try:
        crf_params(args)
    except ValueError as exc:
        return f"--crf-{exc}"
    return None


def crf_params(args: argparse.Namespace) -> CRFParams | None:
    """The CRF parameters of the --crf-* flags (ValueError naming one out of range), or None with --no-crf."""
    params = CRFParams(**{k: getattr(args, f"crf_{k}") for k in CRFParams.__dataclass_fields__}).check()
    return params if args.crf else None


def model_spec(args: argparse.Namespace):
    """The ModelSpec of `propagate`'s --model, --backbone and --checkpoint."""
    from annotator.build import ModelSpec

    return ModelSpec(model=args.model, backbone=args.backbone, checkpoint=args.checkpoint)


def build_predictor(args: argparse.Namespace, device: str, cores: int):
    """The Predictor of `propagate`'s options (both forms): the model, the CRF (with batches, a batch's
    refinements run in up to `cores` worker processes), the precision and the feature cache."""
    from annotator.build import build_model
    from annotator.inference.feature_cache import FeatureCache, default_cache_folder
    from annotator.inference.predictor import Predictor

    crf = crf_params(args)
    if args.use_cache:
        cache = FeatureCache(args.feature_cache or default_cache_folder(), disk_bytes=int(args.cache_gb * 2**30))
    else:  # in memory only: the folder sample's features are not computed twice
        cache = FeatureCache()
    procs = min(args.batch_size, cores) if crf and args.batch_size > 1 else 0
    return Predictor(
        build_model(model_spec(args)),
        device,
        args.input_size,
        crf,
        args.batch_size,
        crf_processes=procs,
        precision=args.precision,
        cache=cache,
    )


def run(args: argparse.Namespace) -> int:
    """The `propagate` command: supports -> proposals for every image -> one COCO file. Under torchrun each
    process proposes a contiguous slice of the images and rank 0 joins the slices in order."""
    import torch

    from annotator.formats.coco import stale_spools, write_coco
    from annotator.inference.device import available_cores, decode_workers
    from annotator.inference.distributed import close_world, init_world
    from annotator.inference.propagate import SupportError, folder_sample, load_negative, load_support
    from annotator.io.imageio import ImageReadError, list_images
    from annotator.io.weights import WeightsError

    problem = options_out_of_range(args)
    if problem:
        return fail(problem)
    if args.project is not None:
        return run_project(args)
    problem = _folder_problem(args)
    if problem:
        return fail(problem)
    try:
        supports = [load_support(s) for s in args.support]
        negatives = [load_negative(s) for s in args.negative]
        paths = list_images(args.images)
    except (SupportError, ImageReadError) as exc:
        return fail(str(exc))
    if not paths:
        return fail(f"--images {args.images}: no images in it; {args.out} was left as it was")
    world = init_world()
    cores = max(1, available_cores() // world.size)
    torch.set_num_threads(cores)
    workers = args.workers if args.workers is not None else decode_workers(cores)
    t0 = time.perf_counter()  # the summary's time: learning and the folder sample's features too
    try:
        predictor = build_predictor(args, world.device(args.device), cores)
        taught = {p.resolve() for p, _, _ in supports} | {p.resolve() for p, _, _ in negatives}
        folder = folder_sample(predictor, [p for p in paths if p.resolve() not in taught])
        predictor.set_supports([(im, m) for _, im, m in supports], [(im, r) for _, im, r in negatives], folder)
    except (WeightsError, ValueError) as exc:
        return fail(str(exc))

    for sp in stale_spools(args.out) if world.main else []:
        sp.unlink(missing_ok=True)
    spools = [args.out.with_name(f".{args.out.name}.{world.run_id()}.part{r}.jsonl") for r in range(world.size)]
    try:
        try:
            known = {p: m for p, _, m in supports}
            _propagate_to_spool(args, predictor, world.shard(paths), known, workers, spools[world.rank], world.main)
        finally:
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
            return fail(f"--out {args.out}: cannot write ({exc.strerror or exc}); {args.out} was left as it was")
        return fail(f"{exc.filename or ''}: {exc.strerror or exc}")
    except RuntimeError as exc:  # a worker process died
        return fail(str(exc))
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


def _folder_problem(args: argparse.Namespace) -> str | None:
    """What is missing or wrong in `propagate`'s folder form (--images, --support, --label, --out), if anything."""
    from annotator.io.atomic import unwritable_reason

    for flag, value in (
        ("--images", args.images),
        ("--support", args.support),
        ("--label", args.label),
        ("--out", args.out),
    ):
        if not value:
            return f"{flag} is required (or give --project and --class)"
    if not args.label.strip():
        return "--label must name the class"
    problem = unwritable_reason(args.out)
    return f"--out {args.out}: {problem}" if problem else None


def _propagate_to_spool(args, predictor, paths: list[Path], known: dict, workers: int, spool_path: Path, main: bool):
    """Propose the class on `paths` (this process's share) into a COCO spool, with a progress bar on the main
    process; an unreadable image is said and skipped, a proposal under --presence-threshold comes out empty."""
    from tqdm import tqdm

    from annotator.formats.coco import CocoSpool
    from annotator.inference.propagate import propagate

    desc = f"{args.label} on {predictor.device_name}"
    bar = tqdm(
        total=len(paths), unit="img", desc=desc, file=sys.stderr, disable=None if main else True, dynamic_ncols=True
    )
    spool = CocoSpool(spool_path)
    try:
        for res in propagate(predictor, paths, known, args.batch_size, workers):
            bar.update(1)
            if res.error:
                tqdm.write(f"skipped: {res.error}", file=sys.stderr)
                continue
            if res.score is not None and res.score < args.presence_threshold:  # a support scores 1
                res.mask, res.score = np.zeros_like(res.mask), None
            spool.add(res.path.relative_to(args.images).as_posix(), res.height, res.width, res.mask, res.score)
    finally:
        bar.close()
        spool.close()


WRITE_ERRORS = (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.EFBIG)


def _interrupted(what: str) -> int:
    """Ctrl+C: a one-line message and the shell's exit code for SIGINT."""
    print(f"annotator: interrupted; {what}", file=sys.stderr)
    return 130


def run_project(args: argparse.Namespace) -> int:
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
            return fail(f"{flag} does not go with --project: the project gives the images, masks and rejections")
    if not args.class_name:
        return fail("--project needs --class NAME")
    try:
        proj = Project.open(args.project)
    except ProjectError as exc:
        return fail(str(exc))
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
        return fail(f"--class '{args.class_name}': no such class in {args.project} (classes: {names})")
    torch.set_num_threads(available_cores())
    ids = unreviewed(proj, class_id, include_rejected=args.include_rejected)
    t0 = time.perf_counter()
    bar = tqdm(total=len(ids), unit="img", desc=args.class_name, file=sys.stderr, disable=None, dynamic_ncols=True)
    try:
        predictor = build_predictor(args, args.device, available_cores())
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
        return fail(str(exc))
    dt = time.perf_counter() - t0
    print(
        f"{args.class_name}: proposed on {done} images in {dt:.1f} s ({predictor.device_name}; "
        f"{predictor.learned.summary()}) -> {args.project}"
    )
    return 0
