"""The window opens a folder given on the command line and lists its images."""
from __future__ import annotations

from annotator.app.main_window import MainWindow
from tests.synthetic import scene, write_rgb


def test_window_lists_the_folder(qtbot, tmp_path):
    for name in ("b.png", "a.png"):
        write_rgb(tmp_path / name, scene(20, 30, None, 0, seed=1)[0])
    win = MainWindow(tmp_path)
    qtbot.addWidget(win)
    assert [win.images.item(i).text() for i in range(win.images.count())] == ["a.png", "b.png"]
    assert "2 images" in win.status.text()


def test_window_says_when_the_folder_is_gone(qtbot, tmp_path):
    win = MainWindow(tmp_path / "gone")
    qtbot.addWidget(win)
    assert "no such folder" in win.status.text()
