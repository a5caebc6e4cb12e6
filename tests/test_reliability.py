"""The attacks of the reliability issue on the project and the CLI, one test each: nothing the user made is lost,
nothing outside the project (or --out) is read, written or deleted, and bad input is a one-line message."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from annotator.cli import main
from annotator.project import Project, ProjectError, ProjectLockedError
from tests.synthetic import scene, write_rgb

H, W = 20, 30
REPO = Path(__file__).resolve().parents[1]


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
HOLDER = textwrap.dedent("""
    import sys, time
    from annotator.project import Project
    p = Project.open(sys.argv[1])
    print("open", flush=True)
    time.sleep(60)
""")


def test_a_second_writer_is_refused_and_may_read(proj, tmp_path, capsys):
    child = subprocess.Popen([sys.executable, "-c", HOLDER, str(proj.folder)], stdout=subprocess.PIPE, text=True,
                             cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert child.stdout.readline().strip() == "open"
        coco = tmp_path / "c.json"
        coco.write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
        rc, out = _cli(capsys, "import", proj.folder, coco)
        assert rc == 2 and f"the project is open in process {child.pid}" in out and len(out.splitlines()) == 1
        with pytest.raises(ProjectLockedError):
            Project.open(proj.folder)
        with Project.open(proj.folder, read_only=True) as reader:  # the app's "open it read-only"
            assert reader.mask(reader.image_id("a.jpg"), 1).any()
            with pytest.raises(ProjectError, match="read-only"):
                reader.save()
        rc, out = _cli(capsys, "export", proj.folder, "--out", tmp_path / "o.json")  # export only reads
        assert rc == 0
    finally:
        child.kill()
        child.wait()
    with Project.open(proj.folder) as again:  # the dead holder's lock is broken, and said so
        assert "stale lock" in again.report.lock_note


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
@pytest.mark.parametrize("attack, named", [
    (lambda d: d["images"].append(dict(d["images"][0])), "a second entry with this id"),
    (lambda d: d["records"][0].update(state="maybe"), "unknown state 'maybe'"),
    (lambda d: d["records"].append(dict(d["records"][0])), "a second record for this image and class"),
    (lambda d: d["records"].append(7), "not a record"),
    (lambda d: d["classes"].append({"id": 5}), "not a class entry"),
])
def test_odd_entries_of_the_index_are_named_and_the_rest_kept(proj, attack, named):
    _edit_index(proj, attack)
    with Project.open(proj.folder) as again:
        assert any(named in p for p in again.report.problems), again.report.problems
        assert any(named in n for n in again.report.notes())
        assert len(again.images) == 2 and again.mask(again.image_id("a.jpg"), 1) is not None


@pytest.mark.parametrize("text", ["[]", '{"format": "annotator-project"}', '{"format": "annotator-project", '
                                  '"image_root": "x", "classes": 3, "images": [], "records": []}'])
def test_an_unusable_index_falls_back_to_the_backup(proj, text):
    with Project.open(proj.folder) as again:
        again.rename_class(1, "renamed")
        again.save()  # the mask's save is now the backup
    (proj.folder / "project.json").write_text(text)
    with Project.open(proj.folder) as again:
        assert "damaged" in again.report.recovered and again.classes[1].name == "thing"
        assert again.mask(again.image_id("a.jpg"), 1).sum() == 63
