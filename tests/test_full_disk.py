"""A disk that is really full (issue 12): a small tmpfs, filled to the last byte, under the project and --out.

The other full-disk tests raise ENOSPC from a fake writer; these let the kernel refuse the writes, wherever they
happen (temp files, fsync, rename, the spool), so nothing can slip past a fake. They need to mount a tmpfs (root,
as CI and the sessions run) and are skipped with the reason where that is not allowed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from annotator.cli import main
from annotator.formats.exporters import EXPORTERS
from annotator.project.store import AutoSaver, Project, ProjectSaveError
from tests.disks import NoSmallDisk, fill, leftovers, small_disk
from tests.synthetic import scene, write_mask, write_rgb

H, W = 48, 64


@pytest.fixture
def disk(tmp_path) -> Iterator[Path]:
    """A 512 KiB tmpfs mounted for the test (skipped where mounting is not allowed)."""
    try:
        with small_disk(tmp_path / "disk") as where:
            yield where
    except NoSmallDisk as exc:
        pytest.skip(str(exc))


def images(root: Path) -> Path:
    """Three small images with a ball (outside the small disk: only the project and --out live there)."""
    imgs = root / "images"
    imgs.mkdir()
    for k in range(3):
        img, m = scene(H, W, (24, 20 + 8 * k), 10, seed=k)
        write_rgb(imgs / f"q{k}.png", img)
        if k == 0:
            write_mask(root / "mask.png", m)
    return imgs


def cli(capsys, *argv) -> tuple[int, str]:
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out + out.err


def test_a_full_disk_under_the_project_keeps_every_saved_edit(disk, tmp_path):
    proj = Project.create(disk / "proj", images(tmp_path))
    proj.add_class("ball")
    a, b = proj.image_id("q0.png"), proj.image_id("q1.png")
    first = np.zeros((H, W), bool)
    first[5:20, 5:30] = True
    proj.set_mask(a, 1, first)
    proj.save()
    index = (proj.folder / "project.json").read_bytes()
    filler = fill(disk)

    proj.rename_class(1, "renamed")  # only in memory until a save succeeds
    messages: list[str] = []
    saver = AutoSaver(proj, delay=10, on_error=messages.append)
    assert not saver.flush()
    assert "No space left on device" in messages[0] and "kept in memory" in messages[0] and proj.dirty
    with pytest.raises(ProjectSaveError, match="edit was not kept"):
        proj.set_mask(b, 1, ~first)  # a mask file that cannot be written is refused, not half-kept
    assert (proj.folder / "project.json").read_bytes() == index  # the saved index is intact
    assert not leftovers(proj.folder)

    filler.unlink()
    assert saver.flush() and not proj.dirty
    proj.close()
    again = Project.open(disk / "proj")
    assert again.classes[1].name == "renamed"
    assert np.array_equal(again.mask(a, 1), first) and again.mask(b, 1) is None
    again.close()


@pytest.mark.parametrize("fmt", list(EXPORTERS))
def test_an_export_onto_a_full_disk_fails_in_one_line_and_keeps_the_previous_one(disk, tmp_path, capsys, fmt):
    proj = Project.create(tmp_path / "proj", images(tmp_path))
    proj.add_class("ball")
    m = np.zeros((H, W), bool)
    m[5:20, 5:30] = True
    for k in range(3):
        proj.set_mask(proj.image_id(f"q{k}.png"), 1, m)
    proj.save()
    proj.close()
    out = disk / ("out.json" if fmt.startswith("coco") else fmt)
    rc, text = cli(capsys, "export", proj.folder, "--out", out, "--format", fmt)
    assert rc == 0, text
    before = {p: p.read_bytes() for p in [out, *out.rglob("*")] if p.is_file()}
    filler = fill(disk)
    rc, text = cli(capsys, "export", proj.folder, "--out", out, "--format", fmt)
    assert rc == 2 and "No space left on device" in text and "Traceback" not in text
    assert len(text.strip().splitlines()) == 1, text
    assert {p: p.read_bytes() for p in before} == before  # the previous export is intact
    assert not leftovers(disk)
    filler.unlink()


def test_propagate_onto_a_full_disk_names_out_and_keeps_the_previous_output(disk, tmp_path, capsys):
    imgs = images(tmp_path)
    out = disk / "out.json"
    out.write_text('{"previous": true}')
    filler = fill(disk)
    rc, text = cli(
        capsys,
        *("propagate", "--images", imgs, "--support", f"{imgs / 'q0.png'}:{tmp_path / 'mask.png'}"),
        *("--label", "ball", "--out", out, "--device", "cpu", "--input-size", "65", "--no-crf"),
    )
    assert rc == 2 and f"--out {out}: cannot write (No space left on device)" in text, text
    assert "Traceback" not in text
    assert out.read_text() == '{"previous": true}' and not leftovers(disk)
    filler.unlink()
