"""Review at scale, through the real widgets: the image list's filters and counts on a 10,000-image project,
the review grid's keys and bulk actions with their undo, support markers, the title, focus, what is
remembered per project, and quitting during a propagation."""

from __future__ import annotations

import time
from unittest.mock import patch

import cv2
import numpy as np
import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QToolBar

from annotator.app.actions import TOOLBAR
from annotator.app.dialogs import ModelSettings
from annotator.app.image_list import THUMB, Column
from annotator.app.main_window import MainWindow
from annotator.app.thumbnails import load_thumbnail
from annotator.config import State, Theme
from annotator.project.store import Project
from tests.synthetic import scene, write_rgb


def _settings(tmp_path) -> QSettings:
    qs = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    ModelSettings(crf=False, device="cpu").save(qs)
    return qs


@pytest.fixture
def folder(tmp_path):
    imgs = tmp_path / "images"
    imgs.mkdir()
    for i in range(10):
        write_rgb(imgs / f"{i:02d}.png", scene(60, 80, (30 + 2 * i, 30), 10, seed=i)[0])
    return imgs


def _box(y0=10, y1=30, x0=20, x1=50):
    m = np.zeros((60, 80), bool)
    m[y0:y1, x0:x1] = True
    return m


@pytest.fixture
def win(qtbot, folder, tmp_path):
    """A window on 10 images with proposals scored 0.05, 0.15, ... 0.95 (image i scores 0.05 + i/10)."""
    w = MainWindow(folder, settings=_settings(tmp_path))
    qtbot.addWidget(w)
    w.resize(1200, 800)
    w.show()
    qtbot.waitExposed(w)
    for image_id in sorted(w.project.images):
        w.project.set_proposal(image_id, w.class_id, _box(), round(0.05 + (image_id - 1) / 10, 2), {})
    w.images.refresh_all()
    yield w
    w.close()


def _states(win) -> list[str]:
    return [win.project.record(i, win.class_id).state for i in sorted(win.project.images)]


def test_the_list_filters_and_counts_a_10000_image_project_and_opens_in_well_under_a_second(qtbot, tmp_path):
    imgs = tmp_path / "many"
    (imgs / "sub").mkdir(parents=True)
    png = cv2.imencode(".png", np.full((12, 16, 3), 90, np.uint8))[1].tobytes()
    for i in range(10000):
        (imgs / ("sub" if i % 2 else "") / f"img{i:05d}.png").write_bytes(png)
    proj = Project.create(tmp_path / "many.annotator", imgs)
    cid = proj.add_class("cell").id
    ids = sorted(proj.images)
    mask = np.zeros((12, 16), bool)
    mask[2:6, 3:9] = True
    for k, image_id in enumerate(ids[::33][:300]):  # spread over both folders
        proj.set_proposal(image_id, cid, mask, k / 300, {})
    for image_id in ids[1::33][:100]:
        proj.set_state(image_id, cid, State.REJECTED)
    proj.save()
    proj.close()
    win = MainWindow(settings=_settings(tmp_path))
    qtbot.addWidget(win)
    win.show()
    t0 = time.perf_counter()
    win.open_path(tmp_path / "many.annotator")
    opened = time.perf_counter() - t0
    assert win.images.rowCount() == 10000 and win.image_list.proxy.rowCount() == 10000
    assert opened < 1.0, f"opening a 10,000-image project took {opened:.2f} s"
    counts = win.image_list.counts.text()
    assert "proposed 300 · rejected 100 · unlabelled 9600" in counts and "showing 10000 of 10000" in counts
    lst = win.image_list
    lst.state_box.setCurrentIndex(lst.state_box.findData(State.PROPOSED))
    assert lst.proxy.rowCount() == 300 and "showing 300 of 10000" in lst.counts.text()
    lst.score_lo.setValue(0.5)
    assert lst.proxy.rowCount() == 150  # scores k/300 for k = 150..299
    lst.search.setText("SUB/")  # case-insensitive
    expect = {i for i in ids[::33][150:300] if win.project.images[i].file.startswith("sub/")}
    assert 0 < len(expect) < 150 and set(lst.proxy.image_ids()) == expect
    lst.table.sortByColumn(Column.SCORE, Qt.SortOrder.DescendingOrder)
    scores = [win.images.score(i) for i in lst.proxy.image_ids()]
    assert scores == sorted(scores, reverse=True) and len(scores) == len(expect)
    assert lst.proxy.rowCount() == win.strip.model().rowCount()  # the strip shows the same rows
    lst.table.setCurrentIndex(lst.proxy.index(3, Column.NAME))  # choosing a row opens its image
    assert win.image_id == lst.proxy.image_ids()[3]
    name = win.images.data(win.images.index(win.images.row_of[win.image_id], Column.NAME))
    assert name == win.project.images[win.image_id].file and name.startswith("sub/")  # the full relative path
    lst.state_box.setCurrentIndex(0)
    lst.score_lo.setValue(0.0)
    lst.search.setText("")
    assert lst.proxy.rowCount() == 10000
    win.close()


def test_the_grid_marks_with_space_accepts_the_page_with_enter_and_undoes_it(win, qtbot):
    QTest.keyClick(win, Qt.Key.Key_G, Qt.KeyboardModifier.ControlModifier)
    grid = win.grid
    assert win.centre.currentWidget() is grid
    grid.cols.setValue(3)
    grid.rows.setValue(2)
    page = grid.model.ids
    assert len(page) == 6 and len(grid.queue) == 10
    assert page == sorted(page, key=lambda i: win.project.record(i, win.class_id).score)  # least confident first
    QTest.keyClick(win, Qt.Key.Key_Space)  # mark the first
    QTest.keyClick(win, Qt.Key.Key_Right)
    QTest.keyClick(win, Qt.Key.Key_Right)
    QTest.keyClick(win, Qt.Key.Key_Space)  # ...and the third
    assert grid.model.marked == {page[0], page[2]}
    grid.show_page(grid.page)  # a resize redraws the page: the marks stay
    assert grid.model.marked == {page[0], page[2]}
    assert grid.model.data(grid.model.index(0)).startswith("✗")
    QTest.keyClick(win, Qt.Key.Key_Return)
    states = {i: win.project.record(i, win.class_id).state for i in page}
    assert [states[i] for i in page] == ["rejected", "accepted", "rejected", "accepted", "accepted", "accepted"]
    assert len(grid.queue) == 4 and grid.model.ids == grid.queue  # the next page: what is left
    assert "accepted 4 · proposed 4 · rejected 2" in win.image_list.counts.text()
    QTest.keyClick(win, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # undo: the whole page back
    assert all(win.project.record(i, win.class_id).state == "proposed" for i in page)
    assert len(grid.queue) == 10
    assert win.project.mask(page[0], win.class_id).sum() == _box().sum()  # pixels kept throughout
    grid.view.setFocus()
    QTest.keyClick(grid.view, Qt.Key.Key_PageDown)
    assert grid.page == 1 and len(grid.model.ids) == 4
    grid.view.doubleClicked.emit(grid.model.index(1))  # double-click opens the image to correct it
    assert win.centre.currentWidget() is win.canvas and win.image_id == grid.model.ids[1]


def test_bulk_accept_and_reject_show_their_count_first_and_undo(win):
    win.toggle_grid()
    grid = win.grid
    grid.threshold.setValue(0.7)
    assert grid.accept_above.text() == "Accept 3 ≥ 0.70"  # 0.75, 0.85, 0.95
    assert grid.reject_below.text() == "Reject 7 ≤ 0.70"
    grid.accept_above.click()
    assert _states(win).count("accepted") == 3 and len(grid.queue) == 7
    grid.threshold.setValue(0.2)
    assert grid.reject_below.text() == "Reject 2 ≤ 0.20"
    grid.reject_below.click()
    assert _states(win) == ["rejected"] * 2 + ["proposed"] * 5 + ["accepted"] * 3
    grid.undo_button.click()
    assert _states(win) == ["proposed"] * 7 + ["accepted"] * 3
    grid.undo()
    assert _states(win) == ["proposed"] * 10


def test_supports_are_marked_in_the_list_on_thumbnails_and_in_the_status_and_can_be_taken_back(win, qtbot):
    first = min(win.project.images)
    win.show_image(first)
    win.canvas.replace_mask(_box(5, 25, 10, 40))
    QTest.keyClick(win, Qt.Key.Key_S)
    row = win.images.row_of[first]
    qtbot.waitUntil(lambda: "supports 1" in win.image_list.counts.text(), timeout=2000)  # recounted soon after
    assert win.images.data(win.images.index(row, Column.SUPPORT)) == "★"
    assert "support" in win.images.data(win.images.index(row, Column.NAME), Qt.ItemDataRole.ToolTipRole)
    win.show_image(first)
    assert "★ support" in win.statusBar().currentMessage()
    assert "(1★)" in win.classes.currentItem().text()
    win.image_list.state_box.setCurrentIndex(win.image_list.state_box.findData("supports"))
    assert win.image_list.proxy.image_ids() == [first]
    QTest.keyClick(win, Qt.Key.Key_S, Qt.KeyboardModifier.ShiftModifier)
    assert win.images.data(win.images.index(row, Column.SUPPORT)) == ""
    assert win.image_list.proxy.rowCount() == 0 or win.image_list.proxy.image_ids() == []


def test_title_says_where_and_the_brush_box_hands_the_keys_back(win):
    win.show_image(sorted(win.project.images)[2])
    assert win.windowTitle().endswith("images [3/10]")
    win.activateWindow()
    shown = win.image_id
    for key in (Qt.Key.Key_Return, Qt.Key.Key_Escape):
        win.brush_spin.setFocus()
        win.brush_spin.selectAll()
        QTest.keyClicks(win.brush_spin, "17")
        QTest.keyClick(win.brush_spin, key)
        assert QApplication.focusWidget() is win.canvas  # the focus goes back to the canvas...
        assert win.image_id == shown and win.canvas.brush == 17  # ...and Enter set the size, accepting nothing
    QTest.keyClick(QApplication.focusWidget(), Qt.Key.Key_Right)  # the review keys work again
    assert win.image_id == sorted(win.project.images)[3]
    win.tolerance_spin.setFocus()  # the fill tolerance's box too
    win.tolerance_spin.selectAll()
    QTest.keyClicks(win.tolerance_spin, "30")
    QTest.keyClick(win.tolerance_spin, Qt.Key.Key_Return)
    assert QApplication.focusWidget() is win.canvas and win.canvas.fill_tolerance == 30


def test_last_image_class_and_filter_are_remembered_per_project(qtbot, folder, tmp_path):
    qs = _settings(tmp_path)
    w = MainWindow(folder, settings=qs)
    qtbot.addWidget(w)
    w._add_class_named("second")
    assert w.image_list.class_box.findText("second") > 0  # the list's class filter knows the new class
    w.project.rename_class(w.class_id, "renamed")
    w._fill_classes()
    assert w.image_list.class_box.findText("renamed") > 0 and w.image_list.class_box.findText("second") < 0
    target = sorted(w.project.images)[4]
    w.show_image(target)
    w.image_list.search.setText("0")
    w.image_list.state_box.setCurrentIndex(w.image_list.state_box.findData(State.ACCEPTED))
    chosen = w.class_id
    w.brush_spin.setValue(37)
    w.opacity.setValue(80)
    w.tolerance_spin.setValue(40)
    assert (w.canvas.brush, w.canvas.fill_tolerance) == (37, 40)
    w.close()
    again = MainWindow(folder, settings=qs)
    qtbot.addWidget(again)
    assert again.image_id == target and again.class_id == chosen
    assert again.image_list.search.text() == "0" and again.image_list.state_box.currentData() == State.ACCEPTED
    assert (again.canvas.brush, again.opacity.value(), again.canvas.fill_tolerance) == (37, 80, 40)
    again.close()
    other = tmp_path / "other"  # another project keeps its own
    other.mkdir()
    write_rgb(other / "a.png", scene(40, 50, None, 0, seed=1)[0])
    fresh = MainWindow(other, settings=qs)
    qtbot.addWidget(fresh)
    assert fresh.canvas.brush != 37 and fresh.canvas.fill_tolerance != 40
    fresh.close()


def test_file_dialogs_start_in_the_last_folder_used(qtbot, folder, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    w = MainWindow(folder, settings=_settings(tmp_path))
    qtbot.addWidget(w)
    asked = []

    def pick(parent, caption, start=""):
        asked.append(start)
        return str(folder)

    monkeypatch.setattr(QFileDialog, "getExistingDirectory", pick)
    w.choose_folder()
    w.choose_project()
    assert asked[1] == str(folder)  # the second dialog starts where the first one ended
    w.close()


def test_quitting_during_a_propagation_closes_within_a_second(qtbot, tmp_path):
    imgs = tmp_path / "big"
    imgs.mkdir()
    for i in range(40):
        write_rgb(imgs / f"{i:02d}.png", scene(240, 320, (120, 100), 40, seed=i)[0])
    w = MainWindow(imgs, settings=_settings(tmp_path))
    qtbot.addWidget(w)
    w.show()
    w.canvas.replace_mask(scene(240, 320, (120, 100), 40, seed=0)[1])
    w.add_support()
    w.propagate("all")
    # the first result follows the backbone on the support and the folder sample: minutes on 2 busy cores
    with qtbot.waitSignal(w.worker.result, timeout=300000):
        pass
    project_folder = w.project.folder
    t0 = time.perf_counter()
    w.close()
    took = time.perf_counter() - t0
    assert took < 1.0, f"closing mid-propagation took {took:.2f} s"
    with Project.open(project_folder, read_only=True) as proj:  # what was proposed before the quit is kept
        proposed = sum(proj.record(i, 1).state == State.PROPOSED for i in proj.images)
    assert 1 <= proposed < 39


def test_proposals_show_their_mask_on_the_thumbnails(win, qtbot):
    image_id = sorted(win.project.images)[0]
    index = win.images.index(win.images.row_of[image_id], 0)
    win.images.data(index, Qt.ItemDataRole.DecorationRole)
    qtbot.waitUntil(lambda: win.thumbnails.cached(image_id), timeout=5000)
    shown = win.thumbnails.get(image_id, 96).toImage()
    bare = load_thumbnail(win.project.image_path(image_id), 96)
    color = QColor(win.project.classes[win.class_id].color)
    scale = shown.width() / 80
    for (y, x), masked in (((20, 35), True), ((50, 70), False)):
        px, orig = shown.pixelColor(int(x * scale), int(y * scale)), bare.pixelColor(int(x * scale), int(y * scale))
        for got, was, tint in zip(px.getRgb()[:3], orig.getRgb()[:3], color.getRgb()[:3]):
            assert abs(got - ((was + tint) / 2 if masked else was)) <= 2


def test_the_image_fits_on_show_and_on_resize_until_the_user_zooms_and_the_zoom_is_shown(win, qtbot):
    canvas = win.canvas
    win.show_image(min(win.project.images))
    qtbot.waitUntil(lambda: win.zoom_label.text().endswith("%"))
    scale = canvas.transform().m11()
    assert scale > 2  # a 80x60 image is blown up to the view, not shown tiny
    assert win.zoom_label.text() == f"{100 * scale:.0f}%"
    win.resize(700, 500)
    qtbot.waitUntil(lambda: canvas.transform().m11() < scale)  # fitted again to the smaller window
    canvas.zoom(1.25)
    zoomed = canvas.transform().m11()
    assert win.zoom_label.text() == f"{100 * zoomed:.0f}%"
    win.resize(1300, 900)
    qtbot.wait(50)
    assert canvas.transform().m11() == zoomed  # the user's zoom is kept


def _lightness(icon_or_palette) -> float:
    """The mean lightness of an icon's drawn pixels, or of a palette's window colour."""
    if isinstance(icon_or_palette, QPalette):
        return icon_or_palette.color(QPalette.ColorRole.Window).lightnessF()
    img = icon_or_palette.pixmap(48, 48).toImage()
    drawn = [img.pixelColor(x, y) for y in range(48) for x in range(48) if img.pixelColor(x, y).alpha() > 200]
    assert drawn, "the icon draws nothing"
    return sum(c.lightnessF() for c in drawn) / len(drawn)


def test_the_toolbar_has_an_icon_for_every_action_and_the_theme_switches_follows_the_system_and_is_kept(
    win, qtbot, tmp_path
):
    bar = win.findChild(QToolBar, "tools")
    shown = [a for a in bar.actions() if not a.isSeparator() and a.text()]
    assert [a.text() for a in shown[: len(TOOLBAR) - TOOLBAR.count("-")]] == [
        win.named_actions[n].text() for n in TOOLBAR if n != "-"
    ]
    for name in TOOLBAR:
        if name != "-":
            assert not win.named_actions[name].icon().isNull(), name
    try:
        assert _lightness(QApplication.palette()) > 0.6  # offscreen reports no scheme: light
        dark_icon = _lightness(win.named_actions["brush"].icon())
        win.named_actions["theme_dark"].trigger()
        assert _lightness(QApplication.palette()) < 0.3
        assert _lightness(win.named_actions["brush"].icon()) > dark_icon + 0.5  # redrawn light on dark
        assert win.qs.value("theme") == "dark"
        again = MainWindow(None, settings=win.qs)  # the next start keeps the choice
        qtbot.addWidget(again)
        assert again.named_actions["theme_dark"].isChecked() and _lightness(QApplication.palette()) < 0.3
        again.close()
        win.named_actions["theme_light"].trigger()
        assert _lightness(QApplication.palette()) > 0.6
        win.named_actions["theme_system"].trigger()
        with patch("annotator.app.theme.system_is_dark", return_value=True):
            QGuiApplication.styleHints().colorSchemeChanged.emit(Qt.ColorScheme.Dark)  # the system turns dark
            assert _lightness(QApplication.palette()) < 0.3
        win.named_actions["theme_light"].trigger()  # a chosen theme no longer follows the system
        with patch("annotator.app.theme.system_is_dark", return_value=True):
            QGuiApplication.styleHints().colorSchemeChanged.emit(Qt.ColorScheme.Dark)
            assert _lightness(QApplication.palette()) > 0.6
    finally:
        win.theme.set_theme(Theme.SYSTEM)


def test_the_name_column_shows_the_longest_relative_path_whole(qtbot, tmp_path):
    imgs = tmp_path / "images"
    deep = imgs / "a_rather_long_folder_name_from_a_camera" / "session_2026_12_03_morning"
    deep.mkdir(parents=True)
    for i in range(3):
        write_rgb(deep / f"frame_{i:06d}_left_camera.png", scene(40, 60, (20, 20), 8, seed=i)[0])
    w = MainWindow(imgs, settings=_settings(tmp_path))
    qtbot.addWidget(w)
    w.show()
    table = w.image_list.table
    longest = max((w.images.name(i) for i in w.images.ids), key=len)
    assert "/" in longest
    assert table.columnWidth(Column.NAME) >= table.fontMetrics().horizontalAdvance(longest) + THUMB
    w.close()


def test_the_list_and_class_list_observe_the_project_even_for_changes_made_on_other_threads(win, qtbot, tmp_path):
    import threading

    image_id = sorted(win.project.images)[3]
    row = win.images.index(win.images.row_of[image_id], Column.STATE)
    assert win.images.data(row, Qt.ItemDataRole.DisplayRole).endswith("proposed")
    t = threading.Thread(target=lambda: win.project.set_state(image_id, win.class_id, State.REJECTED))
    t.start()  # as a propagation or the session's writer changes it: off the GUI thread
    t.join()
    qtbot.waitUntil(lambda: win.images.data(row, Qt.ItemDataRole.DisplayRole).endswith("rejected"), timeout=2000)
    qtbot.waitUntil(lambda: "rejected 1" in win.image_list.counts.text(), timeout=2000)
    win.project.rename_class(win.class_id, "zebra")  # the class list hears of it, with nothing else told
    assert win.classes.currentItem().text().startswith("zebra")
    old, model = win.project, win.images
    other = tmp_path / "other"
    other.mkdir()
    write_rgb(other / "x.png", scene(60, 80, (30, 30), 10, seed=1)[0])
    win.open_path(other)  # the old project is closed: its views no longer observe it
    assert win.project is not old and win.images is not model
    assert all(not e._callbacks for e in (old.events.record, old.events.classes, old.events.supports))
