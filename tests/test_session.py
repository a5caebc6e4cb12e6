"""The editing session without Qt: ordered writes, review queue and steps, supports, errors reported."""

from __future__ import annotations

import os

import numpy as np
import pytest

from annotator.config import State
from annotator.project.review import proposals_by_score, state_counts
from annotator.project.session import Session, open_or_create, project_dir_for
from tests.synthetic import scene, write_rgb


@pytest.fixture
def images(tmp_path):
    root = tmp_path / "images"
    root.mkdir()
    for name in ("a.png", "b.png", "c.png", "d.png"):
        write_rgb(root / name, scene(30, 40, (20, 15), 6, seed=len(name) + ord(name[0]))[0])
    return root


@pytest.fixture
def session(tmp_path, images):
    proj = open_or_create(images, tmp_path / "data")
    proj.add_class("ball")
    errors: list[str] = []
    s = Session(proj, on_error=errors.append)
    s.errors = errors
    s.choose_class(1)
    yield s
    s.close()


def _box(y0, y1, x0, x1):
    m = np.zeros((30, 40), bool)
    m[y0:y1, x0:x1] = True
    return m


def test_paints_are_written_in_order_off_the_callers_thread_and_flush_waits_for_them(session):
    a = session.project.image_id("a.png")
    session.choose_image(a)
    for i in range(5):  # the last stroke wins: writes never overtake one another
        session.paint(_box(0, 5 + i, 0, 10))
    session.flush()
    assert session.project.mask(a, 1).sum() == 9 * 10
    rec = session.project.record(a, 1)
    assert rec.state == State.ACCEPTED and rec.edited


def test_undoing_every_edit_puts_a_proposal_back_and_clearing_a_mask_does_not_accept_it(session):
    proj, a = session.project, session.project.image_id("a.png")
    proj.set_proposal(a, 1, _box(5, 15, 5, 15), 0.83, {"model": "panet"})
    session.choose_image(a)
    session.paint(_box(5, 20, 5, 20))  # a stroke...
    session.flush()
    assert proj.record(a, 1).state == State.ACCEPTED and proj.record(a, 1).edited
    assert session.paint(_box(5, 15, 5, 15), all_undone=True).state == State.PROPOSED  # ...undone: not "accepted"
    session.flush()
    rec = proj.record(a, 1)
    assert (rec.state, rec.score, rec.edited) == (State.PROPOSED, 0.83, False) and proj.mask(a, 1).sum() == 100
    assert session.paint(np.zeros((30, 40), bool)).state == State.UNLABELLED  # cleared
    session.flush()
    rec = proj.record(a, 1)
    assert rec.state == State.UNLABELLED and not rec.edited and proj.mask(a, 1) is None
    session.paint(_box(5, 15, 5, 15), all_undone=True)
    session.flush()
    assert proj.record(a, 1).state == State.PROPOSED and proj.mask(a, 1).sum() == 100
    session.paint(_box(5, 20, 5, 20))  # a stroke, then a rejection: undoing the stroke does not undo that
    session.set_state(State.REJECTED)
    assert session.paint(_box(5, 15, 5, 15), all_undone=True).state == State.ACCEPTED
    session.flush()
    assert proj.record(a, 1).state == State.ACCEPTED and proj.mask(a, 1).sum() == 100
    assert session.errors == []


def test_a_failed_write_is_reported_not_raised(session):
    session.choose_image(session.project.image_id("a.png"))
    session.paint(np.ones((7, 7), bool))  # not the image's size
    session.flush()
    assert len(session.errors) == 1 and "does not fit" in session.errors[0], session.errors
    assert session.project.mask(session.image_id, 1) is None


def test_review_walks_proposals_least_confident_first_and_steps_end_there(session):
    p = session.project
    ids = {f: p.image_id(f) for f in ("a.png", "b.png", "c.png", "d.png")}
    p.set_proposal(ids["b.png"], 1, _box(0, 9, 0, 9), 0.9, {})
    p.set_proposal(ids["c.png"], 1, _box(0, 9, 0, 9), 0.4, {})
    p.set_proposal(ids["d.png"], 1, np.zeros((30, 40), bool), None, {})  # judged empty: last
    assert session.start_review()
    assert session.review == [ids["c.png"], ids["b.png"], ids["d.png"]]
    session.choose_image(session.review[0])
    assert session.where() == "review 1/3 · "
    session.set_state(State.REJECTED)
    assert p.record(ids["c.png"], 1).state == State.REJECTED
    assert session.step(1) == ids["b.png"] and session.step(-1) is None
    session.choose_image(ids["d.png"])
    assert session.step(1) is None  # the end of the queue
    session.stop_review()
    assert session.step(-1) == ids["c.png"]  # outside review: the folder's order


def test_bulk_decisions_count_first_apply_together_and_undo_as_one_step(session):
    p = session.project
    ids = [p.image_id(f) for f in ("a.png", "b.png", "c.png", "d.png")]
    for image_id, score in zip(ids, (0.95, 0.9, 0.5, 0.2)):
        p.set_proposal(image_id, 1, _box(0, 9, 0, 9), score, {})
    assert proposals_by_score(p, 1, at_least=0.9) == ids[:2]  # the preview count of "accept all >= 0.9"
    assert proposals_by_score(p, 1, at_most=0.5) == ids[2:]
    assert session.decide({i: State.ACCEPTED for i in ids[:2]}) == 2
    assert session.decide({ids[2]: State.REJECTED, ids[3]: State.ACCEPTED}) == 2
    counts = state_counts(p, 1)
    assert (counts["accepted"], counts["rejected"], counts["proposed"], counts["unlabelled"]) == (3, 1, 0, 0)
    assert counts["supports"] == 3  # accepted masks teach propagation
    assert session.undo_decision() == [ids[2], ids[3]]  # the last decision only
    assert [p.record(i, 1).state for i in ids] == ["accepted", "accepted", "proposed", "proposed"]
    assert p.record(ids[2], 1).score == 0.5 and p.mask(ids[2], 1).sum() == 81  # score and pixels come back
    assert session.undo_decision() == ids[:2]
    assert state_counts(p, 1)["proposed"] == 4 and session.undo_decision() == []


def test_support_in_and_out_says_what_it_did(session):
    a = session.project.image_id("a.png")
    session.choose_image(a)
    session.paint(_box(3, 12, 4, 20))
    assert "is now support 1 of 'ball'" in session.add_support()
    assert session.project.support_ids(1) == [a]
    assert "no longer a support" in session.remove_support()
    assert session.project.support_ids(1) == []


def test_an_image_folder_whose_index_was_lost_mid_save_is_opened_from_its_backup_not_recreated(tmp_path, images):
    proj = open_or_create(images, tmp_path / "data")
    where = proj.folder
    proj.add_class("ball")
    proj.set_mask(proj.image_id("a.png"), 1, _box(0, 9, 0, 9))
    proj.save()
    proj.save()  # the second save leaves the first as the backup
    os.replace(where / "project.json", where / "project.json.bak")  # a kill between the two renames of a save
    again = open_or_create(images, tmp_path / "data")
    assert again.mask(again.image_id("a.png"), 1).sum() == 81
    assert again.report.recovered


def test_a_folder_whose_parent_is_read_only_gets_its_project_in_the_data_folder(tmp_path, images):
    from unittest import mock

    assert project_dir_for(images, tmp_path / "data") == images.parent / "images.annotator"
    with mock.patch("annotator.project.session.os.access", return_value=False):  # root can write anywhere: pretend
        where = project_dir_for(images, tmp_path / "data")
        proj = open_or_create(images, tmp_path / "data")
    assert where.parent == tmp_path / "data" / "projects" and where.name.startswith("images-")
    assert proj.folder == where and not (images.parent / "images.annotator").exists()
    proj.close()
