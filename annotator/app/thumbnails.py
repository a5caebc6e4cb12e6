"""Thumbnails with the class's mask blended in, decoded off the GUI thread, shared by the strip, the image
list and the review grid.

Only what a view shows asks for a thumbnail, and an LRU cache bounds how many are kept, so a folder of
10,000 images opens at once and stays small. A thumbnail is keyed by its mask file, so a changed mask is
decoded again and an unchanged one never is.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import cv2
import numpy as np
from PySide6.QtCore import QObject, QRunnable, Qt, QThreadPool, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPixmap

from annotator.config import State
from annotator.project.store import Project, ProjectError

STATE_COLORS = {
    State.UNLABELLED: QColor(90, 90, 90),
    State.PROPOSED: QColor(230, 160, 30),
    State.ACCEPTED: QColor(40, 170, 60),
    State.REJECTED: QColor(200, 50, 50),
}
STATE_MARK = {State.UNLABELLED: "", State.PROPOSED: "?", State.ACCEPTED: "✓", State.REJECTED: "✗"}
SUPPORT_MARK = "★"


def load_thumbnail(path: Path, size: int) -> QImage:
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


def blend_mask(image: QImage, mask: np.ndarray, color: QColor, alpha: float = 0.5) -> QImage:
    """`image` (RGB888) with `mask` (any size, bool) resized onto it and painted in `color` at `alpha`."""
    w, h = image.width(), image.height()
    rgb = np.frombuffer(image.constBits(), np.uint8).reshape(h, image.bytesPerLine())[:, : 3 * w].reshape(h, w, 3)
    small = cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
    out = rgb.copy()
    out[small] = (out[small] * (1 - alpha) + np.array(color.getRgb()[:3]) * alpha).astype(np.uint8)
    return QImage(out.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


class _Signals(QObject):
    done = Signal(object, QImage)


class _Job(QRunnable):
    def __init__(self, key: tuple, project: Project, class_id: int | None, color: QColor, signals: _Signals) -> None:
        super().__init__()
        self.key, self.project, self.class_id, self.color, self.signals = key, project, class_id, color, signals

    def run(self) -> None:
        image_id, mask_name, size = self.key
        image = load_thumbnail(self.project.image_path(image_id), size)
        if mask_name is not None and not image.isNull():
            try:
                mask = self.project.mask(image_id, self.class_id)
            except ProjectError:  # a damaged mask shows the bare image; opening it says what is wrong
                mask = None
            if mask is not None:
                image = blend_mask(image, mask, self.color)
        self.signals.done.emit(self.key, image)


class Thumbnails(QObject):
    """Thumbnails of a project's images at any size, with the chosen class's mask on them; `ready(image_id)`
    says one has arrived (views then repaint that image)."""

    ready = Signal(int)

    def __init__(self, project: Project, parent: QObject | None = None, cache_size: int = 1500) -> None:
        super().__init__(parent)
        self.project = project
        self.class_id: int | None = None
        self._cache: OrderedDict[tuple, QPixmap] = OrderedDict()
        self._pending: set[tuple] = set()
        self._cache_size = cache_size
        self._signals = _Signals()
        self._signals.done.connect(self._loaded)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(2)

    def set_class(self, class_id: int | None) -> None:
        self.class_id = class_id

    def key(self, image_id: int, size: int) -> tuple:
        rec = self.project.record(image_id, self.class_id) if self.class_id is not None else None
        return image_id, (rec.mask if rec else None), size

    def get(self, image_id: int, size: int) -> QPixmap | None:
        """The thumbnail as it is now, or None while it is being made (then `ready` follows)."""
        key = self.key(image_id, size)
        pix = self._cache.get(key)
        if pix is not None:
            self._cache.move_to_end(key)
            return pix
        if key not in self._pending:
            self._pending.add(key)
            color = QColor(self.project.classes[self.class_id].color) if self.class_id in self.project.classes else None
            self._pool.start(_Job(key, self.project, self.class_id, color, self._signals))
        return None

    def cached(self, image_id: int) -> bool:
        return any(k[0] == image_id for k in self._cache)

    def _loaded(self, key: tuple, image: QImage) -> None:
        self._pending.discard(key)
        if image.isNull():
            image = QImage(key[2], key[2], QImage.Format.Format_RGB888)
            image.fill(QColor(60, 60, 60))
        self._cache[key] = QPixmap.fromImage(image)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        self.ready.emit(key[0])

    def shutdown(self) -> None:
        """Wait for thumbnail jobs still running (on close)."""
        self._pool.clear()
        self._pool.waitForDone(2000)


def with_badge(pix: QPixmap, state: State, support: bool) -> QPixmap:
    """A copy of a thumbnail with its state's colour as a frame and its mark (and the support star) in a corner."""
    out = QPixmap(pix)
    p = QPainter(out)
    color = STATE_COLORS[state]
    if state != State.UNLABELLED:
        pen = p.pen()
        pen.setColor(color)
        pen.setWidth(4)
        p.setPen(pen)
        p.drawRect(out.rect().adjusted(2, 2, -2, -2))
    mark = (SUPPORT_MARK if support else "") + STATE_MARK[state]
    if mark:
        font = p.font()
        font.setPixelSize(max(10, out.height() // 7))
        font.setBold(True)
        p.setFont(font)
        box = p.fontMetrics().boundingRect(mark).adjusted(-3, -1, 3, 1)
        box.moveTopLeft(out.rect().topLeft())
        p.fillRect(box, color if state != State.UNLABELLED else QColor(40, 40, 40))
        p.setPen(QColor("white"))
        p.drawText(box, Qt.AlignmentFlag.AlignCenter, mark)
    p.end()
    return out
