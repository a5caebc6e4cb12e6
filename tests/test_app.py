"""The desktop app driven through its real widgets: painting, undo, propagation, review, export."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from pycocotools.coco import COCO
from PySide6.QtCore import QEvent, QPoint, QPointF, QSettings, Qt
from PySide6.QtGui import QKeySequence, QMouseEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QMessageBox

from annotator.app.dialogs import ExportDialog, HelpDialog, ImportDialog, ModelSettings
from annotator.app.image_list import Column, ImageIdRole
from annotator.app.main_window import MainWindow, app_data_dir
from annotator.config import State
from annotator.formats.export import ExportOptions, export_coco
from annotator.project.session import project_dir_for
from tests.synthetic import scene, write_rgb


@pytest.fixture
def folder(tmp_path):
    imgs = tmp_path / "images"
    imgs.mkdir()
    for i, (c, r) in enumerate([((60, 50), 22), ((100, 60), 25), ((50, 70), 20), ((110, 40), 18)]):
        write_rgb(imgs / f"{i}.png", scene(120, 160, c, r, seed=50 + i)[0])
    return imgs


@pytest.fixture
def win(qtbot, folder, tmp_path):
    qs = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    ModelSettings(crf=False, device="cpu").save(qs)
    w = MainWindow(folder, settings=qs)
    qtbot.addWidget(w)
    w.resize(900, 700)
    w.show()
    qtbot.waitExposed(w)
    w.canvas.actual_size()  # 1:1 so that view pixels are image pixels
    yield w
    w.close()


def _vp(win, x, y) -> QPoint:
    return win.canvas.mapFromScene(QPointF(x + 0.5, y + 0.5))


def _drag(win, points, modifiers=Qt.KeyboardModifier.NoModifier):
    vp = win.canvas.viewport()
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, modifiers, _vp(win, *points[0]))
    for p in points[1:]:
        pos = QPointF(_vp(win, *p))
        ev = QMouseEvent(
            QEvent.Type.MouseMove,
            pos,
            vp.mapToGlobal(pos),
            Qt.MouseButton.NoButton,
            Qt.MouseButton.LeftButton,
            modifiers,
        )
        QApplication.sendEvent(vp, ev)
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, modifiers, _vp(win, *points[-1]))


def test_opening_a_folder_makes_a_project_beside_it_and_lists_images(win, folder):
    assert win.project.folder == project_dir_for(folder, app_data_dir()) == folder.parent / "images.annotator"
    assert win.images.rowCount() == 4
    assert [p.name for p in folder.iterdir()] and not list(folder.glob("*.json"))  # never written to


def test_brush_stroke_paints_where_the_mouse_went_and_undo_restores(win, qtbot):
    win.canvas.set_brush(9)
    _drag(win, [(20, 20), (40, 20), (60, 20)])
    m = win.canvas.mask
    assert m[20, 20] and m[20, 40] and m[20, 60] and m[24, 40]  # 9 px wide line
    assert not m[40, 40] and not m[20, 80]
    painted = m.sum()
    win.tool_actions["eraser"].trigger()
    _drag(win, [(40, 20), (40, 21)])
    assert not win.canvas.mask[20, 40] and win.canvas.mask.sum() < painted
    QTest.keyClick(win, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert win.canvas.mask.sum() == painted
    QTest.keyClick(win, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert not win.canvas.mask.any()
    win._flush_writes()  # every stroke undone: the image is as it was, unlabelled, not "accepted"
    assert win.project.record(win.image_id, win.class_id).state == "unlabelled"
    assert win.statusBar().currentMessage().endswith("· unlabelled")  # the state shown live
    QTest.keyClick(win, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert win.canvas.mask.sum() == painted and win.statusBar().currentMessage().endswith("· accepted")
    win._flush_writes()
    assert win.project.mask(win.image_id, win.class_id).sum() == painted  # saved as the user's mask
    assert win.project.record(win.image_id, win.class_id).edited


def test_n_paints_a_new_instance_in_its_own_shade_kept_by_the_project_and_exported_as_one(win, tmp_path):
    ctrl = Qt.KeyboardModifier.ControlModifier
    win.canvas.set_brush(9)
    _drag(win, [(20, 20), (60, 20)])
    QTest.keyClick(win, Qt.Key.Key_N)
    assert win.canvas.instance == 2 and "painting instance 2" in win.statusBar().currentMessage()
    QTest.keyClick(win, Qt.Key.Key_N)  # instance 2 has no pixel yet: N again stays on it
    assert win.canvas.instance == 2
    _drag(win, [(20, 80), (60, 80)])
    lab = win.canvas.labels.copy()
    assert lab[20, 40] == 1 and lab[80, 40] == 2 and set(np.unique(lab)) == {0, 1, 2}
    shade1, shade2 = win.canvas.overlay.buffer[20, 40], win.canvas.overlay.buffer[80, 40]
    assert shade1[3] == shade2[3] == 255 and not np.array_equal(shade1, shade2)  # two shades of the class colour
    win._flush_writes()
    assert np.array_equal(win.project.labels(win.image_id, win.class_id), lab)  # stored as instances
    first = win.image_id
    win.step(1)
    win.step(-1)  # shown again: the instances are there, and the tools go on with the last one
    assert win.image_id == first and np.array_equal(win.canvas.labels, lab) and win.canvas.instance == 2
    win.tool_actions["eraser"].trigger()  # the eraser clears any instance...
    _drag(win, [(40, 20), (40, 21)])
    assert win.canvas.labels[20, 40] == 0
    QTest.keyClick(win, Qt.Key.Key_Z, ctrl)  # ...and undo gives the pixels back to their instance
    assert np.array_equal(win.canvas.labels, lab)
    win.tool_actions["brush"].trigger()
    _drag(win, [(100, 100), (101, 100)])  # a stroke on a mask with instances keeps them (it was flattened)
    win._flush_writes()
    stored = win.project.labels(win.image_id, win.class_id)
    assert stored[20, 40] == 1 and stored[80, 40] == 2 and stored[100, 100] == 2
    out = tmp_path / "inst.json"
    export_coco(win.project, out, ExportOptions(instances=True))
    assert len(json.loads(out.read_text())["annotations"]) == 2


def test_bracket_keys_resize_the_brush(win):
    before = win.canvas.brush
    QTest.keyClick(win, Qt.Key.Key_BracketRight)
    assert win.canvas.brush > before and win.brush_spin.value() == win.canvas.brush
    QTest.keyClick(win, Qt.Key.Key_BracketLeft)
    QTest.keyClick(win, Qt.Key.Key_BracketLeft)
    assert win.canvas.brush < before


def test_polygon_clicks_and_flood_fill(win):
    win.tool_actions["polygon"].trigger()
    vp = win.canvas.viewport()
    for p in [(10, 10), (50, 10), (50, 40)]:
        QTest.mouseClick(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, _vp(win, *p))
    QTest.mouseDClick(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, _vp(win, 10, 40))
    m = win.canvas.mask
    assert m[25, 30] and not m[60, 30] and 1000 < m.sum() < 1500  # a 40x30 box
    win.canvas.replace_mask(np.zeros_like(m))
    win.tool_actions["fill"].trigger()
    QTest.mouseClick(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, _vp(win, 60, 50))  # the red ball
    truth = scene(120, 160, (60, 50), 22, seed=50)[1]
    got = win.canvas.mask
    assert (got & truth).sum() / (got | truth).sum() > 0.95


def test_a_polygons_vertices_can_be_dragged_before_it_is_closed(win):
    win.tool_actions["polygon"].trigger()
    vp = win.canvas.viewport()
    for p in [(10, 10), (50, 10), (50, 40)]:
        QTest.mouseClick(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, _vp(win, *p))
    placed = list(win.canvas._poly)
    _drag(win, [(50, 10), (60, 10), (70, 10)])  # a press on a vertex grabs it: no new vertex, no lasso
    moved = (placed[1][0] + 20, placed[1][1])
    assert win.canvas._poly == [placed[0], moved, placed[2]] and not win.canvas.mask.any()
    QTest.mouseDClick(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, _vp(win, 10, 40))
    m = win.canvas.mask
    assert m[14, 60] and m[30, 20] and not m[14, 72]  # the closed polygon has the moved vertex


def _paint_support(win):
    truth = scene(120, 160, (60, 50), 22, seed=50)[1]
    win.canvas.replace_mask(truth)
    QTest.keyClick(win, Qt.Key.Key_S)
    assert win.project.supports[win.class_id] == [win.image_id]


def test_propagation_fills_the_thumbnails_and_review_keys_change_states(win, qtbot):
    _paint_support(win)
    QTest.keyClick(win, Qt.Key.Key_P, Qt.KeyboardModifier.ControlModifier)
    assert win.worker is not None and win.job.progress.isVisible()
    with qtbot.waitSignal(win.worker.finished, timeout=120000):
        pass
    win.wait_for_worker()
    assert "cpu" in win.device_label.text().lower()
    states = {i: win.project.record(i, win.class_id).state for i in win.project.images}
    assert sorted(states.values()) == ["accepted", "proposed", "proposed", "proposed"]
    texts = [win.images.data(win.images.index(r, Column.STATE)) for r in range(4)]
    assert (
        sum(t.startswith(("? proposed", "∅ proposed")) for t in texts) == 3
    )  # proposals show in the list (and on the thumbnails)
    QTest.keyClick(win, Qt.Key.Key_R)
    queue = list(win.review)
    scores = [win.project.record(i, win.class_id).score for i in queue]
    assert scores == sorted(scores) and win.image_id == queue[0]  # least confident first
    QTest.keyClick(win, Qt.Key.Key_Return)
    assert win.project.record(queue[0], win.class_id).state == "accepted" and win.image_id == queue[1]
    QTest.keyClick(win, Qt.Key.Key_Backspace)
    assert win.project.record(queue[1], win.class_id).state == "rejected" and win.image_id == queue[2]
    QTest.keyClick(win, Qt.Key.Key_Left)
    assert win.image_id == queue[1]


def test_propagation_can_be_cancelled(win, qtbot, folder):
    for i in range(4, 12):
        write_rgb(folder / f"{i}.png", scene(120, 160, (80, 60), 20, seed=i)[0])
    win.open_path(folder)  # rescans: 12 images now
    assert win.images.rowCount() == 12
    _paint_support(win)
    win.propagate("all")
    worker = win.worker
    with qtbot.waitSignal(worker.result, timeout=60000):
        pass
    QTest.keyClick(win, Qt.Key.Key_Period, Qt.KeyboardModifier.ControlModifier)
    assert win.worker is None and not win.job.progress.isVisible()
    old_thread = win.job.jobs.thread
    if old_thread.isRunning():  # the cancelled run is finishing its last image off the GUI thread
        win.propagate("all")
        assert win.worker is None  # a new run waits for it instead of sharing the predictor beside it
        qtbot.waitUntil(lambda: win.worker is not None, timeout=60000)  # ...and starts once it has stopped
        assert not old_thread.isRunning()
        win.cancel_job()
    win.wait_for_worker()
    proposed = sum(win.project.record(i, win.class_id).state == "proposed" for i in win.project.images)
    assert 1 <= proposed < 11


def test_export_writes_coco_that_pycocotools_loads(win, qtbot, tmp_path):
    from annotator.formats.export import ExportOptions

    _paint_support(win)
    win.export_to(tmp_path / "out.json", "coco-rle", ExportOptions())
    assert win.worker is not None  # in the background: the window goes on meanwhile
    qtbot.waitUntil(lambda: win.worker is None, timeout=30000)
    said = win.statusBar().currentMessage()  # in words, and what was left out
    images = len(json.loads((tmp_path / "out.json").read_text())["images"])
    assert said.startswith(f"Exported {images} images, 1 annotation to {tmp_path / 'out.json'}"), said
    assert "left out" not in said
    api = COCO(str(tmp_path / "out.json"))
    (ann,) = api.loadAnns(api.getAnnIds())
    truth = scene(120, 160, (60, 50), 22, seed=50)[1]
    assert np.array_equal(api.annToMask(ann).astype(bool), truth)


def test_help_sheet_lists_every_shortcut_by_menu_and_the_mouse(win):
    from annotator.app.actions import GESTURES

    dlg = HelpDialog(win.named_actions, GESTURES, win)
    cells = [[dlg.table.item(r, c) for c in (0, 1)] for r in range(dlg.table.rowCount())]
    titles = [a.text() for a, b in cells if b is None]
    assert titles == ["File", "Edit", "Tools", "View", "Class", "Propagate", "Review", "Help", "Mouse"]
    mouse_at = [a.text() for a, _ in cells].index("Mouse")
    keys = [b.text() for _, b in cells[:mouse_at] if b is not None and b.text()]
    assert {"B", "E", "P", "G", "[", "]", "S", "R", "Return", "Backspace", "F1", "Ctrl+P", "Ctrl+Z"} <= set(keys)
    assert len(keys) == len(set(keys))  # no two actions share a shortcut
    mouse = [a.text() for a, _ in cells[mouse_at + 1 :]]
    assert "Wheel" in mouse and len(mouse) == len(GESTURES)
    assert dlg.table.editTriggers() == dlg.table.EditTrigger.NoEditTriggers  # a sheet to read


def test_settings_persist(tmp_path):
    qs = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    ModelSettings(crf=False, presence_threshold=0.4, device="cpu").save(qs)
    qs.sync()
    again = ModelSettings.load(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    assert again == ModelSettings(crf=False, presence_threshold=0.4, device="cpu")


def test_the_settings_dialog_sets_the_crf_parameters_and_they_persist(tmp_path, qtbot):
    from annotator.app.dialogs import SettingsDialog
    from annotator.inference.crf import CRFParams

    dlg = SettingsDialog(ModelSettings(crf=True, device="cpu"))
    qtbot.addWidget(dlg)
    dlg.crf_fields["iterations"].setValue(8)
    dlg.crf_fields["bilateral_srgb"].setValue(0.0)  # below its range: the box holds it at the minimum
    chosen = dlg.value()
    assert chosen.crf_params == CRFParams(iterations=8, bilateral_srgb=0.1)
    qs = QSettings(str(tmp_path / "crf.ini"), QSettings.Format.IniFormat)
    chosen.save(qs)
    qs.setValue("crf/gaussian_sxy", "nonsense")  # a damaged value falls back to the default
    qs.sync()
    again = ModelSettings.load(QSettings(str(tmp_path / "crf.ini"), QSettings.Format.IniFormat))
    assert again.crf_params == CRFParams(iterations=8, bilateral_srgb=0.1)
    dlg.crf.setChecked(False)
    assert not dlg.crf_fields["iterations"].isEnabled()
    assert "add up" in dlg.crf_fields["fg_bias"].toolTip()  # each field says what it does
    assert all(box.toolTip() for box in dlg.crf_fields.values())


def test_thumbnails_arrive_lazily(win, qtbot):
    idx = win.images.index(0, 0)
    win.images.data(idx, Qt.ItemDataRole.DecorationRole)
    qtbot.waitUntil(lambda: win.thumbnails.cached(win.images.data(idx, ImageIdRole)), timeout=5000)


def test_dropping_a_folder_opens_it(win, tmp_path):
    from PySide6.QtCore import QMimeData, QUrl
    from PySide6.QtGui import QDropEvent

    other = tmp_path / "other"
    other.mkdir()
    write_rgb(other / "z.png", scene(20, 30, None, 0, seed=3)[0])
    data = QMimeData()
    data.setUrls([QUrl.fromLocalFile(str(other))])
    ev = QDropEvent(
        QPointF(10, 10), Qt.DropAction.CopyAction, data, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    win.dropEvent(ev)
    assert win.project.image_root == other.resolve() and win.images.rowCount() == 1


def test_adapt_to_this_folder_trains_a_head_in_the_background_and_propagation_uses_it(win, qtbot, monkeypatch):
    from annotator.project import workflows
    from annotator.training.config import TrainConfig

    monkeypatch.setattr(workflows, "ADAPT_CONFIG", TrainConfig(steps=6, batch=2, input_size=97, checkpoint_every=3))
    _paint_support(win)
    QTest.keyClick(win, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier)
    assert win.worker is not None and win.job.progress.isVisible()
    QTest.keyClick(win, Qt.Key.Key_Right)  # the GUI stays usable while it trains
    with qtbot.waitSignal(win.worker.finished, timeout=180000) as done:
        pass
    assert done.args == [False, ""]
    win.wait_for_worker()
    qtbot.waitUntil(lambda: win.worker is None, timeout=10000)  # the GUI thread has handled `finished`
    head = workflows.adapted_checkpoint(win.project)
    assert head.is_file() and "adapted" in win.statusBar().currentMessage()
    assert win.model_settings.model == "sgone"
    win.propagate("all")
    assert win.worker.model == "sgone" and win.worker.checkpoint == head
    with qtbot.waitSignal(win.worker.finished, timeout=120000):
        pass
    win.wait_for_worker()
    proposed = [win.project.record(i, win.class_id) for i in win.project.images]
    proposed = [r for r in proposed if r.state == "proposed"]
    assert len(proposed) == 3 and all(r.settings["model"] == "sgone" for r in proposed)


def test_propagate_again_learns_from_accepted_masks_and_rejections(win, qtbot):
    _paint_support(win)
    win.propagate("all")
    with qtbot.waitSignal(win.worker.finished, timeout=120000):
        pass
    win.wait_for_worker()
    qtbot.waitUntil(lambda: win.worker is None, timeout=10000)  # the GUI thread has handled `finished`
    assert "learned from 1 mask and 0 rejections" in win.statusBar().currentMessage()
    QTest.keyClick(win, Qt.Key.Key_R)
    accepted, rejected = win.review[0], win.review[1]
    assert win.project.mask(accepted, win.class_id) is not None  # a proposal with pixels
    QTest.keyClick(win, Qt.Key.Key_Return)
    QTest.keyClick(win, Qt.Key.Key_Backspace)
    rejected_mask = win.project.record(rejected, win.class_id).mask
    QTest.keyClick(win, Qt.Key.Key_P, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier)
    with qtbot.waitSignal(win.worker.finished, timeout=120000):
        pass
    win.wait_for_worker()
    qtbot.waitUntil(lambda: win.worker is None, timeout=10000)  # the GUI thread has handled `finished`
    assert "learned from 2 masks and 1 rejection" in win.statusBar().currentMessage()
    assert accepted in win.project.support_ids(win.class_id)  # accepted without pressing S
    rec = win.project.record(rejected, win.class_id)
    assert rec.state == "rejected" and rec.mask == rejected_mask  # not proposed again, not forgotten
    (other,) = [i for i in win.project.images if win.project.record(i, win.class_id).state == "proposed"]
    assert win.project.record(other, win.class_id).settings["learned_from"] == {"masks": 2, "rejections": 1}
    win.show_image(accepted)
    QTest.keyClick(win, Qt.Key.Key_S, Qt.KeyboardModifier.ShiftModifier)  # "not a support"
    assert accepted not in win.project.support_ids(win.class_id)
    assert win.project.record(accepted, win.class_id).state == "accepted"  # the mask itself stays
    win.propagate("unreviewed", include_rejected=True)
    with qtbot.waitSignal(win.worker.finished, timeout=120000):
        pass
    win.wait_for_worker()
    qtbot.waitUntil(lambda: win.worker is None, timeout=10000)  # the GUI thread has handled `finished`
    assert "learned from 1 mask and 1 rejection" in win.statusBar().currentMessage()
    assert win.project.record(rejected, win.class_id).state == "proposed"  # asked for: proposed again


def test_every_shortcut_comes_from_the_one_table_and_none_is_bound_twice(win):
    from annotator.app.actions import KEYS

    bound = [a.shortcut().toString() for a in win.actions() if not a.shortcut().isEmpty()]
    assert len(bound) == len(set(bound)), sorted(bound)
    table = {QKeySequence(k).toString() for k in KEYS.values()} - {""}  # a standard key this platform leaves unbound
    assert set(bound) == table, set(bound) ^ table


def test_a_project_another_process_writes_opens_read_only_when_the_user_agrees(win, tmp_path, monkeypatch):
    """Reliability defect 2: two writers lost masks; the app now offers to open such a project read-only."""
    from annotator.project.store import Project
    from tests.processes import held_open

    other = tmp_path / "other"
    other.mkdir()
    write_rgb(other / "x.png", scene(40, 50, None, 0, seed=1)[0])
    with Project.create(tmp_path / "other.annotator", other) as theirs:
        theirs.add_class("theirs")
        theirs.save()
    with held_open(tmp_path / "other.annotator") as child:
        current = win.project
        asked = []
        monkeypatch.setattr(win, "ask_read_only", lambda why: asked.append(why) or False)
        win.open_path(tmp_path / "other.annotator")
        assert win.project is current and f"open in process {child.pid}" in asked[0]  # declined: nothing changes
        monkeypatch.setattr(win, "ask_read_only", lambda why: True)
        win.open_path(tmp_path / "other.annotator")
        assert win.project.read_only and win.windowTitle().endswith("(read-only)")
        assert win.statusBar().currentMessage().startswith("read-only") and not win.project.dirty
        QTest.keyClick(win, Qt.Key.Key_Backspace)  # reject: an edit it could never save is refused, and said so
        assert "is open read-only" in win.statusBar().currentMessage() and win.project.records == {}


def test_export_dialog_offers_every_format_and_the_holes_policy_only_for_coco_polygons(qtbot):
    dlg = ExportDialog()
    qtbot.addWidget(dlg)
    keys = [dlg.format.itemData(i) for i in range(dlg.format.count())]
    assert keys == ["coco-rle", "coco-polygon", "yolo-seg", "labelme", "voc", "cvat", "png"]
    for i, key in enumerate(keys):
        dlg.format.setCurrentIndex(i)
        assert dlg.holes.isEnabled() == (key == "coco-polygon")
        assert dlg.value()[0] == key and dlg.value()[1].polygons == (key == "coco-polygon")
        assert dlg.val_fraction.isEnabled() == (key in ("yolo-seg", "voc")) == dlg.seed.isEnabled()
    dlg.val_fraction.setValue(0.25)
    dlg.seed.setValue(7)
    dlg.format.setCurrentIndex(keys.index("voc"))
    assert (dlg.value()[1].val_fraction, dlg.value()[1].seed) == (0.25, 7)
    dlg.format.setCurrentIndex(keys.index("coco-rle"))  # no split for a format without one
    assert dlg.value()[1].val_fraction == 0.0


def test_an_export_runs_in_the_background_shows_its_progress_and_can_be_cancelled(win, qtbot, tmp_path, monkeypatch):
    from annotator.formats import export
    from annotator.formats.export import ExportOptions

    _paint_support(win)
    slow = export.image_size_or_skip

    def one_image_a_tenth_of_a_second(*args):
        time.sleep(0.1)
        return slow(*args)

    monkeypatch.setattr(export, "image_size_or_skip", one_image_a_tenth_of_a_second)
    win.export_to(tmp_path / "out.json", "coco-rle", ExportOptions())
    panel = win.job
    qtbot.waitUntil(lambda: panel.progress.value() >= 2, timeout=10000)  # a step per image, while the GUI runs
    assert panel.progress.maximum() == len(win.project.images) and panel.eta.text() == "exporting"
    win.export_to(tmp_path / "again.json", "coco-rle", ExportOptions())  # one job at a time
    assert win.statusBar().currentMessage().startswith("Wait for the running job")
    win.cancel_job()
    assert win.statusBar().currentMessage() == f"Export cancelled: {tmp_path / 'out.json'} was not written"
    win.wait_for_worker()
    assert not (tmp_path / "out.json").exists() and not panel.progress.isVisible()
    qtbot.waitUntil(lambda: not win.job.jobs.stopping, timeout=10000)
    win.export_to(tmp_path / "out.json", "coco-rle", ExportOptions())  # and it can run again, to the end
    qtbot.waitUntil(lambda: win.worker is None, timeout=30000)
    assert win.statusBar().currentMessage().startswith("Exported") and (tmp_path / "out.json").exists()


def test_opening_another_folder_stops_the_job_working_on_the_one_closed(win, qtbot, tmp_path, monkeypatch):
    from annotator.formats import export
    from annotator.formats.export import ExportOptions

    slow = export.image_size_or_skip
    monkeypatch.setattr(export, "image_size_or_skip", lambda *a: (time.sleep(0.1), slow(*a))[1])
    old = win.project
    win.export_to(tmp_path / "out.json", "coco-rle", ExportOptions())
    qtbot.waitUntil(lambda: win.job.progress.value() >= 1, timeout=10000)
    other = tmp_path / "other"
    other.mkdir()
    write_rgb(other / "z.png", scene(20, 30, None, 0, seed=3)[0])
    win.open_path(other)
    assert win.project is not old and win.worker is None and not win.job.jobs.stopping
    assert not (tmp_path / "out.json").exists()


def test_import_from_the_file_menu_adds_classes_and_masks_and_names_a_bad_file(win, qtbot, tmp_path, monkeypatch):
    cat = [[60.0, 20.0, 100.0, 20.0, 100.0, 60.0, 60.0, 60.0]]
    coco = {
        "images": [{"id": 1, "file_name": "1.png", "height": 120, "width": 160}],
        "categories": [{"id": 3, "name": "cat"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "segmentation": cat, "iscrowd": 0}],
    }
    (tmp_path / "in.json").write_text(json.dumps(coco))
    dlg = ImportDialog(str(tmp_path), win)
    dlg.show()  # laid out: the source field shows its hint whole
    hint = dlg.source.placeholderText()
    assert dlg.source.width() > dlg.source.fontMetrics().horizontalAdvance(hint)
    dlg.source.setText(str(tmp_path / "in.json"))
    dlg.state.setCurrentIndex(1)
    assert dlg.value() == (tmp_path / "in.json", "auto", "proposed", False)
    win.import_from(tmp_path / "in.json", "auto", State.PROPOSED, False)
    assert win.worker is not None  # in the background
    qtbot.waitUntil(lambda: win.worker is None, timeout=30000)
    assert win.statusBar().currentMessage() == "Imported 1 annotations as 1 masks on 1 images"
    cid = next(c.id for c in win.project.classes.values() if c.name == "cat")
    assert any(win.classes.item(i).data(Qt.ItemDataRole.UserRole) == cid for i in range(win.classes.count()))
    rec = win.project.record(win.project.image_id("1.png"), cid)
    assert rec.state == State.PROPOSED and win.project.mask(win.project.image_id("1.png"), cid)[40, 80]
    warned = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *a: warned.append(a[2]))
    (tmp_path / "bad.json").write_text("{not json")
    before = dict(win.project.records)
    win.import_from(tmp_path / "bad.json", "coco", State.ACCEPTED, False)
    qtbot.waitUntil(lambda: win.worker is None, timeout=30000)
    assert warned and "bad.json" in warned[0] and win.project.records == before
    assert win.statusBar().currentMessage().startswith("Import failed: ")


def test_an_import_runs_in_the_background_and_a_cancelled_one_keeps_what_it_stored(win, qtbot, tmp_path, monkeypatch):
    files = sorted(e.file for e in win.project.images.values())
    coco = {
        "images": [{"id": i, "file_name": f, "height": 120, "width": 160} for i, f in enumerate(files, 1)],
        "categories": [{"id": 1, "name": "box"}],
        "annotations": [
            {"id": i, "image_id": i, "category_id": 1, "segmentation": [[10.0, 10.0, 50.0, 10.0, 50.0, 50.0]]}
            for i in range(1, len(files) + 1)
        ],
    }
    (tmp_path / "in.json").write_text(json.dumps(coco))
    store = win.project.set_mask

    def a_tenth_of_a_second_each(*args, **kw):
        time.sleep(0.1)
        return store(*args, **kw)

    monkeypatch.setattr(win.project, "set_mask", a_tenth_of_a_second_each)
    win.import_from(tmp_path / "in.json", "coco", State.ACCEPTED, False)
    qtbot.waitUntil(lambda: win.job.progress.value() >= 2, timeout=10000)  # a step per mask
    assert win.job.progress.maximum() == len(files) and win.job.eta.text() == "importing"
    win.cancel_job()
    assert win.statusBar().currentMessage() == "Import cancelled: the masks stored until then stay"
    win.wait_for_worker()
    qtbot.waitUntil(lambda: not win.job.jobs.stopping, timeout=10000)
    cid = win.project.class_named("box")
    stored = sum(win.project.record(i, cid).state == State.ACCEPTED for i in win.project.images)
    assert 2 <= stored < len(files)
    win.import_from(tmp_path / "in.json", "coco", State.ACCEPTED, True)  # again, to the end
    qtbot.waitUntil(lambda: win.worker is None, timeout=30000)
    assert win.statusBar().currentMessage().startswith(f"Imported {len(files)} annotations")
    assert all(win.project.record(i, cid).state == State.ACCEPTED for i in win.project.images)


def test_cancelling_adapt_says_so_and_clears_its_progress(win, qtbot, monkeypatch):
    from annotator.project import workflows
    from annotator.training.config import TrainConfig

    monkeypatch.setattr(workflows, "ADAPT_CONFIG", TrainConfig(steps=400, batch=2, input_size=97, checkpoint_every=50))
    _paint_support(win)
    win.adapt_to_folder()
    worker = win.worker
    assert win.job.eta.text().startswith("adapting")
    with qtbot.waitSignal(worker.finished, timeout=180000) as done:  # listening before it can stop
        QTest.keyClick(win, Qt.Key.Key_Period, Qt.KeyboardModifier.ControlModifier)
        assert win.statusBar().currentMessage().startswith("Adaptation cancelled")
        assert win.job.eta.text() == "" and not win.job.progress.isVisible() and win.worker is None
    assert done.args[0] is True  # the worker saw the cancel
    win.wait_for_worker()
    assert win.statusBar().currentMessage().startswith("Adaptation cancelled")  # its end did not overwrite it
