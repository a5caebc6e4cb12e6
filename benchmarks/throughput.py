"""End-to-end propagation throughput, its breakdown, the feature cache's second pass, and memory scaling.

All rows are measured in one run on one folder (made from DAVIS frames, or `--folder`):
- decode only (DataLoader workers, no model) and backbone only (pixels already in memory, batched);
- the plain loop: read one image, predict it, next (the baseline);
- the pipeline (workers decode ahead, CRF behind) without CRF, cold cache; then again with the features
  in memory, and again from the disk cache alone (a new session); then with the CRF;
- the backbone-only rows and the plain loop in fp32 (today's path), the pipeline rows at the default precision
  (auto: int8 on an x86 CPU, bf16 on CUDA) with its masks' IoU against the fp32 plain loop's; where set-up made
  OpenVINO's int8 files, its backbone-only and plain-loop rows (`--precision int8-openvino`);
- with `--bf16`: the CPU bf16 backbone, with the IoU of its masks against fp32's;
- with `--runtimes`: the backbone exported to ONNX and run by ONNX Runtime and OpenVINO, fp32 and int8
  (benchmarks/runtimes.py), with their masks' IoU against the fp32 plain loop's;
- with `--cli`: `annotator propagate --no-feature-cache --no-crf` over the folder in fp32 and at the default
  precision, each in a child process: the images/s of its own summary and its peak RSS.
`--memory 2000 20000` also runs `annotator propagate` over that many small images in child processes
and reports each one's peak RSS.

Run: .venv/bin/python -m benchmarks.throughput [--images 32] [--device auto] [--memory 2000 20000]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from annotator.build import build_model
from annotator.inference.crf import CRFParams
from annotator.inference.device import available_cores, decode_workers
from annotator.inference.feature_cache import FeatureCache
from annotator.inference.loading import load_batches, resize_for_network
from annotator.inference.predictor import Predictor
from annotator.inference.propagate import propagate
from annotator.io.imageio import list_images, read_image, read_mask
from benchmarks import davis

REPO = Path(__file__).resolve().parents[1]


def make_folder(root: Path, n: int) -> tuple[Path, Path, Path]:
    """n DAVIS frames (round-robin over sequences) as JPEGs in root/images, and a car support + mask. A frame
    used again has one pixel changed, so that every file is a distinct image to the feature cache."""
    import cv2

    imgs = root / "images"
    imgs.mkdir(parents=True)
    seqs = [davis.frames(s) for s in davis.GROUPS_FLAT]
    seen: set[Path] = set()
    for i in range(n):
        src, _ = seqs[i % len(seqs)][(i // len(seqs)) % len(seqs[i % len(seqs)])]
        im = cv2.imread(str(src))
        if src in seen:
            im[0, 0] = (i % 256, (i // 256) % 256, (i // 65536) % 256)
        seen.add(src)
        cv2.imwrite(str(imgs / f"{i:06d}.jpg"), im)
    support, mask = davis.frames("car-roundabout")[0]
    return imgs, support, mask


def make_small_folder(root: Path, n: int) -> tuple[Path, Path, Path]:
    """n small (64x48) images of a bright disc on noise, and one support with its mask."""
    import cv2

    rng = np.random.default_rng(0)
    imgs = root / "images"
    imgs.mkdir(parents=True)
    for i in range(n + 1):
        im = rng.integers(0, 120, (48, 64, 3), dtype=np.uint8)
        m = np.zeros((48, 64), np.uint8)
        cv2.circle(m, (int(rng.integers(16, 48)), int(rng.integers(12, 36))), 10, 255, -1)
        im[m > 0] = (230, 60, 40)
        cv2.imwrite(str(root / f"s{i}.png" if i == n else imgs / f"{i:06d}.png"), im[..., ::-1])
        if i == n:
            cv2.imwrite(str(root / "mask.png"), m)
    return imgs, root / f"s{n}.png", root / "mask.png"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timed_run(predictor: Predictor, paths: list[Path], batch: int, workers: int) -> tuple[float, list]:
    t0 = time.perf_counter()
    masks = [r.mask for r in propagate(predictor, paths, None, batch, workers)]
    return time.perf_counter() - t0, masks


def _iou(a: list, b: list) -> float:
    inter = sum(int((x & y).sum()) for x, y in zip(a, b) if x is not None)
    union = sum(int((x | y).sum()) for x, y in zip(a, b) if x is not None)
    return 100.0 * inter / max(union, 1)


def run(args) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="throughput-"))
    if args.folder:
        folder, support, mask = args.folder, args.support_image, args.support_mask
    else:
        if not davis.available():
            sys.exit(f"skipped: {davis.ABSENT}")
        folder, support, mask = make_folder(tmp, args.images)
    paths = list_images(folder)
    n = len(paths)
    supports = [(read_image(support), read_mask(mask))]
    cores = available_cores()
    torch.set_num_threads(cores)
    workers = args.workers if args.workers is not None else decode_workers(cores)
    rows: list[tuple[str, float, str]] = []

    def make(crf: bool = False, cache: FeatureCache | None = None, precision: str = "fp32", model=None) -> Predictor:
        p = Predictor(
            model or build_model(),
            device=args.device,
            input_size=args.input_size,
            crf=CRFParams() if crf else None,
            batch_size=args.batch_size,
            crf_processes=cores if crf else 0,
            precision=precision,
            cache=cache,
        )
        p.set_supports(supports)
        return p

    plain = make()
    dev = plain.device
    print(
        f"{n} images, input {args.input_size}px, batch {args.batch_size}, {workers} decode workers, "
        f"{plain.device_name}",
        file=sys.stderr,
    )

    t0 = time.perf_counter()
    for _ in load_batches(paths, args.input_size, "decode-only", args.batch_size, workers):
        pass
    decode_s = time.perf_counter() - t0
    rows.append(("decode only (workers)", n / decode_s, ""))

    pixels = torch.from_numpy(np.stack([resize_for_network(read_image(p), args.input_size) for p in paths]))

    def backbone_rate(predictor: Predictor, pixels: torch.Tensor) -> float:
        predictor.encode_pixels(pixels[: args.batch_size])  # warm-up (cuDNN autotune, allocator)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        predictor.encode_pixels(pixels)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return n / (time.perf_counter() - t0)

    def plain_loop(precision: str, model=None) -> tuple[float, list]:
        one = make(precision=precision, model=model)
        one.batch_size = 1
        t0 = time.perf_counter()
        masks = [one.predict([read_image(p)])[0].mask for p in paths]
        return n / (time.perf_counter() - t0), masks

    backbone_ips = backbone_rate(plain, pixels)
    rows.append(("backbone only (pixels in memory), fp32", backbone_ips, ""))
    default = make(precision="auto")
    other = default.precision_name != plain.precision_name  # else the rows at the default would repeat fp32's
    default_backbone_ips = backbone_rate(default, pixels) if other else backbone_ips
    if other:
        name = f"backbone only (pixels in memory), {default.precision_name}"
        rows.append((name, default_backbone_ips, f"{default_backbone_ips / backbone_ips:.2f}x fp32"))
    try:  # OpenVINO's int8 beside it (--precision int8-openvino), where set-up made its files
        openvino = make(precision="int8-openvino")
    except ValueError as exc:
        openvino = None
        print(f"no OpenVINO rows: {exc}", file=sys.stderr)
    if openvino is not None:
        ips = backbone_rate(openvino, pixels)
        name = f"backbone only (pixels in memory), {openvino.precision_name}"
        rows.append((name, ips, f"{ips / backbone_ips:.2f}x fp32"))
    del pixels

    base_ips, base_masks = plain_loop("fp32")
    rows.append(("plain loop, one image at a time, fp32 (baseline)", base_ips, "1.00x baseline"))
    plain_default_ips = plain_loop("auto")[0] if other else base_ips
    if other:
        rows.append((f"plain loop, one image at a time, {default.precision_name}", plain_default_ips, ""))
    if openvino is not None:  # its model, already converted, in a one-image-at-a-time predictor
        ips, masks = plain_loop("int8-openvino", openvino.model)
        note = f"masks vs baseline IoU {_iou(masks, base_masks):.2f}"
        rows.append((f"plain loop, one image at a time, {openvino.precision_name}", ips, note))
    if args.runtimes:
        rows += runtime_rows(make, paths, base_masks, backbone_ips, args, tmp, cores)

    cache = FeatureCache(tmp / "cache")
    cached = make(cache=cache, precision="auto")
    cold_s, cold_masks = _timed_run(cached, paths, args.batch_size, workers)
    tm = cached.timings
    breakdown = f"decode {decode_s / n:.4f} | backbone {tm.backbone / n:.4f} | matching {tm.matching / n:.4f} | CRF 0"
    rows.append(
        (
            f"pipeline, no CRF, cold cache, {cached.precision_name}",
            n / cold_s,
            f"{n / cold_s / default_backbone_ips:.0%} of backbone-only; {n / cold_s / base_ips:.2f}x baseline; "
            f"{n / cold_s / plain_default_ips:.2f}x the plain loop at its precision; "
            f"masks vs baseline IoU {_iou(cold_masks, base_masks):.2f}",
        )
    )
    warm_s, warm_masks = _timed_run(cached, paths, args.batch_size, workers)
    identical = all(np.array_equal(a, b) for a, b in zip(cold_masks, warm_masks))
    rows.append(
        (
            "pipeline, no CRF, features in memory (2nd pass)",
            n / warm_s,
            f"{cold_s / warm_s:.1f}x the cold pass; masks identical: {identical}",
        )
    )
    disk = make(cache=FeatureCache(tmp / "cache", memory_bytes=0), precision="auto")
    disk_s, _ = _timed_run(disk, paths, args.batch_size, workers)
    rows.append(
        ("pipeline, no CRF, features from disk (new session)", n / disk_s, f"{cold_s / disk_s:.1f}x the cold pass")
    )

    if args.crf:
        with_crf = make(crf=True, cache=cache, precision="auto")
        crf_s, _ = _timed_run(with_crf, paths, args.batch_size, workers)
        with_crf.close()
        rows.append(
            (
                "pipeline, CRF in a process pool (features cached)",
                n / crf_s,
                f"CRF {with_crf.timings.crf / n:.3f} s/img of worker time over {cores} processes",
            )
        )
    if args.bf16:
        bf = make(precision="bf16")
        bf_s, bf_masks = _timed_run(bf, paths, args.batch_size, workers)
        rows.append(
            (
                "pipeline, no CRF, bf16 backbone",
                n / bf_s,
                f"{n / bf_s / base_ips:.2f}x baseline; masks vs fp32 baseline IoU {_iou(bf_masks, base_masks):.2f}",
            )
        )

    gpu = f", peak GPU memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB" if dev.type == "cuda" else ""
    print(
        f"\nThroughput, {n} images ({folder}), input {args.input_size}px, batch {args.batch_size}, {workers} decode "
        f"workers, {plain.device_name}; peak RSS {_rss_mb():.0f} MB{gpu}\n"
    )
    print("| path | images/s | notes |\n|---|---|---|")
    for name, ips, note in rows:
        print(f"| {name} | {ips:.2f} | {note} |")
    print(f"\nBreakdown of the cold pass, s/img: {breakdown}")
    if args.cli:
        cli_rows(folder, support, mask, args)


def runtime_rows(make, paths: list[Path], base_masks: list, fp32_ips: float, args, tmp: Path, cores: int) -> list:
    """Rows of the backbone in ONNX Runtime and OpenVINO (benchmarks/runtimes.py), each in a fp32 predictor in place
    of its torch backbone: backbone-only images/s, and the plain loop's masks against the fp32 baseline's. Calibrated
    on 32 frames of videos that are not in the folder."""
    if args.runtimes_path:
        sys.path.insert(0, str(args.runtimes_path))
    from benchmarks.runtimes import RuntimeBackbone, runtime_backbones

    shape = (args.input_size, args.input_size)
    probe = make()
    calib_paths = [f for s in davis.EXTRA_NEGATIVES for f, _ in davis.frames(s)][1::3][:32]
    calib = [
        probe.network_input(torch.from_numpy(resize_for_network(read_image(p), args.input_size))[None]).numpy()
        for p in calib_paths
    ]
    pixels = torch.from_numpy(np.stack([resize_for_network(read_image(p), args.input_size) for p in paths]))
    rows = []
    for name, run in runtime_backbones(probe.model.backbone, shape, calib, tmp, cores).items():
        p = make()
        p.model.backbone = RuntimeBackbone(run)
        p.encode_pixels(pixels[:1])  # warm-up
        t0 = time.perf_counter()
        for i in range(len(paths)):  # one image at a time: the runtimes' sessions run batch 1 fastest here
            p.encode_pixels(pixels[i : i + 1])
        ips = len(paths) / (time.perf_counter() - t0)
        p.batch_size = 1
        masks = [p.predict([read_image(q)])[0].mask for q in paths]
        rows.append(
            (
                f"backbone only, {name}",
                ips,
                f"{ips / fp32_ips:.2f}x fp32; masks vs baseline IoU {_iou(masks, base_masks):.2f}",
            )
        )
    return rows


def cli_rows(folder: Path, support: Path, mask: Path, args) -> None:
    """`annotator propagate --no-feature-cache --no-crf` in fp32 and at the default precision, each in a child
    process: the images/s its summary reports, and its peak RSS."""
    print("\n| CLI first pass (--no-feature-cache --no-crf) | images/s (its summary) | ratio | peak RSS MB |")
    print("|---|---|---|---|")
    first = None
    for precision in ("fp32", "auto"):
        out = Path(tempfile.mkdtemp(prefix="cli-")) / "out.json"
        cmd = [sys.executable, "-c", _CHILD, "propagate", "--images", str(folder), "--support", f"{support}:{mask}"]
        cmd += ["--label", "car", "--out", str(out), "--no-crf", "--no-feature-cache", "--precision", precision]
        cmd += ["--device", args.device, "--batch-size", str(args.batch_size)]
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"propagate --precision {precision} failed: {proc.stderr[-2000:]}")
        summary, hwm = proc.stdout.strip().rsplit("\n", 1)
        ips = float(summary.split(" img/s")[0].rsplit("(", 1)[1])
        first = first or ips
        print(f"| --precision {precision} | {ips:.2f} | {ips / first:.2f}x | {int(hwm) / 1024:.0f} |")


# The child prints its own peak RSS (VmHWM, which exec resets; a child's ru_maxrss carries the parent's).
_CHILD = (
    "import sys; from annotator.cli import main; rc = main(sys.argv[1:]); "
    "print(open('/proc/self/status').read().split('VmHWM:')[1].split()[0]); sys.exit(rc)"
)


def memory_rows(sizes: list[int], input_size: int) -> None:
    """Peak RSS of `annotator propagate` (a child process each) over folders of small images."""
    print("\n| small images | input px | peak RSS MB | ratio to the first |\n|---|---|---|---|")
    first = None
    for n in sizes:
        root = Path(tempfile.mkdtemp(prefix=f"rss{n}-"))
        imgs, sup, mask = make_small_folder(root, n)
        cmd = [
            sys.executable,
            "-c",
            _CHILD,
            "propagate",
            "--images",
            str(imgs),
            "--support",
            f"{sup}:{mask}",
            "--label",
            "disc",
            "--out",
            str(root / "out.json"),
            "--no-crf",
            "--input-size",
            str(input_size),
            "--batch-size",
            "16",
            "--feature-cache",
            str(root / "cache"),
        ]
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"propagate over {n} images failed: {proc.stderr[-2000:]}")
        summary, hwm = proc.stdout.strip().rsplit("\n", 1)
        rss = int(hwm) / 1024
        first = first or rss
        print(f"| {n} | {input_size} | {rss:.0f} | {rss / first:.2f} |   ({summary})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=32, help="images in the folder made from DAVIS frames")
    ap.add_argument("--folder", type=Path, help="take this folder instead (with --support-image/--support-mask)")
    ap.add_argument("--support-image", type=Path)
    ap.add_argument("--support-mask", type=Path)
    ap.add_argument("--input-size", type=int, default=417)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--no-crf", dest="crf", action="store_false")
    ap.add_argument("--bf16", action="store_true", help="add the bf16-backbone row")
    ap.add_argument("--cli", action="store_true", help="add the CLI's first pass in fp32 and at the default precision")
    ap.add_argument(
        "--runtimes", action="store_true", help="add ONNX Runtime and OpenVINO rows (benchmarks/runtimes.py)"
    )
    ap.add_argument("--runtimes-path", type=Path, help="a folder where onnxruntime, onnx and openvino are installed")
    ap.add_argument("--memory", type=int, nargs="*", default=[], help="also measure peak RSS over N small images")
    ap.add_argument("--memory-input-size", type=int, default=33)
    ap.add_argument("--skip-throughput", action="store_true")
    args = ap.parse_args()
    if not args.skip_throughput:
        run(args)
    if args.memory:
        memory_rows(args.memory, args.memory_input_size)


if __name__ == "__main__":
    main()
