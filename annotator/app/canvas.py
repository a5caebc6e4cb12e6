"""The painting canvas: an image with its mask as a coloured overlay, zoom and pan, and the tools
(brush, eraser, polygon/lasso, flood fill) with undo/redo of every edit of the image.

The mask is an instance label map (0 = background, 1..N = instances of the class, each in its own shade of the
class colour); the tools paint the current instance, the eraser clears any, and N starts a new one.

Strokes touch only the bounding box they cover, in the mask and in the overlay, so a brush dab on a
4000x3000 photo costs what its few hundred pixels cost.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPainterPath, QPen, QPixmap, QPolygonF
from PySide6.QtWidgets import (
    QGraphicsEllipseItem,
    QGraphicsItem,
    QGraphicsPathItem,
    QGraphicsPixmapItem,
    QGraphicsScene,
    QGraphicsView,
)

TOOLS = ("brush", "eraser", "polygon", "fill")
MAX_OUTLINED = 32  # instances outlined one by one; beyond, their union (each outline costs a pass over the image)
VERTEX_PX = 7  # a polygon vertex's handle, in screen pixels (also how near a press must be to grab it)
SHADES = (100, 145, 65, 185, 50, 125, 80, 165)  # QColor.lighter factors of instances 1, 2, ... (cycling)


@dataclass
class Edit:
    """One undoable edit: the label patch at (y, x) before and after."""

    y: int
    x: int
    before: np.ndarray
    after: np.ndarray


def rgb_qimage(rgb: np.ndarray) -> QImage:
    """A QImage that owns a copy of an RGB uint8 array."""
    h, w = rgb.shape[:2]
    return QImage(np.ascontiguousarray(rgb).data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


def instance_shades(color: QColor) -> np.ndarray:
    """BGRA colours [65536,4] by label: transparent for 0, then `color` and its shades in turn (SHADES)."""
    lut = np.zeros((1 << 16, 4), np.uint8)
    shades = [color.lighter(f) for f in SHADES]
    table = np.array([[c.blue(), c.green(), c.red(), 255] for c in shades], np.uint8)  # BGRA in memory
    lut[1:] = table[np.arange((1 << 16) - 1) % len(SHADES)]
    return lut


class OverlayItem(QGraphicsItem):
    """Draws the label map as premultiplied ARGB, each instance in its shade, repainting only the exposed part."""

    def __init__(self) -> None:
        super().__init__()
        self.buffer = np.zeros((1, 1, 4), np.uint8)
        self.image = QImage()
        self.lut = instance_shades(QColor(255, 0, 0))

    def set_size(self, h: int, w: int) -> None:
        self.prepareGeometryChange()
        self.buffer = np.zeros((h, w, 4), np.uint8)
        self.image = QImage(self.buffer.data, w, h, 4 * w, QImage.Format.Format_ARGB32_Premultiplied)

    def set_color(self, color: QColor) -> None:
        self.lut = instance_shades(color)

    def refresh(self, labels: np.ndarray, y0: int = 0, x0: int = 0, y1: int | None = None, x1: int | None = None):
        """Recolour the overlay from `labels` in [y0:y1, x0:x1] and schedule a repaint of that rectangle."""
        y1 = labels.shape[0] if y1 is None else y1
        x1 = labels.shape[1] if x1 is None else x1
        self.buffer[y0:y1, x0:x1] = self.lut[labels[y0:y1, x0:x1]]
        self.update(QRectF(x0, y0, x1 - x0, y1 - y0))

    def boundingRect(self) -> QRectF:
        return QRectF(0, 0, self.buffer.shape[1], self.buffer.shape[0])

    def paint(self, painter: QPainter, option, widget=None) -> None:
        r = option.exposedRect.toAlignedRect().intersected(self.boundingRect().toAlignedRect())
        if not r.isEmpty():
            painter.drawImage(r, self.image, r)


class Canvas(QGraphicsView):
    """Shows one image and edits its instance label map. Emits `edited` after every finished edit (undo/redo too)."""

    edited = Signal()
    brush_changed = Signal(int)
    zoomed = Signal(float)  # the view's scale (1.0 = 100%)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setDragMode(QGraphicsView.DragMode.NoDrag)
        self.setMouseTracking(True)
        self.setBackgroundBrush(QColor(40, 40, 40))
        self.image_item = QGraphicsPixmapItem()
        self.overlay = OverlayItem()
        self.overlay.setOpacity(0.5)
        self.outline = QGraphicsPathItem()
        self.outline.setPen(QPen(QColor(255, 255, 255), 0))
        self.cursor_item = QGraphicsEllipseItem()
        self.cursor_item.setPen(QPen(QColor(255, 255, 255), 0, Qt.PenStyle.DashLine))
        self.poly_item = QGraphicsPathItem()
        self.poly_item.setPen(QPen(QColor(255, 255, 0), 0))
        for z, item in enumerate((self.image_item, self.overlay, self.outline, self.poly_item, self.cursor_item)):
            item.setZValue(z)
            self.scene().addItem(item)
        self.labels = np.zeros((1, 1), np.uint16)
        self.instance = 1  # the label the brush, polygon and fill paint
        self.rgb: np.ndarray | None = None
        self.tool = "brush"
        self.brush = 20
        self.fill_tolerance = 12
        self.undo_stack: list[Edit] = []
        self.redo_stack: list[Edit] = []
        self._before: np.ndarray | None = None
        self._box: list[int] | None = None
        self._last: tuple[int, int] | None = None
        self._poly: list[tuple[float, float]] = []
        self._lasso = 0  # points added by dragging since the last press
        self._vertex: int | None = None  # the polygon vertex being dragged
        self._panning: QPointF | None = None
        self.show_outline = True
        self.fitted = True  # fit to the view (also after a resize) until the user zooms

    # ---- content --------------------------------------------------------------------------
    @property
    def mask(self) -> np.ndarray:
        """The union of the instances, boolean (a copy)."""
        return self.labels > 0

    def set_image(self, rgb: np.ndarray, labels: np.ndarray | None, color: QColor) -> None:
        """Show a new image with its mask (boolean, or an instance label map; or none); clears the undo history.
        The tools go on painting the last instance."""
        self.rgb = rgb
        h, w = rgb.shape[:2]
        self.image_item.setPixmap(QPixmap.fromImage(rgb_qimage(rgb)))
        self.labels = np.zeros((h, w), np.uint16) if labels is None else labels.astype(np.uint16)
        self._set_instance(max(1, int(self.labels.max())))
        self.overlay.set_size(h, w)
        self.overlay.set_color(color)
        self.overlay.refresh(self.labels)
        self.scene().setSceneRect(QRectF(0, 0, w, h))
        self.undo_stack.clear()
        self.redo_stack.clear()
        self._poly.clear()
        self.poly_item.setPath(QPainterPath())
        self.update_outline()
        self.fit()

    def set_color(self, color: QColor) -> None:
        self.overlay.set_color(color)
        self.overlay.refresh(self.labels)

    def new_instance(self) -> int:
        """Paint a new instance from now on (the next free label; the current one while it has no pixel yet)."""
        if (self.labels == self.instance).any():
            self._set_instance(int(self.labels.max()) + 1)
        return self.instance

    def _set_instance(self, instance: int) -> None:
        self.instance = min(instance, (1 << 16) - 1)  # the label maps are 16-bit

    def set_opacity(self, value: float) -> None:
        self.overlay.setOpacity(max(0.0, min(1.0, value)))

    def set_tool(self, tool: str) -> None:
        if tool not in TOOLS:
            raise ValueError(tool)
        self.tool = tool
        self._poly.clear()
        self.poly_item.setPath(QPainterPath())
        self._update_cursor(None)

    def set_brush(self, size: int) -> None:
        self.brush = int(max(1, min(500, size)))
        self.brush_changed.emit(self.brush)
        self._update_cursor(None)

    # ---- view -----------------------------------------------------------------------------
    def fit(self) -> None:
        """Fit the image to the view; it stays fitted as the window is resized, until the user zooms."""
        self.fitInView(self.scene().sceneRect(), Qt.AspectRatioMode.KeepAspectRatio)
        self.fitted = True
        self.zoomed.emit(self.transform().m11())

    def actual_size(self) -> None:
        self.resetTransform()
        self.fitted = False
        self.zoomed.emit(1.0)

    def zoom(self, factor: float) -> None:
        """Zoom by `factor` (around the cursor, for the wheel)."""
        self.scale(factor, factor)
        self.fitted = False
        self.zoomed.emit(self.transform().m11())

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self.fitted:
            self.fit()

    def wheelEvent(self, event) -> None:
        self.zoom(1.25 if event.angleDelta().y() > 0 else 0.8)

    # ---- editing --------------------------------------------------------------------------
    def _pixel(self, pos) -> tuple[int, int]:
        p = self.mapToScene(pos)
        return int(p.x()), int(p.y())

    def _begin(self) -> None:
        self._before = self.labels.copy()
        self._box = None

    def _grow(self, x0: int, y0: int, x1: int, y1: int) -> tuple[int, int, int, int]:
        h, w = self.labels.shape
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
        b = self._box
        self._box = [x0, y0, x1, y1] if b is None else [min(b[0], x0), min(b[1], y0), max(b[2], x1), max(b[3], y1)]
        return x0, y0, x1, y1

    def _dab(self, a: tuple[int, int], b: tuple[int, int]) -> None:
        r = self.brush // 2 + 1
        x0, y0, x1, y1 = self._grow(
            min(a[0], b[0]) - r, min(a[1], b[1]) - r, max(a[0], b[0]) + r + 1, max(a[1], b[1]) + r + 1
        )
        if x0 >= x1 or y0 >= y1:
            return
        sub = self.labels[y0:y1, x0:x1]
        value = self.instance if self.tool == "brush" else 0
        cv2.line(
            sub,
            (a[0] - x0, a[1] - y0),
            (b[0] - x0, b[1] - y0),
            value,
            thickness=max(1, self.brush),
            lineType=cv2.LINE_8,
        )
        self.overlay.refresh(self.labels, y0, x0, y1, x1)

    def _commit(self) -> None:
        if self._before is None:
            return
        before, self._before = self._before, None
        if self._box is None:
            return
        x0, y0, x1, y1 = self._box
        old, new = before[y0:y1, x0:x1], self.labels[y0:y1, x0:x1]
        if np.array_equal(old, new):
            return
        self.undo_stack.append(Edit(y0, x0, old.copy(), new.copy()))
        self.redo_stack.clear()
        self.update_outline()
        self.edited.emit()

    def _apply(self, edit: Edit, patch: np.ndarray) -> None:
        h, w = patch.shape
        self.labels[edit.y : edit.y + h, edit.x : edit.x + w] = patch
        self.overlay.refresh(self.labels, edit.y, edit.x, edit.y + h, edit.x + w)
        self.update_outline()
        self.edited.emit()

    def undo(self) -> None:
        if self.undo_stack:
            edit = self.undo_stack.pop()
            self.redo_stack.append(edit)
            self._apply(edit, edit.before)

    def redo(self) -> None:
        if self.redo_stack:
            edit = self.redo_stack.pop()
            self.undo_stack.append(edit)
            self._apply(edit, edit.after)

    def replace_mask(self, mask: np.ndarray) -> None:
        """Set the whole mask (boolean: one instance; or a label map) as one undoable edit (clear, invert, a
        proposal taken over)."""
        self._begin()
        self._grow(0, 0, self.labels.shape[1], self.labels.shape[0])
        self.labels[:] = mask
        self.overlay.refresh(self.labels)
        self._set_instance(max(1, int(self.labels.max())))
        self._commit()

    def fill_polygon(self, points: list[tuple[float, float]], erase: bool = False) -> None:
        if len(points) < 3:
            return
        pts = np.round(np.array(points)).astype(np.int32)
        self._begin()
        x0, y0 = pts.min(0)
        x1, y1 = pts.max(0) + 1
        x0, y0, x1, y1 = self._grow(x0, y0, x1, y1)
        if x0 < x1 and y0 < y1:
            cv2.fillPoly(self.labels[y0:y1, x0:x1], [pts - [x0, y0]], 0 if erase else self.instance)
            self.overlay.refresh(self.labels, y0, x0, y1, x1)
        self._commit()

    def flood_fill(self, x: int, y: int, erase: bool = False) -> None:
        """Add (or with erase, remove) the region of similar colour around (x, y)."""
        if self.rgb is None or not (0 <= x < self.labels.shape[1] and 0 <= y < self.labels.shape[0]):
            return
        h, w = self.labels.shape
        region = np.zeros((h + 2, w + 2), np.uint8)
        t = (self.fill_tolerance,) * 3
        flags = 4 | cv2.FLOODFILL_MASK_ONLY | cv2.FLOODFILL_FIXED_RANGE | (1 << 8)
        cv2.floodFill(np.ascontiguousarray(self.rgb), region, (x, y), (0, 0, 0), t, t, flags)
        sel = region[1:-1, 1:-1].astype(bool)
        ys, xs = np.nonzero(sel)
        self._begin()
        x0, y0, x1, y1 = self._grow(xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        self.labels[y0:y1, x0:x1][sel[y0:y1, x0:x1]] = 0 if erase else self.instance
        self.overlay.refresh(self.labels, y0, x0, y1, x1)
        self._commit()

    def update_outline(self) -> None:
        """Redraw the outline of each instance (of their union beyond MAX_OUTLINED instances), or clear it when
        outlines are off."""
        path = QPainterPath()
        top = int(self.labels.max()) if self.show_outline else 0
        if top:
            ids = [1]  # one instance (the usual case) costs one comparison; several, a count over the mask only
            if top > 1:
                ids = np.flatnonzero(np.bincount(self.labels[self.labels > 0], minlength=top + 1)).tolist()
            parts = [self.labels == k for k in ids] if len(ids) <= MAX_OUTLINED else [self.mask]
            for part in parts:
                contours, _ = cv2.findContours(part.view(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
                for c in contours:
                    pts = c.reshape(-1, 2)
                    path.addPolygon(QPolygonF([QPointF(float(px) + 0.5, float(py) + 0.5) for px, py in pts]))
                    path.closeSubpath()
        self.outline.setPath(path)

    @property
    def drawing_polygon(self) -> bool:
        """True while polygon vertices are placed but not yet closed."""
        return self.tool == "polygon" and bool(self._poly)

    def _update_cursor(self, pos) -> None:
        if pos is None or self.tool not in ("brush", "eraser"):
            self.cursor_item.setVisible(False)
            return
        p = self.mapToScene(pos)
        r = self.brush / 2
        self.cursor_item.setRect(QRectF(p.x() - r, p.y() - r, 2 * r, 2 * r))
        self.cursor_item.setVisible(True)

    def _show_poly(self, extra: tuple[float, float] | None = None) -> None:
        """The polygon being drawn, with a handle on each vertex (the vertices can be dragged until it is closed)."""
        path = QPainterPath()
        pts = self._poly + ([extra] if extra else [])
        if pts:
            path.addPolygon(QPolygonF([QPointF(x, y) for x, y in pts]))
            r = VERTEX_PX / 2 / max(self.transform().m11(), 1e-6)  # a few screen pixels at any zoom
            for x, y in self._poly if self._lasso == 0 else ():
                path.addRect(QRectF(x - r, y - r, 2 * r, 2 * r))
        self.poly_item.setPath(path)

    def _vertex_at(self, pos) -> int | None:
        """The index of the polygon vertex within VERTEX_PX screen pixels of view position `pos`, if any."""
        for i, (x, y) in enumerate(self._poly):
            d = self.mapFromScene(QPointF(x, y)) - pos
            if abs(d.x()) <= VERTEX_PX and abs(d.y()) <= VERTEX_PX:
                return i
        return None

    def close_polygon(self, erase: bool = False) -> None:
        pts, self._poly = self._poly, []
        self.poly_item.setPath(QPainterPath())
        self.fill_polygon(pts, erase)

    # ---- mouse ----------------------------------------------------------------------------
    def mousePressEvent(self, event) -> None:
        if event.button() == Qt.MouseButton.MiddleButton or (
            event.button() == Qt.MouseButton.LeftButton and event.modifiers() & Qt.KeyboardModifier.AltModifier
        ):
            self._panning = event.position()
            return
        if event.button() != Qt.MouseButton.LeftButton or self.rgb is None:
            return
        x, y = self._pixel(event.position().toPoint())
        erase = bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        if self.tool in ("brush", "eraser"):
            self._begin()
            self._last = (x, y)
            self._dab((x, y), (x, y))
        elif self.tool == "polygon":
            self._lasso = 0
            self._vertex = self._vertex_at(event.position().toPoint())
            if self._vertex is None:  # a press on a vertex drags it; elsewhere it adds one
                self._poly.append((x + 0.5, y + 0.5))
            self._show_poly()
        elif self.tool == "fill":
            self.flood_fill(x, y, erase)

    def mouseMoveEvent(self, event) -> None:
        if self._panning is not None:
            d = event.position() - self._panning
            self._panning = event.position()
            self.horizontalScrollBar().setValue(int(self.horizontalScrollBar().value() - d.x()))
            self.verticalScrollBar().setValue(int(self.verticalScrollBar().value() - d.y()))
            return
        self._update_cursor(event.position().toPoint())
        x, y = self._pixel(event.position().toPoint())
        if self._last is not None and event.buttons() & Qt.MouseButton.LeftButton:
            self._dab(self._last, (x, y))
            self._last = (x, y)
        elif self.tool == "polygon" and self._poly:
            if self._vertex is not None and event.buttons() & Qt.MouseButton.LeftButton:  # moving a vertex
                self._poly[self._vertex] = (x + 0.5, y + 0.5)
                self._show_poly()
            elif event.buttons() & Qt.MouseButton.LeftButton:  # dragging: a lasso
                self._poly.append((x + 0.5, y + 0.5))
                self._lasso += 1
                self._show_poly()
            else:
                self._show_poly((x + 0.5, y + 0.5))

    def mouseReleaseEvent(self, event) -> None:
        if self._panning is not None:
            self._panning = None
            return
        if self._last is not None:
            self._last = None
            self._commit()
        elif self._vertex is not None:
            self._vertex = None
        elif self.tool == "polygon" and self._lasso > 2:  # released after a lasso drag
            self.close_polygon(bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier))

    def mouseDoubleClickEvent(self, event) -> None:
        if self.tool == "polygon":
            x, y = self._pixel(event.position().toPoint())
            if not self._poly or self._poly[-1] != (x + 0.5, y + 0.5):
                self._poly.append((x + 0.5, y + 0.5))
        if self.tool == "polygon" and len(self._poly) >= 3:
            self.close_polygon(bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier))

    def keyPressEvent(self, event) -> None:
        if self.tool == "polygon" and self._poly and event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.close_polygon(bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier))
            return
        if self.tool == "polygon" and self._poly and event.key() == Qt.Key.Key_Escape:
            self._poly.clear()
            self._show_poly()
            return
        super().keyPressEvent(event)
