"""The project on disk: atomic saves, protected user masks, moved images, damage and full disks."""

from __future__ import annotations

import errno
import json
from dataclasses import asdict

import numpy as np
import pytest

from annotator.project import store as project_mod
from annotator.project.store import AutoSaver, Project, ProjectError, ProjectSaveError
from tests.synthetic import scene, write_rgb


@pytest.fixture
def proj(tmp_path):
    imgs = tmp_path / "images"
    imgs.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        write_rgb(imgs / name, scene(30, 40, (20, 15), 6, seed=len(name))[0])
    p = Project.create(tmp_path / "proj", imgs)
    p.add_class("ball")
    return p


def _disk(m):
    return m.astype(bool)


def test_create_save_and_reopen_keeps_everything(proj):
    m = np.zeros((30, 40), bool)
    m[5:10, 5:20] = True
    a = proj.image_id("a.png")
    proj.set_mask(a, 1, m)
    proj.add_support(a, 1)
    b = proj.image_id("b.png")
    assert proj.set_proposal(b, 1, ~m, 0.42, {"model": "panet"})
    proj.save()
    again = Project.open(proj.folder)
    assert [c.name for c in again.classes.values()] == ["ball"]
    assert np.array_equal(again.mask(a, 1), m) and again.record(a, 1).state == "accepted"
    assert again.record(b, 1).state == "proposed" and again.record(b, 1).score == 0.42
    assert again.record(b, 1).settings == {"model": "panet"}
    assert again.supports == {1: [a]}
    assert not list(proj.image_root.glob("*.json"))  # the image folder is never written to


def test_propagation_never_overwrites_accepted_or_edited_masks(proj):
    a, b = proj.image_id("a.png"), proj.image_id("b.png")
    mine = np.zeros((30, 40), bool)
    mine[:5] = True
    proj.set_mask(a, 1, mine)
    assert not proj.set_proposal(a, 1, ~mine, 0.9, {})
    proj.set_mask(b, 1, mine, state="proposed")  # edited but not yet accepted
    assert not proj.set_proposal(b, 1, ~mine, 0.9, {})
    assert np.array_equal(proj.mask(a, 1), mine) and np.array_equal(proj.mask(b, 1), mine)
    c = proj.image_id("c.png")
    assert proj.set_proposal(c, 1, mine, 0.3, {}) and proj.set_proposal(c, 1, ~mine, 0.5, {})
    assert np.array_equal(proj.mask(c, 1), ~mine)


def test_masks_are_loaded_on_demand_not_held(proj):
    a = proj.image_id("a.png")
    proj.set_mask(a, 1, np.ones((30, 40), bool))
    proj.save()
    assert all(not isinstance(v, np.ndarray) for r in proj.records.values() for v in asdict(r).values())
    files = list((proj.folder / "masks").glob("*.png"))
    assert len(files) == 1


def test_mask_files_go_only_when_no_kept_copy_of_the_index_refers_to_them(proj):
    """Defect 5: collecting unused masks deleted files the backup still pointed at."""
    a = proj.image_id("a.png")
    first, second = np.ones((30, 40), bool), np.eye(30, 40, dtype=bool)
    proj.set_mask(a, 1, first)
    proj.save()
    proj.set_mask(a, 1, second)
    proj.save()
    proj.close()
    with Project.open(proj.folder) as again:
        assert again.report.cleaned == 0 and len(list((proj.folder / "masks").glob("*.png"))) == 2
    (proj.folder / "project.json").unlink()  # a kill mid-save left only the backup, which has the first mask
    with Project.open(proj.folder) as again:
        assert "last good copy" in again.report.recovered and np.array_equal(again.mask(a, 1), first)
        again.set_mask(a, 1, second)
        for k in range(5):  # enough saves that no kept copy refers to the first mask any more
            again.rename_class(1, f"ball{k}")
            again.save()
    with Project.open(proj.folder) as again:
        assert again.report.cleaned == 1 and np.array_equal(again.mask(a, 1), second)
        assert len(list((proj.folder / "masks").glob("*.png"))) == 1


def test_wrong_size_mask_is_refused(proj):
    with pytest.raises(ProjectError, match="does not fit"):
        proj.set_mask(proj.image_id("a.png"), 1, np.ones((10, 10), bool))


def test_moved_and_deleted_images_are_reported_and_the_rest_kept(proj):
    a = proj.image_id("a.png")
    proj.set_mask(a, 1, np.ones((30, 40), bool))
    proj.save()
    (proj.image_root / "b.png").rename(proj.image_root / "renamed.png")
    (proj.image_root / "c.png").unlink()
    again = Project.open(proj.folder)
    assert again.report.missing == ["b.png", "c.png"]
    assert again.report.added == ["renamed.png"]
    assert again.mask(a, 1).all()
    assert "b.png" in {e.file for e in again.images.values()}  # kept, in case the files come back


def test_project_and_images_moved_together_still_open(proj, tmp_path):
    proj.save()
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    (proj.image_root).rename(moved / "images")
    proj.folder.rename(moved / "proj")
    again = Project.open(moved / "proj")
    assert again.report.missing == [] and again.image_root == (moved / "images").resolve()


def test_damaged_index_opens_the_last_good_copy_and_keeps_the_damaged_one(proj):
    a = proj.image_id("a.png")
    proj.set_mask(a, 1, np.ones((30, 40), bool))
    proj.save()
    proj.add_class("second")
    proj.save()  # the previous save is now the backup
    (proj.folder / "project.json").write_text('{"format": "annotator-project", "classes": [')  # torn
    again = Project.open(proj.folder)
    assert "damaged" in again.report.recovered and "last good copy" in again.report.recovered
    assert again.mask(a, 1).all()
    assert list(proj.folder.glob("project.json.damaged-*"))


def test_older_generations_are_kept_and_opened_when_newer_ones_are_damaged(proj):
    """Defect 1: a recovery must never roll back to nothing; several generations of the index are kept."""
    a = proj.image_id("a.png")
    proj.set_mask(a, 1, np.ones((30, 40), bool))
    for k in range(4):
        proj.rename_class(1, f"gen{k}")
        proj.save()
    proj.close()
    copies = [proj.folder / "project.json", proj.folder / "project.json.bak", proj.folder / "backups/project.json.2"]
    for f in copies:
        f.unlink()
        f.write_text("garbage")  # a new file: the damage does not reach the other copies
    with Project.open(proj.folder) as again:
        assert "backups/project.json.3" in again.report.recovered and again.classes[1].name == "gen0"
        assert again.mask(a, 1).all()
    for f in [*copies[1:], proj.folder / "backups/project.json.3", *proj.folder.glob("backups/*-*.json")]:
        f.unlink()
        f.write_text("garbage")
    (proj.folder / "project.json").write_text("garbage")
    with pytest.raises(ProjectError, match="damaged.*no earlier copy of it can be read"):
        Project.open(proj.folder)


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EROFS])
def test_full_or_read_only_disk_is_reported_and_work_kept(proj, monkeypatch, err):
    proj.save()
    before = (proj.folder / "project.json").read_bytes()

    def fail(path, data):
        raise OSError(err, "No space left on device" if err == errno.ENOSPC else "Read-only file system")

    monkeypatch.setattr(project_mod, "atomic_write_bytes", fail)
    proj.rename_class(1, "renamed")
    messages = []
    saver = AutoSaver(proj, delay=10, on_error=messages.append)
    assert not saver.flush()
    assert "kept in memory" in messages[0] and proj.dirty
    assert (proj.folder / "project.json").read_bytes() == before  # the old file is intact
    with pytest.raises(ProjectSaveError, match="edit was not kept"):
        proj.set_mask(proj.image_id("a.png"), 1, np.ones((30, 40), bool))
    monkeypatch.undo()
    assert saver.flush() and not proj.dirty
    assert Project.open(proj.folder).classes[1].name == "renamed"


def test_autosave_within_a_second(proj):
    saver = AutoSaver(proj, delay=0.2)
    proj.add_class("late")
    import time

    deadline = time.time() + 1.0
    while proj.dirty and time.time() < deadline:
        time.sleep(0.02)
    assert not proj.dirty
    assert "late" in (proj.folder / "project.json").read_text()
    saver.flush()


def test_classes_rename_recolor_delete(proj):
    proj.add_class("cat")
    with pytest.raises(ProjectError, match="already"):
        proj.add_class("cat")
    proj.set_mask(proj.image_id("a.png"), 2, np.ones((30, 40), bool))
    proj.recolor_class(2, "#123456")
    proj.delete_class(2)
    proj.save()
    data = json.loads((proj.folder / "project.json").read_text())
    assert [c["name"] for c in data["classes"]] == ["ball"] and data["records"] == []


def test_setting_a_mask_back_to_earlier_pixels_keeps_its_file(proj):
    a = proj.image_id("a.png")
    first, second = np.zeros((30, 40), bool), np.ones((30, 40), bool)
    first[3:9, 3:9] = True
    proj.set_mask(a, 1, first)
    proj.set_mask(a, 1, second)
    proj.set_mask(a, 1, first)  # same content, same file name as the one just replaced
    proj.save()
    assert np.array_equal(Project.open(proj.folder).mask(a, 1), first)


def test_accepted_and_edited_masks_are_supports_and_rejections_negatives_until_taken_out(proj):
    from annotator.project.review import unreviewed

    m = np.zeros((30, 40), bool)
    m[5:10, 5:20] = True
    a, b, c = (proj.image_id(n) for n in ("a.png", "b.png", "c.png"))
    proj.set_mask(a, 1, m)  # drawn: a support without pressing S
    proj.set_proposal(b, 1, m, 0.8, {})
    proj.set_state(b, 1, "accepted")  # accepted proposal: a support too
    proj.set_proposal(c, 1, ~m, 0.3, {})
    proj.set_state(c, 1, "rejected")
    assert proj.support_ids(1) == [a, b] and proj.negative_ids(1) == [c]
    assert unreviewed(proj, 1) == [] and unreviewed(proj, 1, include_rejected=True) == [c]
    proj.remove_support(b, 1)  # "not a support"
    proj.save()
    again = Project.open(proj.folder)
    assert again.support_ids(1) == [a] and again.record(b, 1).state == "accepted"
    again.add_support(b, 1)  # S puts it back, first among the supports
    assert again.support_ids(1) == [b, a]
    again.set_mask(c, 1, np.zeros((30, 40), bool))  # cleared by hand: the class is absent there
    assert again.negative_ids(1) == [c] and again.support_ids(1) == [b, a]


def test_every_change_is_announced_by_its_typed_event_once_made(proj):
    img = sorted(proj.images)[0]
    m = np.zeros(proj.size_of(img), bool)  # (reading a size first records it: a change of its own)
    m[2:5, 2:5] = True
    heard: list[tuple] = []
    ev = proj.events
    ev.record.connect(lambda i, c: heard.append(("record", i, c, proj.record(i, c).state)))
    ev.classes.connect(lambda: heard.append(("classes", sorted(c.name for c in proj.classes.values()))))
    ev.supports.connect(lambda i, c: heard.append(("supports", i, c, proj.support_ids(c))))  # takes the lock
    changed = []
    ev.changed.connect(lambda: changed.append(1))
    cid = proj.add_class("dog").id
    proj.set_proposal(img, cid, m, 0.4, {})
    proj.set_state(img, cid, "accepted")
    before = proj.record(img, cid)
    proj.add_support(img, cid)
    proj.remove_support(img, cid)
    proj.clear_mask(img, cid)
    proj.restore_record(img, cid, before)
    proj.rename_class(cid, "hound")
    proj.delete_class(cid)
    assert heard == [
        ("classes", sorted([*(c.name for c in proj.classes.values()), "dog"])),
        ("record", img, cid, "proposed"),
        ("record", img, cid, "accepted"),
        ("supports", img, cid, [img]),
        ("supports", img, cid, []),
        ("record", img, cid, "unlabelled"),
        ("record", img, cid, "accepted"),
        ("classes", sorted([*(c.name for c in proj.classes.values()), "hound"])),
        ("classes", sorted(c.name for c in proj.classes.values())),
    ]
    assert len(changed) == len(heard)  # and the autosaver's `changed` for each


@pytest.mark.parametrize(("version", "words"), [("\n", 'version "\\n" is not a number'), (99, "format 99 is newer")])
def test_a_crafted_index_version_is_refused_in_one_line(proj, version, words):
    proj.save()
    data = json.loads((proj.folder / "project.json").read_text())
    data["version"] = version
    proj.close()
    for name in ("project.json", "project.json.bak"):  # no earlier copy to fall back on
        (proj.folder / name).write_text(json.dumps(data))
    with pytest.raises(ProjectError) as err:
        Project.open(proj.folder)
    assert words in str(err.value) and "\n" not in str(err.value)
