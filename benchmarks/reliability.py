"""Reliability: the attacks of the reliability issue run against the CLI and the project, one case each.

A case passes when the outcome is what a user of a database would expect: success with nothing lost, or a
one-line message (exit 2, or 130 for Ctrl+C) with nothing the user made lost and nothing outside the project
or --out touched. Prints one row per defect group and the totals.

Run: .venv/bin/python -m benchmarks.reliability
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import numpy as np
from PIL import Image

from annotator.cli import main
from annotator.formats.coco import encode_rle
from annotator.formats.exporters import EXPORTERS
from annotator.project.store import AutoSaver, Project, ProjectError
from tests.disks import NoSmallDisk, fill, leftovers, small_disk
from tests.processes import held_open
from tests.synthetic import scene, write_mask, write_rgb

H, W = 48, 64
CASES: list[tuple[str, str, Callable[[Path], str | None]]] = []  # (group, case, run(workspace) -> defect or None)


def case(group: str, name: str):
    def register(fn):
        CASES.append((group, name, fn))
        return fn

    return register


# ---- helpers --------------------------------------------------------------------------------------------
def folder(ws: Path, n: int = 3) -> Path:
    imgs = ws / "images"
    imgs.mkdir(exist_ok=True)
    for k in range(n):
        img, m = scene(H, W, (24, 20 + 8 * k), 10, seed=k)
        write_rgb(imgs / f"q{k}.png", img)
        if k == 0:
            write_mask(ws / "mask.png", m)
    return imgs


def project(ws: Path) -> Project:
    """A closed project with one accepted mask of 63 pixels on q0.png."""
    with Project.create(ws / "proj", folder(ws)) as p:
        p.add_class("thing")
        m = np.zeros((H, W), bool)
        m[2:9, 3:12] = True
        p.set_mask(p.image_id("q0.png"), 1, m)
        p.save()
    return p


def cli(*argv) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main([str(a) for a in argv])
        except BaseException as exc:  # a traceback is a defect, not the end of the benchmark
            return -1, f"{type(exc).__name__}: {exc}"
    return rc, out.getvalue() + err.getvalue()


def refused(rc: int, out: str, words: str, code: int = 2) -> str | None:
    """None when the command failed with `code` and a one-line error naming `words`."""
    errors = [line for line in out.splitlines() if line.startswith("annotator: ")]
    if rc != code or len(errors) != 1 or words not in errors[0]:
        return f"rc {rc}: {out.strip()[-160:]}"
    return None


def mask_kept(ws: Path) -> str | None:
    with Project.open(ws / "proj", read_only=True) as p:
        m = p.mask(p.image_id("q0.png"), 1)
        return None if m is not None and m.sum() == 63 else "the user's mask is gone"


def coco_file(ws: Path, data) -> Path:
    path = ws / "in.json"
    path.write_text(json.dumps(data))
    return path


def one_ann(seg, image="q1.png", **extra) -> dict:
    return {
        "images": [{"id": 1, "file_name": image, "height": H, "width": W}],
        "categories": [{"id": 1, "name": "thing"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": seg, **extra}],
    }


def propagate_args(ws: Path, *extra) -> list:
    return [
        "propagate",
        "--images",
        ws / "images",
        "--support",
        f"{ws / 'images' / 'q0.png'}:{ws / 'mask.png'}",
        "--label",
        "ball",
        "--out",
        ws / "out.json",
        "--device",
        "cpu",
        "--input-size",
        "65",
        *extra,
    ]


def previous_output_kept(ws: Path) -> str | None:
    if (ws / "out.json").read_text() != "previous" or list(ws.glob(".out.json.*")):
        return "the previous output or a spool file was not left as it was"
    return None


# ---- 1-6: data loss ----------------------------------------------------------------------------------
@case("1 backup only", "init over a project left with only project.json.bak")
def _(ws):
    project(ws)
    os.replace(ws / "proj/project.json", ws / "proj/project.json.bak")
    rc, out = cli("init", ws / "proj", "--images", ws / "images")
    return (None if rc == 0 and "restored" in out else out) or mask_kept(ws)


@case("1 backup only", "index and two earlier copies damaged: an older generation opens")
def _(ws):
    p = project(ws)
    with Project.open(p.folder) as again:
        for k in range(4):
            again.rename_class(1, f"g{k}")
            again.save()
    for f in ("project.json", "project.json.bak", "backups/project.json.2"):
        (p.folder / f).unlink()
        (p.folder / f).write_text("torn")
    return mask_kept(ws)


@case("2 two writers", "import while another process writes the project")
def _(ws):
    project(ws)
    with held_open(ws / "proj") as child:
        rc, out = cli("import", ws / "proj", coco_file(ws, {"images": [], "annotations": [], "categories": []}))
        return refused(rc, out, f"open in process {child.pid}")


@case("2 two writers", "a dead writer's lock is broken, and said so")
def _(ws):
    project(ws)
    with held_open(ws / "proj"):
        pass  # killed at the end of the block, holding the lock
    with Project.open(ws / "proj") as p:
        return None if p.report.lock_note and "stale lock" in p.report.lock_note else "no note of the broken lock"


@case("3 import replaces", "import --as proposed over an accepted mask")
def _(ws):
    project(ws)
    small = np.zeros((H, W), bool)
    small[0, :10] = True
    rc, out = cli("import", ws / "proj", coco_file(ws, one_ann(encode_rle(small), "q0.png")), "--as", "proposed")
    return (None if rc == 0 and "kept 1 accepted" in out else out) or mask_kept(ws)


@case("4 overlap", "overlapping instances of one class")
def _(ws):
    project(ws)
    a, b = np.zeros((H, W), bool), np.zeros((H, W), bool)
    a[:30, :40], b[10:20, 10:20] = True, True
    data = one_ann(encode_rle(a))
    data["annotations"].append({"id": 2, "image_id": 1, "category_id": 1, "segmentation": encode_rle(b)})
    rc, out = cli("import", ws / "proj", coco_file(ws, data))
    return refused(rc, out, "annotation 2 overlaps annotation 1")


@case("5 backup masks", "a mask the backup refers to survives collection")
def _(ws):
    p = project(ws)
    with Project.open(p.folder) as again:
        again.set_mask(again.image_id("q0.png"), 1, np.ones((H, W), bool))
        again.save()
    with Project.open(p.folder):
        pass  # collects unused masks
    (p.folder / "project.json").unlink()
    return mask_kept(ws)


@case("6 PNG stems", "a.jpg and a.png both exported")
def _(ws):
    imgs = ws / "images"
    imgs.mkdir()
    write_rgb(imgs / "a.png", scene(H, W, None, 0, seed=1)[0])
    Image.fromarray(scene(H, W, None, 0, seed=2)[0]).save(imgs / "a.jpg")
    with Project.create(ws / "proj", imgs) as p:
        p.add_class("x")
        for name in ("a.png", "a.jpg"):
            p.set_mask(p.image_id(name), 1, np.ones((H, W), bool))
        p.save()
    rc, out = cli("export", ws / "proj", "--out", ws / "png", "--format", "png")
    return None if rc == 0 and len(list((ws / "png").glob("a.*.png"))) == 2 else out


# ---- 7-9: outside the project ---------------------------------------------------------------------------
def edit_index(ws: Path, change) -> None:
    path = ws / "proj/project.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@case("7 mask names", "a mask name ../../x: repaint and export leave the outside file")
def _(ws):
    project(ws)
    victim = ws / "victim.png"
    victim.write_bytes(b"user data")
    edit_index(ws, lambda d: d["records"][0].update(mask="../../victim.png"))
    cli("export", ws / "proj", "--out", ws / "o.json")
    with Project.open(ws / "proj") as p:
        p.set_mask(p.image_id("q0.png"), 1, np.ones((H, W), bool))
        p.save()
    return None if victim.read_bytes() == b"user data" else "an outside file was touched"


@case("7 mask names", "a linked mask file is not followed")
def _(ws):
    project(ws)
    with Project.open(ws / "proj") as p:
        real = p.folder / "masks" / p.record(p.image_id("q0.png"), 1).mask
        os.replace(real, ws / "outside.png")
        real.symlink_to(ws / "outside.png")
        try:
            p.labels(p.image_id("q0.png"), 1)
        except ProjectError as exc:
            return None if "link" in str(exc) else str(exc)
    return "the link was followed"


@case("8 export outside --out", "an image path with .. in project.json")
def _(ws):
    project(ws)
    edit_index(ws, lambda d: d["images"].append({"id": 9, "file": "../../../evil.jpg", "height": H, "width": W}))
    rc, out = cli("export", ws / "proj", "--out", ws / "out" / "png", "--format", "png")
    return None if rc == 0 and not (ws / "evil.jpg.png").exists() and "outside" in out else out


@case("9 pickles", "a pickle in weights/ is refused without advising weights_only=False")
def _(ws):
    from annotator.io.weights import WeightsError, load_backbone_state

    (ws / "evil.pth").write_bytes(pickle.dumps({"x": os.getcwd}))
    try:
        load_backbone_state("evil", ws)
    except WeightsError as exc:
        return None if "weights_only" not in str(exc) else str(exc)
    return "loaded"


# ---- 10-20: crashes, hangs, wrong results ----------------------------------------------------------------
for label, seg, words in [
    ("coordinates >= 1e9", [[0, 0, 1e9, 0, 5, 5]], "within"),
    ("NaN coordinates", [[0, 0, float("nan"), 0, 5, 5]], "not a readable COCO file"),  # JSON has no NaN
    ("float RLE counts", {"size": [H, W], "counts": [1000.0, 2072.0]}, "whole numbers"),
    ("RLE counts not adding up", {"size": [H, W], "counts": [5, 5]}, "add up"),
]:

    @case("10 crafted COCO", label)
    def _(ws, seg=seg, words=words):
        project(ws)
        return refused(*cli("import", ws / "proj", coco_file(ws, one_ann(seg))), words) or mask_kept(ws)


@case("10 crafted COCO", "66,000 instances on one image")
def _(ws):
    project(ws)
    data = one_ann([[0, 0, 2, 0, 2, 2]])
    data["annotations"] = [
        {"id": i, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 2, 0, 2, 2]]} for i in range(66_000)
    ]
    return refused(*cli("import", ws / "proj", coco_file(ws, data)), "more than 65535 instances")


def import_peak_mb(ws: Path, path: Path) -> float:
    """Peak RSS (MB) of a fresh process that imports the COCO file into the project at ws/proj: its VmHWM, which
    starts anew at exec (ru_maxrss would carry this process's own peak over from the fork)."""
    code = (
        "import re, sys; from pathlib import Path; from annotator.cli import main; rc = main(sys.argv[1:]); "
        "print(rc, int(re.search(r'VmHWM:\\s+(\\d+)', Path('/proc/self/status').read_text())[1]) / 1024)"
    )
    argv = [sys.executable, "-c", code, "import", ws / "proj", path, "--allow-overlap", "--overwrite"]
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, check=False)
    rc, mb = done.stdout.split()[-2:] if done.stdout.strip() else ("-1", "0")
    return float(mb) if rc == "0" else float("inf")


@case("10 crafted COCO", "a 120 MB file: memory bounded (streamed)")
def _(ws):
    project(ws)
    tiny = coco_file(ws, one_ann([[0, 0, 5, 0, 5, 5]]))
    ring = [
        round(v, 2)
        for t in np.linspace(0, 2 * np.pi, 600, endpoint=False)
        for v in (32 + 20 * np.cos(t), 24 + 20 * np.sin(t))
    ]
    ann = json.dumps({"image_id": 1, "category_id": 1, "segmentation": [ring]})[1:-1]
    big = ws / "big.json"
    with big.open("w") as f:  # written piece by piece: the benchmark's own memory stays small
        head = one_ann([])
        f.write(json.dumps({"images": head["images"], "categories": head["categories"]})[:-1] + ', "annotations": [')
        n = 0
        while f.tell() < 120e6:
            f.write(("," if n else "") + "{" + f'"id": {n}, ' + ann + "}")
            n += 1
        f.write("]}")
    small_mb, big_mb = import_peak_mb(ws, tiny), import_peak_mb(ws, big)
    print(f"    COCO import peak RSS: {small_mb:.0f} MB for one annotation, {big_mb:.0f} MB for 120 MB ({n} polygons)")
    return None if big_mb - small_mb < 100 else f"peak RSS {small_mb:.0f} MB -> {big_mb:.0f} MB"


@case("11 CRF and workers", "--crf-bilateral-srgb 0")
def _(ws):
    folder(ws)
    return refused(*cli(*propagate_args(ws, "--crf-bilateral-srgb", "0")), "--crf-bilateral-srgb")


@case("11 CRF and workers", "a CRF worker killed mid-run")
def _(ws):
    from annotator.inference.crf import CRFPool

    folder(ws)
    (ws / "out.json").write_text("previous")
    submit = CRFPool.submit

    def killing(self, *args):
        for proc in list(self._pool._processes.values()):
            if proc.is_alive():
                os.kill(proc.pid, signal.SIGKILL)
        return submit(self, *args)

    with mock.patch.object(CRFPool, "submit", killing):
        return refused(*cli(*propagate_args(ws, "--batch-size", "2")), "worker process died") or previous_output_kept(
            ws
        )


@case("12 huge images", "an image over the pixel limit")
def _(ws):
    folder(ws)
    write_rgb(ws / "images" / "huge.png", np.zeros((4 * H, 4 * W, 3), np.uint8))
    rc, out = cli(*propagate_args(ws, "--no-crf", "--max-pixels", str(H * W)))
    os.environ.pop("ANNOTATOR_MAX_PIXELS", None)
    return None if rc == 0 and "huge.png" in out and "over the limit" in out else out


@case("13 unreadable folder", "an empty folder")
def _(ws):
    folder(ws)
    (ws / "out.json").write_text("previous")
    (ws / "empty").mkdir()
    return refused(*cli(*propagate_args(ws), "--images", ws / "empty"), "no images") or previous_output_kept(ws)


@case("13 unreadable folder", "an unreadable subfolder")
def _(ws):
    folder(ws)
    (ws / "out.json").write_text("previous")
    (ws / "images" / "locked").mkdir()
    scandir = os.scandir

    def fake(path="."):  # root is not stopped by permissions
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path)

    with mock.patch.object(os, "scandir", fake):
        return refused(*cli(*propagate_args(ws)), "locked: cannot read") or previous_output_kept(ws)


@case("14 wrong-size mask", "a mask file of another size, exported")
def _(ws):
    import cv2

    project(ws)
    with Project.open(ws / "proj", read_only=True) as p:
        path = p.folder / "masks" / p.record(p.image_id("q0.png"), 1).mask
    cv2.imwrite(str(path), np.ones((5, 7), np.uint8))
    return refused(*cli("export", ws / "proj", "--out", ws / "o.json"), "is 7x5")


@case("15 TIFF orientation", "a TIFF turned 90 degrees: one size everywhere")
def _(ws):
    from annotator.io.imageio import image_size, read_image

    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(scene(H, W, None, 0, seed=1)[0]).save(ws / "t.tif", exif=exif)
    return None if read_image(ws / "t.tif").shape[:2] == image_size(ws / "t.tif") == (W, H) else "sizes differ"


@case("16 feature cache", "an entry of the wrong shape")
def _(ws):
    import torch
    from safetensors.torch import save_file

    from annotator.build import ModelSpec, build_model
    from annotator.inference.feature_cache import FeatureCache, content_key
    from annotator.inference.predictor import Predictor

    cache = FeatureCache(ws / "cache")
    predictor = Predictor(build_model(ModelSpec()), "cpu", 65, None, 1, cache=cache)
    key = content_key(b"x", predictor.model_tag)
    cache._path(key).parent.mkdir(parents=True)
    save_file({"features": torch.zeros(3, 2, 2, dtype=torch.float16)}, str(cache._path(key)))
    (f,) = predictor.cached_features([key], torch.zeros(1, 65, 65, 3, dtype=torch.uint8))
    return None if tuple(f.shape) == predictor.feature_layout["features"][0] else "a bad entry was used"


for label, change, words in [
    ("a duplicate image id", lambda d: d["images"].append(dict(d["images"][0])), "second"),
    ("an unknown state", lambda d: d["records"][0].update(state="maybe"), "unknown state"),
    ("a record that is a number", lambda d: d["records"].append(5), "not a record"),
]:

    @case("17 odd project.json", label)
    def _(ws, change=change, words=words):
        project(ws)
        edit_index(ws, change)
        with Project.open(ws / "proj") as p:
            named = any(words in n for n in p.report.notes())
        return (None if named else "not named") or mask_kept(ws)


for label, text in [("index is []", "[]"), ("index missing a key", '{"format": "annotator-project"}')]:

    @case("17 odd project.json", label)
    def _(ws, text=text):
        p = project(ws)
        with Project.open(p.folder) as again:
            again.rename_class(1, "x")
            again.save()
        (p.folder / "project.json").write_text(text)
        return mask_kept(ws)


@case("18 shared spool", "a concurrent run's spool is untouched, a dead one's cleaned")
def _(ws):
    folder(ws)
    (ws / "out.json").write_text("previous")
    theirs, dead = ws / f".out.json.{os.getppid()}.part0.jsonl", ws / ".out.json.999999999.part0.jsonl"
    theirs.write_text("theirs")
    dead.write_text("dead")
    rc, out = cli(*propagate_args(ws, "--no-crf"))
    return None if rc == 0 and theirs.read_text() == "theirs" and not dead.exists() else out


@case("19 tracebacks", "Ctrl+C during propagate")
def _(ws):
    from annotator.inference import propagate as mod

    folder(ws)
    (ws / "out.json").write_text("previous")
    real = mod.propagate

    def interrupted(*a, **k):
        yield next(real(*a, **k))
        raise KeyboardInterrupt

    with mock.patch.object(mod, "propagate", interrupted):
        return refused(*cli(*propagate_args(ws, "--no-crf")), "interrupted", 130) or previous_output_kept(ws)


@case("19 tracebacks", "a full disk under --out")
def _(ws):
    from annotator.formats.coco import CocoSpool

    folder(ws)
    (ws / "out.json").write_text("previous")
    full = OSError(errno.ENOSPC, "No space left on device")
    with mock.patch.object(CocoSpool, "add", side_effect=full):
        return refused(*cli(*propagate_args(ws, "--no-crf")), "--out") or previous_output_kept(ws)


def on_a_full_disk(ws: Path, attack: Callable[[Path], str | None]) -> str | None:
    """`attack(disk)` on a real 512 KiB tmpfs that it fills (tests.disks); a defect where none can be mounted."""
    try:
        with small_disk(ws / "disk") as disk:
            return attack(disk)
    except NoSmallDisk as exc:
        return f"not run: {exc}"


@case("19 tracebacks", "a really full disk (tmpfs) under the project: the edit kept in memory, saved once freed")
def _(ws):
    def attack(disk: Path) -> str | None:
        with Project.create(disk / "proj", folder(ws)) as p:
            p.add_class("thing")
            p.save()
            filler = fill(disk)
            p.rename_class(1, "renamed")
            errors: list[str] = []
            if AutoSaver(p, delay=10, on_error=errors.append).flush() or "kept in memory" not in errors[0]:
                return f"the failed save was not said so: {errors}"
            if leftovers(disk):
                return f"left {leftovers(disk)}"
            filler.unlink()
            p.save()
        with Project.open(disk / "proj", read_only=True) as again:
            return None if again.classes[1].name == "renamed" else "the edit was lost"

    return on_a_full_disk(ws, attack)


@case("19 tracebacks", "a really full disk (tmpfs) under an export's --out, every format")
def _(ws):
    def attack(disk: Path) -> str | None:
        project(ws)
        filler = fill(disk)
        for fmt in EXPORTERS:
            out = disk / ("o.json" if fmt.startswith("coco") else fmt)
            if defect := refused(*cli("export", ws / "proj", "--out", out, "--format", fmt), "No space left"):
                return f"{fmt}: {defect}"
        filler.unlink()
        return f"left {leftovers(disk)}" if leftovers(disk) else None

    return on_a_full_disk(ws, attack)


@case("19 tracebacks", "--input-size 0")
def _(ws):
    folder(ws)
    return refused(*cli(*propagate_args(ws, "--input-size", "0")), "--input-size")


@case("19 tracebacks", "train --resume with a damaged state")
def _(ws):
    imgs = folder(ws)
    (ws / "head.state.safetensors").write_bytes(b"not safetensors")
    return refused(
        *cli(
            "train",
            "--images",
            imgs,
            "--out",
            ws / "head.safetensors",
            "--resume",
            "--steps",
            "1",
            "--device",
            "cpu",
            "--input-size",
            "65",
        ),
        "cannot resume",
    )


@case("19 tracebacks", "a 2-point polygon in train --coco")
def _(ws):
    imgs = folder(ws)
    path = coco_file(ws, one_ann([[1, 1, 5, 5]]))
    return refused(
        *cli("train", "--coco", path, "--coco-images", imgs, "--out", ws / "h.safetensors", "--device", "cpu"),
        "invalid segmentation",
    )


for label, data, words in [
    ("images: 5", {"images": 5}, "'images' is not a list"),
    ("an annotation that is a number", {"images": [], "annotations": [3]}, "not an object"),
    ("a category without a name", {"images": [], "categories": [{"id": 1}]}, "no name"),
    ("a missing height", {"images": [{"id": 1, "file_name": "q0.png"}]}, "no valid height"),
    ("a labelme file", {"shapes": [], "imagePath": "q0.png"}, "labelme"),
    (
        "a panoptic file",
        {"images": [], "annotations": [{"segments_info": [], "image_id": 1, "category_id": 1}]},
        "panoptic",
    ),
]:

    @case("19 not COCO", label)
    def _(ws, data=data, words=words):
        project(ws)
        return refused(*cli("import", ws / "proj", coco_file(ws, data)), words) or mask_kept(ws)


@case("19 tracebacks", "a read-only project")
def _(ws):
    from annotator.project import lock as writer_lock

    project(ws)
    with mock.patch.object(writer_lock, "acquire", side_effect=OSError(errno.EROFS, "Read-only file system")):
        return refused(*cli("import", ws / "proj", coco_file(ws, one_ann([[0, 0, 5, 0, 5, 5]]))), "Read-only")


@case("20 smaller points", '--label " "')
def _(ws):
    folder(ws)
    return refused(*cli(*propagate_args(ws), "--label", " "), "--label")


@case("20 smaller points", "--out DIR refused before the run")
def _(ws):
    folder(ws)
    return refused(*cli(*propagate_args(ws), "--out", ws), "is a folder")


@case("20 smaller points", 'categories " dog" and "dog" are one class')
def _(ws):
    project(ws)
    data = one_ann([[0, 0, 5, 0, 5, 5]])
    data["categories"] = [{"id": 1, "name": " dog"}, {"id": 2, "name": "dog"}]
    rc, out = cli("import", ws / "proj", coco_file(ws, data))
    return None if rc == 0 else out


@case("20 smaller points", "the palette does not repeat after 18 classes")
def _(ws):
    from annotator.project.store import class_color

    return None if len({class_color(i) for i in range(1, 256)}) == 255 else "repeats"


@case("20 smaller points", "leftovers of a kill are cleaned on the next open")
def _(ws):
    project(ws)
    (ws / "proj/masks/9-9-0123456789abcdef.png").write_bytes(b"orphan")
    (ws / "proj/masks/.x.png.123.tmp").write_bytes(b"torn")
    with Project.open(ws / "proj") as p:
        return None if p.report.cleaned == 2 else f"cleaned {p.report.cleaned}"


@case("import as files are", "./x, images/x and absolute paths; box-only annotations")
def _(ws):
    project(ws)
    m = np.zeros((H, W), bool)
    m[:4, :4] = True
    data = {
        "images": [
            {"id": 1, "file_name": "./q1.png", "height": H, "width": W},
            {"id": 2, "file_name": str(ws / "images" / "q2.png"), "height": H, "width": W},
        ],
        "categories": [{"id": 1, "name": "thing"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "segmentation": encode_rle(m)},
            {"id": 2, "image_id": 2, "category_id": 1, "segmentation": encode_rle(m)},
            {"id": 3, "image_id": 2, "category_id": 1, "bbox": [0, 0, 1, 1], "segmentation": []},
        ],
    }
    rc, out = cli("import", ws / "proj", coco_file(ws, data))
    return None if rc == 0 and "2 masks on 2 images" in out and "left out 1" in out else out


@case("export says what is left out", "unreviewed proposals")
def _(ws):
    p = project(ws)
    with Project.open(p.folder) as again:
        again.set_proposal(again.image_id("q1.png"), 1, np.ones((H, W), bool), 0.5, {})
        again.save()
    rc, out = cli("export", ws / "proj", "--out", ws / "o.json")
    return None if rc == 0 and "--include-proposals" in out else out


def run() -> list[tuple[str, str, str | None]]:
    results = []
    for group, name, fn in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            try:
                defect = fn(Path(tmp))
            except Exception as exc:  # an attack that crashes the library is a defect
                defect = f"{type(exc).__name__}: {exc}"
        results.append((group, name, defect))
    return results


def main_() -> None:
    results = run()
    groups: dict[str, list] = {}
    for group, name, defect in results:
        groups.setdefault(group, []).append((name, defect))
    print("| defect group | cases tried | clear message or success, nothing lost | defects left |")
    print("|---|---|---|---|")
    for group, rows in groups.items():
        bad = [n for n, d in rows if d]
        print(f"| {group} | {len(rows)} | {len(rows) - len(bad)} | {len(bad)} |")
    bad = [(g, n, d) for g, n, d in results if d]
    print(f"| **all** | **{len(results)}** | **{len(results) - len(bad)}** | **{len(bad)}** |")
    for g, n, d in bad:
        print(f"\nDEFECT {g} / {n}: {textwrap.shorten(d, 300)}")


if __name__ == "__main__":
    main_()
