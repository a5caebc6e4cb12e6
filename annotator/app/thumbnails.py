"""The thumbnail strip's model: one row per project image, thumbnails decoded lazily off the GUI thread.

Only rows that are shown ask for a thumbnail, and an LRU cache bounds how many are kept, so a
folder of 10,000 images opens at once and stays small.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

from PySide6.QtCore import QAbstractListModel, QModelIndex, QObject, QRunnable, QSize, Qt, QThreadPool, Signal
from PySide6.QtGui import QColor, QImage, QPixmap

from annotator.config import State
from annotator.project import Project

THUMB = 96
STATE_COLORS = {
    State.UNLABELLED: QColor(90, 90, 90),
    State.PROPOSED: QColor(230, 160, 30),
    State.ACCEPTED: QColor(40, 170, 60),
    State.REJECTED: QColor(200, 50, 50),
}
STATE_MARK = {State.UNLABELLED: "", State.PROPOSED: "?", State.ACCEPTED: "✓", State.REJECTED: "✗"}
ImageIdRole = Qt.ItemDataRole.UserRole + 1


def load_thumbnail(path: Path, size: int = THUMB) -> QImage:
    """A small EXIF-upright QImage of an image file (JPEG decoded at reduced size); null if unreadable."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as im:
            im.draft("RGB", (size * 2, size * 2))
            im = ImageOps.exif_transpose(im).convert("RGB")
            im.thumbnail((size, size))
            data = im.tobytes()
            return QImage(data, im.width, im.height, 3 * im.width, QImage.Format.Format_RGB888).copy()
    except Exception:  # any unreadable file just has no thumbnail; the canvas reports the error
        return QImage()


class _Signals(QObject):
    done = Signal(int, QImage)


class _Job(QRunnable):
    def __init__(self, image_id: int, path: Path, signals: _Signals) -> None:
        super().__init__()
        self.image_id, self.path, self.signals = image_id, path, signals

    def run(self) -> None:
        self.signals.done.emit(self.image_id, load_thumbnail(self.path))


class ThumbnailModel(QAbstractListModel):
    """Rows = project images in id order; shows name, state mark and score of the current class."""

    def __init__(self, project: Project, parent=None, cache_size: int = 1500) -> None:
        super().__init__(parent)
        self.project = project
        self.ids = sorted(project.images)
        self.row_of = {i: r for r, i in enumerate(self.ids)}
        self.class_id: int | None = None
        self._cache: OrderedDict[int, QPixmap] = OrderedDict()
        self._pending: set[int] = set()
        self._cache_size = cache_size
        self._signals = _Signals()
        self._signals.done.connect(self._loaded)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(2)
        self._placeholder = QPixmap(THUMB, THUMB)
        self._placeholder.fill(QColor(60, 60, 60))

    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.ids)

    def set_class(self, class_id: int | None) -> None:
        self.class_id = class_id
        self.refresh_all()

    def refresh_all(self) -> None:
        if self.ids:
            self.dataChanged.emit(self.index(0), self.index(len(self.ids) - 1))

    def refresh(self, image_id: int) -> None:
        row = self.row_of.get(image_id)
        if row is not None:
            self.dataChanged.emit(self.index(row), self.index(row))

    def _record(self, image_id: int):
        return self.project.record(image_id, self.class_id) if self.class_id is not None else None

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        image_id = self.ids[index.row()]
        rec = self._record(image_id)
        state = rec.state if rec else State.UNLABELLED
        if role == Qt.ItemDataRole.DisplayRole:
            name = Path(self.project.images[image_id].file).name
            name = name if len(name) <= 16 else name[:7] + "…" + name[-8:]
            if rec and rec.state == State.PROPOSED and rec.mask is None:
                return f"∅ {name}"  # proposed as absent
            score = f" {rec.score:.2f}" if rec and rec.state == State.PROPOSED and rec.score is not None else ""
            return f"{STATE_MARK[state]}{score} {name}".strip()
        if role == Qt.ItemDataRole.DecorationRole:
            pix = self._cache.get(image_id)
            if pix is None:
                self._request(image_id)
                return self._placeholder
            self._cache.move_to_end(image_id)
            return pix
        if role == Qt.ItemDataRole.BackgroundRole:
            return STATE_COLORS[state].darker(250) if state != State.UNLABELLED else None
        if role == Qt.ItemDataRole.ToolTipRole:
            tip = f"{self.project.images[image_id].file}\n{state}"
            return tip + (f" (score {rec.score:.3f})" if rec and rec.score is not None else "")
        if role == ImageIdRole:
            return image_id
        if role == Qt.ItemDataRole.SizeHintRole:
            return QSize(THUMB + 16, THUMB + 28)
        return None

    def _request(self, image_id: int) -> None:
        if image_id in self._pending:
            return
        self._pending.add(image_id)
        self._pool.start(_Job(image_id, self.project.image_path(image_id), self._signals))

    def _loaded(self, image_id: int, image: QImage) -> None:
        self._pending.discard(image_id)
        self._cache[image_id] = QPixmap.fromImage(image) if not image.isNull() else self._placeholder
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        self.refresh(image_id)

    def shutdown(self) -> None:
        """Wait for thumbnail jobs still running (on close)."""
        self._pool.clear()
        self._pool.waitForDone(2000)
