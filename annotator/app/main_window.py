"""The main window. For now it shows the opened folder's images; the editing app comes with its own issue."""
from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QFileDialog, QLabel, QListWidget, QMainWindow, QVBoxLayout, QWidget

from annotator.imageio import ImageReadError, list_images


class MainWindow(QMainWindow):
    """A window listing the images of a folder."""

    def __init__(self, folder: Path | None = None) -> None:
        super().__init__()
        self.setWindowTitle("annotator")
        self.resize(900, 600)
        self.status = QLabel("Open a folder of images (Ctrl+O).")
        self.images = QListWidget()
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.addWidget(self.status)
        layout.addWidget(self.images)
        self.setCentralWidget(body)
        menu = self.menuBar().addMenu("&File")
        menu.addAction("&Open folder…", "Ctrl+O", self.choose_folder)
        menu.addAction("&Quit", "Ctrl+Q", self.close)
        if folder is not None:
            self.open_folder(folder)

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a folder of images")
        if folder:
            self.open_folder(Path(folder))

    def open_folder(self, folder: Path) -> None:
        """List the folder's images, or say why it cannot be opened."""
        try:
            paths = list_images(folder)
        except ImageReadError as exc:
            self.status.setText(str(exc))
            return
        self.images.clear()
        self.images.addItems([p.relative_to(folder).as_posix() for p in paths])
        self.status.setText(f"{folder}: {len(paths)} images")


def launch(argv: list[str]) -> int:
    """Run the Qt event loop with a main window; argv[0], when given, is a folder to open."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    win = MainWindow(Path(argv[0]) if argv else None)
    win.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    win.show()
    return app.exec()
