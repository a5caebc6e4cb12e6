"""The attacks of the reliability issue on the project and the CLI, one test each: nothing the user made is lost,
nothing outside the project (or --out) is read, written or deleted, and bad input is a one-line message."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from annotator.cli import main
from annotator.project.store import Project, ProjectError, ProjectLockedError
from tests.processes import held_open
from tests.synthetic import scene, write_rgb

H, W = 20, 30


@pytest.fixture
def proj(tmp_path):
    (tmp_path / "images").mkdir()
    for n in ("a.jpg", "b.png"):
        write_rgb(tmp_path / "images" / n, scene(H, W, None, 0, seed=len(n))[0])
    p = Project.create(tmp_path / "proj", tmp_path / "images")
    p.add_class("thing")
    m = np.zeros((H, W), bool)
    m[2:9, 3:12] = True
    p.set_mask(p.image_id("a.jpg"), 1, m)
    p.save()
    p.close()
    return p


def _edit_index(proj: Project, change) -> None:
    path = proj.folder / "project.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _cli(capsys, *argv: str) -> tuple[int, str]:
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out + out.err


# ---- 1: a project left with only its backup ---------------------------------------------------------
def test_init_over_a_project_left_with_only_its_backup_restores_it(proj, capsys):
    os.replace(proj.folder / "project.json", proj.folder / "project.json.bak")  # a kill between two renames
    rc, out = _cli(capsys, "init", proj.folder, "--images", proj.image_root)
    assert rc == 0 and "restored" in out and "last good copy" in out
    with Project.open(proj.folder) as again:
        assert again.mask(again.image_id("a.jpg"), 1).sum() == 63  # the mask survived


# ---- 2: two writers ---------------------------------------------------------------------------------
def test_a_second_writer_is_refused_and_may_read(proj, tmp_path, capsys):
    with held_open(proj.folder) as child:
        coco = tmp_path / "c.json"
        coco.write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
        rc, out = _cli(capsys, "import", proj.folder, coco)
        assert rc == 2 and f"the project is open in process {child.pid}" in out and len(out.splitlines()) == 1
        with pytest.raises(ProjectLockedError):
            Project.open(proj.folder)
        with Project.open(proj.folder, read_only=True) as reader:  # the app's "open it read-only"
            assert reader.mask(reader.image_id("a.jpg"), 1).any()
            a = reader.image_id("a.jpg")
            for edit in (
                lambda: reader.add_class("new"),
                lambda: reader.rename_class(1, "x"),
                lambda: reader.delete_class(1),
                lambda: reader.remove_support(a, 1),
                lambda: reader.set_state(a, 1, "rejected"),
                reader.save,
            ):
                with pytest.raises(ProjectError, match="read-only"):  # an edit it could never save: refused
                    edit()
            assert [c.name for c in reader.classes.values()] == ["thing"]
        rc, out = _cli(capsys, "export", proj.folder, "--out", tmp_path / "o.json")  # export only reads
        assert rc == 0
    with Project.open(proj.folder) as again:  # the dead holder's lock is broken, and said so
        assert "stale lock" in again.report.lock_note


def test_a_lock_whose_pid_was_reused_is_broken_and_one_from_another_host_is_not(proj, capsys):
    import socket

    from annotator.project.lock import started

    lock = proj.folder / "project.lock"
    live = os.getppid()  # a live process other than this one (pytest's parent)
    here = socket.gethostname()
    # the holder died and its pid now names a process started at another time: stale
    lock.write_text(json.dumps({"pid": live, "host": here, "started": "1"}))
    with Project.open(proj.folder) as again:
        assert "stale lock" in again.report.lock_note
    # that very process (same start time) holds it: refused, by pid
    lock.write_text(json.dumps({"pid": live, "host": here, "started": started(live)}))
    rc, out = _cli(capsys, "export", proj.folder, "--out", proj.folder.parent / "o.json")
    assert rc == 0  # reading needs no lock
    with pytest.raises(ProjectLockedError, match=f"process {live}"):
        Project.open(proj.folder)
    # a process on another host cannot be checked: refused, naming the host
    lock.write_text(json.dumps({"pid": 1, "host": "elsewhere.example", "started": "5"}))
    with pytest.raises(ProjectLockedError, match="process 1 on elsewhere.example"):
        Project.open(proj.folder)
    lock.unlink()


# ---- 7 and 8: nothing outside the project ------------------------------------------------------------
def test_mask_names_and_image_paths_that_leave_the_project_are_ignored(proj, tmp_path, capsys):
    outside = tmp_path / "precious.png"
    outside.write_bytes(b"user data")
    (tmp_path / "images" / "sub").mkdir()

    def attack(data):
        data["records"][0]["mask"] = "../../precious.png"
        data["images"].append({"id": 99, "file": "../../evil.png", "height": H, "width": W})

    _edit_index(proj, attack)
    (proj.folder / "masks" / "link.png").symlink_to(outside)
    rc, out = _cli(capsys, "export", proj.folder, "--out", tmp_path / "png", "--format", "png")
    assert rc == 0 and "warning: ignored in project.json" in out
    assert not (tmp_path.parent / "evil.png").exists() and not (tmp_path / "evil.png").exists()
    with Project.open(proj.folder) as again:
        problems = " | ".join(again.report.problems)
        assert "not a plain file name under masks/" in problems and "leads outside the image folder" in problems
        a = again.image_id("a.jpg")
        assert again.mask(a, 1) is None and 99 not in again.images
        again.set_mask(a, 1, np.ones((H, W), bool))  # a repaint deletes nothing outside
        again.save()
    assert outside.read_bytes() == b"user data" and (proj.folder / "masks" / "link.png").is_symlink()


def test_a_linked_mask_file_is_not_followed(proj, tmp_path):
    outside = tmp_path / "secret.png"
    with Project.open(proj.folder) as again:
        a = again.image_id("a.jpg")
        real = again.folder / "masks" / again.record(a, 1).mask
        os.replace(real, outside)
        real.symlink_to(outside)
        with pytest.raises(ProjectError, match="is a link"):
            again.labels(a, 1)


# ---- 14: a wrong-size mask file -------------------------------------------------------------------
def test_a_wrong_size_mask_file_is_named_not_exported(proj, tmp_path, capsys):
    import cv2

    with Project.open(proj.folder) as again:
        path = again.folder / "masks" / again.record(again.image_id("a.jpg"), 1).mask
    cv2.imwrite(str(path), np.ones((5, 7), np.uint8))
    for fmt in ("png", "coco-rle"):
        rc, out = _cli(capsys, "export", proj.folder, "--out", tmp_path / f"o-{fmt}", "--format", fmt)
        assert rc == 2 and "is 7x5, its image a.jpg is 30x20" in out and len(out.splitlines()) == 1


# ---- 17: oddities in project.json ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "attack, named",
    [
        (lambda d: d["images"].append(dict(d["images"][0])), "a second entry with this id"),
        (lambda d: d["records"][0].update(state="maybe"), "unknown state 'maybe'"),
        (lambda d: d["records"].append(dict(d["records"][0])), "a second record for this image and class"),
        (lambda d: d["records"].append(7), "not a record"),
        (lambda d: d["classes"].append({"id": 5}), "not a class entry"),
    ],
)
def test_odd_entries_of_the_index_are_named_and_the_rest_kept(proj, attack, named):
    _edit_index(proj, attack)
    with Project.open(proj.folder) as again:
        assert any(named in p for p in again.report.problems), again.report.problems
        assert any(named in n for n in again.report.notes())
        assert len(again.images) == 2 and again.mask(again.image_id("a.jpg"), 1) is not None


@pytest.mark.parametrize(
    "text",
    [
        "[]",
        '{"format": "annotator-project"}',
        '{"format": "annotator-project", "image_root": "x", "classes": 3, "images": [], "records": []}',
    ],
)
def test_an_unusable_index_falls_back_to_the_backup(proj, text):
    with Project.open(proj.folder) as again:
        again.rename_class(1, "renamed")
        again.save()  # the mask's save is now the backup
    (proj.folder / "project.json").write_text(text)
    with Project.open(proj.folder) as again:
        assert "damaged" in again.report.recovered and again.classes[1].name == "thing"
        assert again.mask(again.image_id("a.jpg"), 1).sum() == 63


# ---- 6: PNG export of images sharing a stem ------------------------------------------------------------
def test_png_export_keeps_images_that_share_a_stem_and_mirrors_subfolders(tmp_path, capsys):
    (tmp_path / "images" / "sub").mkdir(parents=True)
    for name in ("a.jpg", "a.png", "sub/a.jpg"):
        write_rgb(tmp_path / "images" / name, scene(H, W, None, 0, seed=1)[0])
    with Project.create(tmp_path / "proj", tmp_path / "images") as p:
        p.add_class("thing")
        for k, name in enumerate(("a.jpg", "a.png", "sub/a.jpg")):
            m = np.zeros((H, W), bool)
            m[: k + 1] = True
            p.set_mask(p.image_id(name), 1, m)
        p.set_proposal(p.image_id("a.jpg"), 1, np.ones((H, W), bool), 0.5, {}, force=True)
        p.save()
    rc, out = _cli(capsys, "export", tmp_path / "proj", "--out", tmp_path / "png", "--format", "png")
    assert rc == 0 and "left out 1 proposals not yet reviewed (--include-proposals" in out
    from PIL import Image

    rows = {
        n: int((np.asarray(Image.open(tmp_path / "png" / f"{n}.png")) > 0).any(1).sum()) for n in ("a.png", "sub/a.jpg")
    }
    assert rows == {"a.png": 2, "sub/a.jpg": 3} and not (tmp_path / "png" / "a.jpg.png").exists()


# ---- propagate on a folder the tests make --------------------------------------------------------------
@pytest.fixture
def folder(tmp_path):
    """Four small images with a ball, one support; and a previous output the runs must not lose."""
    from tests.synthetic import write_mask

    imgs = tmp_path / "images"
    imgs.mkdir()
    for k in range(4):
        img, m = scene(48, 64, (24, 20 + 8 * k), 10, seed=k)
        write_rgb(imgs / f"q{k}.png", img)
        if k == 0:
            write_mask(tmp_path / "mask.png", m)
    out = tmp_path / "out.json"
    out.write_text('{"previous": true}')
    return tmp_path


def _propagate(folder: Path, *extra: str) -> list[str]:
    return [
        "propagate",
        "--images",
        str(folder / "images"),
        "--support",
        f"{folder / 'images' / 'q0.png'}:{folder / 'mask.png'}",
        "--label",
        "ball",
        "--out",
        str(folder / "out.json"),
        "--device",
        "cpu",
        "--input-size",
        "65",
        *extra,
    ]


def _previous_kept(folder: Path) -> bool:
    return (folder / "out.json").read_text() == '{"previous": true}' and not list(folder.glob(".out.json.*"))


def test_a_dying_crf_worker_ends_the_run_with_a_message(folder, capsys, monkeypatch):
    """Defect 11: a worker that died left the run hanging forever, and orphaned workers behind."""
    from annotator.inference.crf import CRFPool

    submit, seen = CRFPool.submit, []

    def kill_then_submit(self, *args):
        for proc in list(self._pool._processes.values()):  # a worker killed (OOM killer, segfault) mid-run
            if proc.is_alive():
                seen.append(proc)
                # SIGKILL; unlike os.kill, quiet when the pool's thread reaped it since is_alive() (a CI race)
                proc.kill()
        return submit(self, *args)

    monkeypatch.setattr(CRFPool, "submit", kill_then_submit)
    rc, out = _cli(capsys, *_propagate(folder, "--batch-size", "2"))
    assert rc == 2 and "a CRF worker process died" in out and out.count("annotator: error") == 1
    assert _previous_kept(folder)
    for p in seen:  # a SIGKILL is delivered asynchronously: a killed worker may take a moment to be reaped
        p.join(timeout=5)
    assert seen and not any(p.is_alive() for p in seen)


def test_an_image_over_the_pixel_limit_is_skipped_by_name(folder, capsys, monkeypatch):
    """Defect 12: a 20000x20000 JPEG cost 15 GB; the size is checked from the header before decoding."""
    from annotator.config import MAX_PIXELS, PIXEL_LIMIT_ENV

    monkeypatch.setenv(PIXEL_LIMIT_ENV, str(MAX_PIXELS))  # put back after the test
    write_rgb(folder / "images" / "huge.png", np.zeros((200, 300, 3), np.uint8))
    rc, out = _cli(capsys, *_propagate(folder, "--no-crf", "--max-pixels", "10000"))
    assert rc == 0 and "huge.png: 300x200 is 60,000 pixels, over the limit of 10,000 (--max-pixels" in out
    assert len(json.loads((folder / "out.json").read_text())["images"]) == 4


def test_an_unreadable_subfolder_is_named_and_an_empty_folder_refused(folder, capsys, monkeypatch):
    """Defect 13: an unreadable folder looked empty: '0 masks on 0 images', exit 0, the output replaced."""
    (folder / "images" / "locked").mkdir()
    scandir = os.scandir

    def fake(path="."):  # the tests run as root, whom permissions do not stop
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", fake)
    rc, out = _cli(capsys, *_propagate(folder))
    assert rc == 2 and "locked: cannot read this folder (Permission denied)" in out and _previous_kept(folder)
    monkeypatch.undo()
    empty = folder / "empty"
    empty.mkdir()
    rc, out = _cli(capsys, *_propagate(folder), "--images", str(empty))
    assert rc == 2 and "no images in it" in out and _previous_kept(folder)


def test_rotated_tiff_and_jpeg_have_one_size_everywhere(tmp_path):
    """Defect 15: propagate and the project disagreed on a rotated TIFF's size."""
    from PIL import Image

    from annotator.io.imageio import image_size, read_image

    stored = scene(30, 50, (15, 20), 8, seed=3)[0]
    spec = {
        1: lambda a: a,
        2: np.fliplr,
        3: lambda a: np.rot90(a, 2),
        4: np.flipud,  # the EXIF/TIFF standard
        5: lambda a: a.transpose(1, 0, 2),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: np.rot90(a, 2).transpose(1, 0, 2),
        8: lambda a: np.rot90(a, 1),
    }
    for ext in ("tif", "png", "jpg"):
        for orientation in range(1, 9):
            path = tmp_path / f"o{orientation}.{ext}"
            exif = Image.Exif()
            exif[0x0112] = orientation
            Image.fromarray(stored).save(path, exif=exif, **({"quality": 100} if ext == "jpg" else {}))
            upright = spec[orientation](stored).astype(int)
            img = read_image(path)
            assert img.shape[:2] == image_size(path) == upright.shape[:2], (ext, orientation)
            assert np.abs(img - upright).mean() <= (8 if ext == "jpg" else 0), (ext, orientation)  # JPEG is lossy


def test_interrupt_full_disk_and_concurrent_runs_keep_the_previous_output(folder, capsys, monkeypatch):
    """Defects 18 and 19: two runs on one --out shared a spool; Ctrl+C and a full disk gave tracebacks."""
    import errno

    from annotator.formats.coco import CocoSpool
    from annotator.inference import propagate as propagate_mod

    other = folder / f".out.json.{os.getppid()}.part0.jsonl"  # a live run's spool: not this run's to touch
    other.write_text("theirs")
    dead = folder / ".out.json.999999999.part0.jsonl"  # a killed run's spool: cleaned
    dead.write_text("stale")
    real = propagate_mod.propagate

    def interrupted(*args, **kwargs):
        yield next(real(*args, **kwargs))
        raise KeyboardInterrupt

    monkeypatch.setattr(propagate_mod, "propagate", interrupted)
    rc, out = _cli(capsys, *_propagate(folder, "--no-crf"))
    assert rc == 130 and "interrupted" in out and "Traceback" not in out
    assert other.read_text() == "theirs" and not dead.exists()
    other.unlink()
    assert _previous_kept(folder)
    monkeypatch.undo()

    def full(self, *args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(CocoSpool, "add", full)
    rc, out = _cli(capsys, *_propagate(folder, "--no-crf"))
    assert rc == 2 and f"--out {folder / 'out.json'}: cannot write (No space left on device)" in out
    assert _previous_kept(folder)


@pytest.mark.parametrize(
    "change, words",
    [
        (["--label", " "], "--label must name the class"),
        (["--out", "."], "is a folder"),
        (["--out", "/nonexistent/x.json"], "folder /nonexistent does not exist"),
        (["--max-pixels", "0"], "--max-pixels 0: must be at least 1"),
    ],
)
def test_bad_options_are_refused_before_any_work(folder, capsys, change, words):
    """Defect 20: `--label ""` was accepted, and `--out DIR` refused only after the whole run."""
    rc, out = _cli(capsys, *_propagate(folder), *change)
    assert rc == 2 and words in out and len(out.splitlines()) == 1


# ---- 9 and 16: weights and cached features are data, checked ----------------------------------------
def test_a_pickle_in_weights_is_refused_without_suggesting_to_unpickle_it(tmp_path):
    import pickle

    from annotator.io.weights import WeightsError, load_backbone_state

    class Payload:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    (tmp_path / "evil.pth").write_bytes(pickle.dumps({"features.0.weight": Payload()}))
    with pytest.raises(WeightsError) as err:
        load_backbone_state("evil", tmp_path)
    assert "weights_only" not in str(err.value) and "not loaded" in str(err.value)
    assert not (tmp_path / "pwned").exists()


def test_a_cache_entry_of_the_wrong_shape_is_a_miss_not_a_lost_proposal(tmp_path):
    import torch
    from safetensors.torch import save_file

    from annotator.build import ModelSpec, build_model
    from annotator.inference.feature_cache import FeatureCache, content_key
    from annotator.inference.predictor import Predictor

    cache = FeatureCache(tmp_path / "cache")
    predictor = Predictor(build_model(ModelSpec()), "cpu", 65, None, 1, cache=cache)
    pixels = torch.zeros(1, 65, 65, 3, dtype=torch.uint8)
    key = content_key(b"an image", predictor.model_tag)
    for bad in (torch.zeros(3, 4, 4, dtype=torch.float16), torch.full((1024, 9, 9), float("nan")).half()):
        path = cache._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({"features": bad}, str(path))
        fresh = FeatureCache(tmp_path / "cache")  # a new session: nothing in memory
        predictor.cache = fresh
        (feats,) = predictor.cached_features([key], pixels)
        assert tuple(feats.shape) == predictor.feature_layout["features"][0] and fresh.rejected == 1
        assert torch.isfinite(feats.float()).all()
        path.unlink(missing_ok=True)


def test_class_colours_do_not_repeat_across_a_png_palette():
    """Defect 20: the PNG palette repeated after 18 classes."""
    from annotator.project.store import class_color

    assert len({class_color(i) for i in range(1, 256)}) == 255


def test_a_read_only_project_is_said_to_be_so_and_the_command_fails(proj, tmp_path, capsys, monkeypatch):
    """Defect 19: a read-only project said 'kept in memory' and then the process exited, losing it."""
    import errno

    from annotator.project import lock as writer_lock

    def read_only(*_):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(writer_lock, "acquire", read_only)
    coco = tmp_path / "c.json"
    coco.write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
    rc, out = _cli(capsys, "import", proj.folder, coco)
    assert rc == 2 and "cannot open" in out and "Read-only file system" in out and "memory" not in out
    monkeypatch.undo()
    monkeypatch.setattr("annotator.project.store.atomic_write_bytes", read_only)  # the lock is taken; the save fails
    rc, out = _cli(capsys, "init", proj.folder / "new", "--images", proj.image_root, "--class", "x")
    assert rc == 2 and "cannot save the project" in out and "memory" not in out and len(out.splitlines()) == 1


def test_export_skips_an_image_over_the_pixel_limit_by_name(proj, tmp_path, capsys, monkeypatch):
    """Defect 12: a huge image crashed export; now it is left out, named, and the rest exported."""
    from annotator.config import PIXEL_LIMIT_ENV

    monkeypatch.setenv(PIXEL_LIMIT_ENV, "600")  # b.png (30x20) is at the limit; a new, larger image is over it
    write_rgb(proj.image_root / "big.png", np.zeros((H + 1, W, 3), np.uint8))
    with Project.open(proj.folder) as p:
        p.set_proposal(p.image_id("b.png"), 1, np.ones((H, W), bool), 0.9, {})
        p.set_state(p.image_id("b.png"), 1, "accepted")
        p.save()
    rc, out = _cli(capsys, "export", proj.folder, "--out", tmp_path / "o.json", "--max-pixels", "600")
    assert rc == 0 and "skipped 1 images that cannot be read, e.g." in out and "big.png: 30x21" in out
    assert len(json.loads((tmp_path / "o.json").read_text())["annotations"]) == 2
