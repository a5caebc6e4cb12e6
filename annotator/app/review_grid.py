"""The review grid: a contact sheet of the current class's proposals, masks overlaid, a page at a time in review
order (least confident first). Space marks a proposal to reject, Enter accepts the rest of the page and moves
on; bulk "accept all >= score" / "reject all <= score" show their count before they apply; every decision
is one step of Undo. The decisions go through the Session, so they are the same as on the canvas."""

from __future__ import annotations

from PySide6.QtCore import QAbstractListModel, QEvent, QModelIndex, QObject, QSize, Qt, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QListView,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from annotator.app.image_list import ImageIdRole
from annotator.app.thumbnails import STATE_COLORS, Thumbnails, with_badge
from annotator.config import State
from annotator.project.review import proposals_by_score, review_queue
from annotator.project.session import Session


class ReviewPage(QAbstractListModel):
    """The proposals of one page; `marked` are the ones Enter will reject."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session: Session | None = None
        self.thumbnails: Thumbnails | None = None
        self.ids: list[int] = []
        self.marked: set[int] = set()
        self.size = 160
        self._placeholder = QPixmap()  # made by `show`, at the page's size

    def show(self, ids: list[int], size: int) -> None:
        """Show `ids`; marks of proposals still shown stay (a resize redraws the page, it does not clear it)."""
        self.beginResetModel()
        self.ids, self.marked, self.size = ids, self.marked & set(ids), size
        self._placeholder = QPixmap(size, size * 3 // 4)
        self._placeholder.fill(STATE_COLORS[State.UNLABELLED].darker(150))
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.ids)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or self.session is None:
            return None
        image_id = self.ids[index.row()]
        rec = self.session.project.record(image_id, self.session.class_id)
        marked = image_id in self.marked
        if role == ImageIdRole:
            return image_id
        if role == Qt.ItemDataRole.DisplayRole:
            score = "absent" if rec.mask is None else f"{rec.score:.2f}" if rec.score is not None else ""
            return f"{'✗ ' if marked else ''}{score}"
        if role == Qt.ItemDataRole.DecorationRole:
            pix = self.thumbnails.get(image_id, self.size) or self._placeholder
            return with_badge(pix, State.REJECTED if marked else rec.state, False)
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{self.session.project.images[image_id].file}\n{rec.state}" + (
                f" (score {rec.score:.3f})" if rec.score is not None else ""
            )
        return None

    def refresh(self, image_id: int) -> None:
        if image_id in self.ids:
            i = self.index(self.ids.index(image_id))
            self.dataChanged.emit(i, i)


class ReviewGrid(QWidget):
    """The grid and its controls. `open_image(id)` on double-click; `decided(ids)` after states changed."""

    open_image = Signal(int)
    decided = Signal(list)
    message = Signal(str)
    closed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session: Session | None = None
        self.queue: list[int] = []
        self.page = 0
        self.model = ReviewPage(self)
        self.view = QListView()
        self.view.setModel(self.model)
        self.view.setViewMode(QListView.ViewMode.IconMode)
        self.view.setResizeMode(QListView.ResizeMode.Adjust)
        self.view.setMovement(QListView.Movement.Static)
        self.view.setUniformItemSizes(True)
        self.view.setSpacing(4)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.doubleClicked.connect(lambda i: self.open_image.emit(i.data(ImageIdRole)))
        self.view.installEventFilter(self)
        self.cols, self.rows = QSpinBox(), QSpinBox()
        for box, value, what in ((self.cols, 6, "columns"), (self.rows, 4, "rows")):
            box.setRange(1, 12)
            box.setValue(value)
            box.setToolTip(f"{what} per page")
            box.valueChanged.connect(lambda _: self.show_page(self.page))
        self.page_label = QLabel()
        self.threshold = QDoubleSpinBox()
        self.threshold.setRange(0.0, 1.0)
        self.threshold.setSingleStep(0.05)
        self.threshold.setDecimals(2)
        self.threshold.setValue(0.9)
        self.threshold.valueChanged.connect(lambda _: self.preview())
        self.accept_above = QPushButton()
        self.accept_above.clicked.connect(lambda: self.bulk(accept=True))
        self.reject_below = QPushButton()
        self.reject_below.clicked.connect(lambda: self.bulk(accept=False))
        self.undo_button = QPushButton("Undo")
        self.undo_button.setToolTip("undo the last page or bulk decision (Ctrl+Z)")
        self.undo_button.clicked.connect(self.undo)
        top = QHBoxLayout()
        top.addWidget(self.page_label, 1)
        top.addWidget(QLabel("grid"))
        top.addWidget(self.cols)
        top.addWidget(QLabel("×"))
        top.addWidget(self.rows)
        top.addWidget(QLabel("  score"))
        top.addWidget(self.threshold)
        top.addWidget(self.accept_above)
        top.addWidget(self.reject_below)
        top.addWidget(self.undo_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.view, 1)
        layout.addWidget(
            QLabel(
                "Space: mark / unmark to reject · Enter: accept the rest of the page, next page · "
                "PgUp/PgDn: browse · double-click: open to correct · Esc: back to the image"
            )
        )

    # ---- what is shown ----------------------------------------------------------------------
    def start(self, session: Session, thumbnails: Thumbnails) -> bool:
        """Show the current class's proposals from the first page; False when there are none."""
        self.session = self.model.session = session
        if self.model.thumbnails is not thumbnails:
            self.model.thumbnails = thumbnails
            thumbnails.ready.connect(self.model.refresh)
        self.reload(page=0)
        return bool(self.queue)

    @property
    def per_page(self) -> int:
        return self.cols.value() * self.rows.value()

    def thumb_size(self) -> int:
        """The thumbnails' size that fits the columns into the view's width (in steps of 16, for the cache)."""
        width = max(self.view.viewport().width(), 320) - 8 * self.cols.value() - 16
        return max(64, min(512, width // self.cols.value()) // 16 * 16)

    def reload(self, page: int | None = None) -> None:
        """Rebuild the review queue (decided proposals leave it) and show `page` (the same one by default)."""
        self.session.flush()
        self.queue = review_queue(self.session.project, self.session.class_id)
        self.show_page(self.page if page is None else page)

    def show_page(self, page: int) -> None:
        if self.session is None:
            return
        pages = max(1, -(-len(self.queue) // self.per_page))
        self.page = min(max(page, 0), pages - 1)
        ids = self.queue[self.page * self.per_page : (self.page + 1) * self.per_page]
        size = self.thumb_size()
        self.model.show(ids, size)
        self.view.setIconSize(QSize(size, size * 3 // 4))  # photos are mostly 4:3 or wider
        self.view.setGridSize(QSize(size + 8, size * 3 // 4 + 30))
        if ids:
            self.view.setCurrentIndex(self.model.index(0))
        self.page_label.setText(
            f"{len(self.queue)} proposals to review · page {self.page + 1}/{pages}"
            if self.queue
            else "No proposals left to review"
        )
        self.preview()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self.session is not None and self.model.size != self.thumb_size():
            self.show_page(self.page)

    def preview(self) -> None:
        """The bulk buttons say how many proposals they would change."""
        if self.session is None:
            return
        t = self.threshold.value()
        n_hi = len(proposals_by_score(self.session.project, self.session.class_id, at_least=t))
        n_lo = len(proposals_by_score(self.session.project, self.session.class_id, at_most=t))
        self.accept_above.setText(f"Accept {n_hi} ≥ {t:.2f}")
        self.reject_below.setText(f"Reject {n_lo} ≤ {t:.2f}")

    # ---- keys -------------------------------------------------------------------------------
    def eventFilter(self, obj, event) -> bool:
        """PgUp/PgDn page through the queue, Esc goes back to the image. (Space, Enter, the arrows and Undo are
        the window's review actions, which act on the grid while it is shown, wherever the focus is.)"""
        if obj is self.view and event.type() == QEvent.Type.KeyPress:
            key = event.key()
            if key in (Qt.Key.Key_PageDown, Qt.Key.Key_PageUp):
                self.show_page(self.page + (1 if key == Qt.Key.Key_PageDown else -1))
                return True
            if key == Qt.Key.Key_Escape:
                self.closed.emit()
                return True
        return super().eventFilter(obj, event)

    def current_id(self) -> int | None:
        index = self.view.currentIndex()
        return index.data(ImageIdRole) if index.isValid() else None

    def toggle_current(self) -> None:
        """Mark (or unmark) the current proposal to be rejected when the page is accepted."""
        image_id = self.current_id()
        if image_id is not None:
            self.model.marked ^= {image_id}
            self.model.refresh(image_id)

    def move(self, delta: int) -> None:
        """The current cell `delta` cells on, across pages."""
        row = self.view.currentIndex().row() + delta
        if 0 <= row < self.model.rowCount():
            self.view.setCurrentIndex(self.model.index(row))
        elif row >= self.model.rowCount() and (self.page + 1) * self.per_page < len(self.queue):
            self.show_page(self.page + 1)
        elif row < 0 and self.page > 0:
            self.show_page(self.page - 1)
            self.view.setCurrentIndex(self.model.index(self.model.rowCount() - 1))

    # ---- decisions ----------------------------------------------------------------------------
    def accept_page(self) -> None:
        """Accept the page's proposals, reject the marked ones, and show what comes next."""
        ids = list(self.model.ids)
        if not ids:
            return
        marked = self.model.marked & set(ids)
        n = self.session.decide({i: State.REJECTED if i in marked else State.ACCEPTED for i in ids})
        self.message.emit(f"{n - len(marked)} accepted, {len(marked)} rejected")
        self.reload()
        self.decided.emit(ids)

    def bulk(self, accept: bool) -> None:
        """Accept every proposal scoring >= the threshold, or reject every one scoring <= it."""
        t = self.threshold.value()
        proj, cid = self.session.project, self.session.class_id
        ids = proposals_by_score(proj, cid, at_least=t) if accept else proposals_by_score(proj, cid, at_most=t)
        n = self.session.decide({i: State.ACCEPTED if accept else State.REJECTED for i in ids})
        self.message.emit(
            f"{'accepted' if accept else 'rejected'} {n} proposals scoring {'≥' if accept else '≤'} "
            f"{t:.2f} (Undo puts them back)"
        )
        self.reload()
        self.decided.emit(ids)

    def undo(self) -> None:
        """Undo the last page or bulk decision (of any class); the proposals come back to the grid."""
        ids = self.session.undo_decision() if self.session else []
        self.message.emit(f"undone: {len(ids)} decisions" if ids else "nothing to undo in the review")
        self.reload()
        self.decided.emit(ids)
