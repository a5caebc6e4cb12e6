"""Takes the README's screenshots: the app mid-review on real DAVIS frames (the image list filtered to the
proposals, by score), then the review grid, on the X display it is given.

Run under Xvfb:  xvfb-run -s "-screen 0 1600x1000x24" .venv/bin/python scripts/screenshot.py resources/screenshot.png
(the grid goes beside it, as review_grid.png); a second argument, dark, takes them in the dark theme (name them
screenshot_dark.png: the grid's is then review_grid_dark.png).
The frames are copied to a temporary folder; the support mask is the data's hand-made mask of the
first frame, put on the canvas as if painted.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtWidgets import QApplication

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from annotator.app.dialogs import ModelSettings  # noqa: E402
from annotator.app.image_list import Column  # noqa: E402
from annotator.app.main_window import MainWindow  # noqa: E402
from annotator.config import State  # noqa: E402
from annotator.io.imageio import read_mask  # noqa: E402
from benchmarks import davis  # noqa: E402


def main(out: Path, theme: str = "light") -> None:
    if not davis.available():
        sys.exit(davis.ABSENT)
    tmp = Path(tempfile.mkdtemp())
    folder = tmp / "cars"
    folder.mkdir()
    frames = [f for seq in ("car-roundabout", "car-shadow", "drift-straight", "dog") for f in davis.frames(seq)[::3]]
    for img, _ in frames:
        shutil.copy(img, folder / f"{img.parent.name}_{img.name}")
    app = QApplication.instance() or QApplication([])
    qs = QSettings(str(tmp / "s.ini"), QSettings.Format.IniFormat)
    ModelSettings(crf=True, device="auto").save(qs)
    qs.setValue("theme", theme)
    win = MainWindow(folder, settings=qs)
    win.resize(1580, 980)
    win.show()
    win.project.rename_class(win.class_id, "car")
    win._fill_classes()
    win.canvas.replace_mask(read_mask(frames[0][1]))
    win.add_support()
    win.propagate("all")

    def after() -> None:
        lst = win.image_list
        lst.state_box.setCurrentIndex(lst.state_box.findData(State.PROPOSED))
        lst.table.sortByColumn(Column.SCORE, Qt.SortOrder.AscendingOrder)
        win.review_action.trigger()
        win.step(2)
        win.opacity.setValue(55)
        QTimer.singleShot(1500, lambda: shoot(out, grid))

    def grid() -> None:
        win.toggle_grid()
        win.grid.move(3)
        win.reject_current()  # one proposal marked to reject
        win.grid.move(2)
        QTimer.singleShot(2500, lambda: shoot(out.with_name(out.name.replace("screenshot", "review_grid")), done))

    def shoot(path: Path, then) -> None:
        app.processEvents()
        screen = app.primaryScreen()
        screen.grabWindow(0).copy(win.frameGeometry()).save(str(path))  # the X display, as a person sees it
        print(f"wrote {path}")
        then()

    def done() -> None:
        win.close()
        app.quit()

    def wait() -> None:
        if win.worker is not None:
            QTimer.singleShot(200, wait)
            return
        print(win.statusBar().currentMessage())
        QTimer.singleShot(500, after)

    wait()
    app.exec()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "resources/screenshot.png"), *sys.argv[2:3])
