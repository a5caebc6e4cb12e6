"""The image list: one row per project image (name, state, score, support, classes) in a table model, a
filter proxy (state, class, score range, name search), and a panel that keeps the counts in view.

The source model sorts (Python's sort over 100,000 keys takes milliseconds, a proxy's comparisons through
`data()` seconds); the proxy only filters. The strip of thumbnails shows the same filtered rows.
"""

from __future__ import annotations

from enum import IntEnum

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSize,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from annotator.app.thumbnails import STATE_COLORS, STATE_MARK, SUPPORT_MARK, Thumbnails, with_badge
from annotator.config import State
from annotator.project.review import state_counts
from annotator.project.store import Project

ImageIdRole = Qt.ItemDataRole.UserRole + 1
THUMB = 96


class Column(IntEnum):
    NAME = 0
    STATE = 1
    SCORE = 2
    SUPPORT = 3
    CLASSES = 4


HEADERS = {
    Column.NAME: "name",
    Column.STATE: "state",
    Column.SCORE: "score",
    Column.SUPPORT: SUPPORT_MARK,
    Column.CLASSES: "classes",
}


class ImageTableModel(QAbstractTableModel):
    """Rows = the project's images; what they say (state, score, support) is of the chosen class.
    `facts_changed(one_row)` follows a change of what the rows say (not a thumbnail's arrival)."""

    facts_changed = Signal(bool)
    _record_changed = Signal(int)  # the project's events, passed on to the GUI thread (queued when made elsewhere)
    _classes_changed = Signal()

    def __init__(self, project: Project, thumbnails: Thumbnails, parent=None) -> None:
        super().__init__(parent)
        self.project, self.thumbnails = project, thumbnails
        self.class_id: int | None = None
        self.ids = sorted(project.images)
        self.row_of = {i: r for r, i in enumerate(self.ids)}
        self.folder_rank = dict(self.row_of)  # the image's place in the folder, whatever the rows' sort
        self.supports: set[int] = set()
        self._classes: dict[int, str] = {}
        self._placeholder = QPixmap(THUMB, THUMB)
        self._placeholder.fill(STATE_COLORS[State.UNLABELLED].darker(150))
        thumbnails.ready.connect(self._thumbnail_arrived)
        self._facts()
        self._record_changed.connect(self.refresh)
        self._classes_changed.connect(self.refresh_all)
        self._observed = (
            (project.events.record, self._on_record),
            (project.events.supports, self._on_record),
            (project.events.classes, self._classes_changed.emit),
        )
        for event, callback in self._observed:
            event.connect(callback)

    def detach(self) -> None:
        """Stop observing the project (it is being closed, or another one shown)."""
        for event, callback in self._observed:
            event.disconnect(callback)

    def _on_record(self, image_id: int, _class_id: int) -> None:
        self._record_changed.emit(image_id)  # any class's change: the classes column

    # ---- what the rows say ------------------------------------------------------------------
    def _facts(self) -> None:
        """The per-image facts that are not one dictionary look-up: supports, and which classes have a mask."""
        self.supports = set(self.project.support_ids(self.class_id)) if self.class_id is not None else set()
        names: dict[int, list[str]] = {}
        for image_id, cid in sorted(self.project.records):
            if cid in self.project.classes and self.has_class(image_id, cid):
                names.setdefault(image_id, []).append(self.project.classes[cid].name)
        self._classes = {i: ", ".join(n) for i, n in names.items()}

    def name(self, image_id: int) -> str:
        return self.project.images[image_id].file

    def state(self, image_id: int) -> State:
        return self.project.record(image_id, self.class_id).state if self.class_id is not None else State.UNLABELLED

    def score(self, image_id: int) -> float | None:
        if self.class_id is None:
            return None
        rec = self.project.record(image_id, self.class_id)
        return rec.score if rec.state == State.PROPOSED else None

    def has_class(self, image_id: int, class_id: int) -> bool:
        rec = self.project.record(image_id, class_id)
        return bool(rec.mask) and rec.state != State.REJECTED

    # ---- Qt's model interface ---------------------------------------------------------------
    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.ids)

    def columnCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(Column)

    def headerData(self, section: int, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return HEADERS[Column(section)]
        return None

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        image_id, col = self.ids[index.row()], index.column()
        if role == ImageIdRole:
            return image_id
        if role == Qt.ItemDataRole.DisplayRole:
            if col == Column.NAME:
                return self.name(image_id)
            if col == Column.STATE:
                state = self.state(image_id)
                rec = self.project.record(image_id, self.class_id) if self.class_id is not None else None
                if state == State.PROPOSED and rec is not None and rec.mask is None:
                    return "∅ proposed absent"
                return f"{STATE_MARK[state]} {state}".strip()
            if col == Column.SCORE:
                score = self.score(image_id)
                return "" if score is None else f"{score:.2f}"
            if col == Column.SUPPORT:
                return SUPPORT_MARK if image_id in self.supports else ""
            return self._classes.get(image_id, "")
        if role == Qt.ItemDataRole.DecorationRole and col == Column.NAME:
            pix = self.thumbnails.get(image_id, THUMB)
            return with_badge(pix or self._placeholder, self.state(image_id), image_id in self.supports)
        if role == Qt.ItemDataRole.BackgroundRole and col == Column.STATE:
            state = self.state(image_id)
            return STATE_COLORS[state].darker(200) if state != State.UNLABELLED else None
        if role == Qt.ItemDataRole.ToolTipRole:
            score = self.score(image_id)
            support = ", a support" if image_id in self.supports else ""
            return f"{self.name(image_id)}\n{self.state(image_id)}{support}" + (
                f" (score {score:.3f})" if score is not None else ""
            )
        return None

    # ---- changes ----------------------------------------------------------------------------
    def set_class(self, class_id: int | None) -> None:
        self.class_id = class_id
        self.thumbnails.set_class(class_id)
        self.refresh_all()

    def refresh_all(self) -> None:
        self._facts()
        if self.ids:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self.ids) - 1, len(Column) - 1))
        self.facts_changed.emit(False)

    def refresh(self, image_id: int) -> None:
        row = self.row_of.get(image_id)
        if row is not None:
            self._facts_of(image_id)
            self.dataChanged.emit(self.index(row, 0), self.index(row, len(Column) - 1))
            self.facts_changed.emit(True)

    def _thumbnail_arrived(self, image_id: int) -> None:
        row = self.row_of.get(image_id)
        if row is not None:
            index = self.index(row, Column.NAME)
            self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])

    def _facts_of(self, image_id: int) -> None:
        if self.class_id is not None and self.project.is_support(image_id, self.class_id):
            self.supports.add(image_id)
        else:
            self.supports.discard(image_id)
        names = [c.name for c in self.project.classes.values() if self.has_class(image_id, c.id)]
        self._classes[image_id] = ", ".join(names)

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Sort the rows by a column (unscored images after the scored ones, either way), keeping selections."""
        keys = {
            Column.NAME: lambda i: self.name(i).lower(),
            Column.STATE: lambda i: (self.state(i).value, self.name(i).lower()),
            Column.SCORE: lambda i: self.score(i) or 0.0,  # unscored rows go last, below
            Column.SUPPORT: lambda i: (i not in self.supports, i),
            Column.CLASSES: lambda i: (self._classes.get(i, "") == "", self._classes.get(i, ""), i),
        }
        key = keys[Column(column)] if column >= 0 else (lambda i: i)
        self.layoutAboutToBeChanged.emit()
        before = [(p, self.ids[p.row()]) for p in self.persistentIndexList()]
        self.ids.sort(key=key, reverse=order == Qt.SortOrder.DescendingOrder)
        if column == Column.SCORE:  # unscored last whichever the order
            self.ids.sort(key=lambda i: self.score(i) is None)
        self.row_of = {i: r for r, i in enumerate(self.ids)}
        self.changePersistentIndexList(
            [p for p, _ in before], [self.index(self.row_of[i], p.column()) for p, i in before]
        )
        self.layoutChanged.emit()


class ImageFilter(QSortFilterProxyModel):
    """Which rows show: by state (or supports only), by class present, by score range, and by a name search."""

    SUPPORTS = "supports"

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.state: State | str | None = None
        self.class_id: int | None = None
        self.score_range: tuple[float, float] = (0.0, 1.0)
        self.text = ""
        self.setDynamicSortFilter(False)

    def set_filter(self, **kw) -> None:
        """Change any of state, class_id, score_range, text; the rows are filtered again."""
        self.beginFilterChange()
        for k, v in kw.items():
            setattr(self, k, v)
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, row: int, parent: QModelIndex | QPersistentModelIndex) -> bool:
        src: ImageTableModel = self.sourceModel()
        image_id = src.ids[row]
        if self.text and self.text.lower() not in src.name(image_id).lower():
            return False
        if self.state == self.SUPPORTS:
            if image_id not in src.supports:
                return False
        elif self.state is not None and src.state(image_id) != self.state:
            return False
        if self.class_id is not None and not src.has_class(image_id, self.class_id):
            return False
        if self.score_range != (0.0, 1.0):
            score = src.score(image_id)
            if score is None or not self.score_range[0] <= score <= self.score_range[1]:
                return False
        return True

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """The source sorts itself (fast); the proxy keeps its order."""
        if self.sourceModel() is not None:
            self.sourceModel().sort(column, order)

    def image_ids(self) -> list[int]:
        """The ids of the rows shown, in their order."""
        return [self.index(r, 0).data(ImageIdRole) for r in range(self.rowCount())]


class ImageList(QWidget):
    """The image list panel: filters above, the table, the counts below; `image_chosen(id)` on selection."""

    image_chosen = Signal(int)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.source: ImageTableModel | None = None
        self.proxy = ImageFilter(self)
        self.search = QLineEdit()
        self.search.setPlaceholderText("search names…")
        self.search.setClearButtonEnabled(True)
        self.state_box = QComboBox()
        for label, value in (
            [("all states", None)] + [(s.value, s) for s in State] + [("supports", ImageFilter.SUPPORTS)]
        ):
            self.state_box.addItem(label, value)
        self.class_box = QComboBox()
        self.score_lo, self.score_hi = QDoubleSpinBox(), QDoubleSpinBox()
        for box, value in ((self.score_lo, 0.0), (self.score_hi, 1.0)):
            box.setRange(0.0, 1.0)
            box.setSingleStep(0.05)
            box.setDecimals(2)
            box.setValue(value)
            box.setToolTip("score range of proposals (0-1: any image)")
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)  # folder order at first
        self.table.setSortingEnabled(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setIconSize(QSize(36, 24))
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideLeft)  # a long path keeps its file name in view
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(26)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.counts = QLabel()
        self.counts.setWordWrap(True)
        # one row's change (each proposal's arrival) recounts at most 5 times a second
        self._counts_later = QTimer(self)
        self._counts_later.setSingleShot(True)
        self._counts_later.setInterval(200)
        self._counts_later.timeout.connect(self.update_counts)
        row1, row2 = QHBoxLayout(), QHBoxLayout()
        row1.addWidget(self.search, 1)
        row1.addWidget(self.state_box)
        row2.addWidget(QLabel("class"))
        row2.addWidget(self.class_box, 1)
        row2.addWidget(QLabel("score"))
        row2.addWidget(self.score_lo)
        row2.addWidget(QLabel("–"))
        row2.addWidget(self.score_hi)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(row1)
        layout.addLayout(row2)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.counts)
        self.search.textChanged.connect(lambda t: self._filter(text=t))
        self.state_box.currentIndexChanged.connect(lambda _: self._filter(state=self.state_box.currentData()))
        self.class_box.currentIndexChanged.connect(lambda _: self._filter(class_id=self.class_box.currentData()))
        self.score_lo.valueChanged.connect(lambda _: self._filter(score_range=self._range()))
        self.score_hi.valueChanged.connect(lambda _: self._filter(score_range=self._range()))

    def set_source(self, source: ImageTableModel) -> None:
        self.source = source
        self.proxy.setSourceModel(source)
        header = self.table.horizontalHeader()  # its sections exist once the model has columns; fixed widths,
        for col, width in (
            (Column.NAME, self._name_width()),
            (Column.STATE, 140),
            (Column.SCORE, 50),
            (Column.SUPPORT, 26),
        ):
            header.resizeSection(col, width)  # since fitting them to their contents reads every row
        self.table.selectionModel().currentRowChanged.connect(self._current)
        source.facts_changed.connect(lambda one_row: self._counts_later.start() if one_row else self.update_counts())
        self.fill_classes()

    def _name_width(self) -> int:
        """The name column's width: the widest of the longest relative paths (by characters, so that 100,000 rows
        cost a sort of their lengths, not a measure of each), beside the thumbnail, so no name is cut."""
        names = sorted((self.source.name(i) for i in self.source.ids), key=len)[-50:]
        widest = max((self.table.fontMetrics().horizontalAdvance(n) for n in names), default=0)
        return max(250, widest + THUMB + 24)  # the thumbnail is drawn at its own width, not the icon size

    def fill_classes(self) -> None:
        """The class filter's choices (after classes change)."""
        keep = self.class_box.currentData()
        self.class_box.blockSignals(True)
        self.class_box.clear()
        self.class_box.addItem("any", None)
        for c in self.source.project.classes.values():
            self.class_box.addItem(c.name, c.id)
        self.class_box.setCurrentIndex(max(0, self.class_box.findData(keep)))
        self.class_box.blockSignals(False)
        self._filter(class_id=self.class_box.currentData())

    def _range(self) -> tuple[float, float]:
        return self.score_lo.value(), self.score_hi.value()

    def _filter(self, **kw) -> None:
        self.proxy.set_filter(**kw)
        self.update_counts()

    def filter_state(self) -> dict:
        """The filter as plain values (remembered per project)."""
        state = self.state_box.currentData()
        return {"text": self.search.text(), "state": str(state) if state else "", "range": list(self._range())}

    def restore_filter(self, saved: dict) -> None:
        self.search.setText(str(saved.get("text", "")))
        self.state_box.setCurrentIndex(max(0, self.state_box.findText(str(saved.get("state") or "all states"))))
        lo, hi = (list(saved.get("range") or [0.0, 1.0]) + [0.0, 1.0])[:2]
        self.score_lo.setValue(float(lo))
        self.score_hi.setValue(float(hi))

    def update_counts(self) -> None:
        if self.source is None:
            return
        c = state_counts(self.source.project, self.source.class_id)
        self.counts.setText(
            f"accepted {c['accepted']} · proposed {c['proposed']} · rejected {c['rejected']} · "
            f"unlabelled {c['unlabelled']} · supports {c['supports']} — showing {self.proxy.rowCount()} of "
            f"{self.source.rowCount()}"
        )

    def _current(self, current: QModelIndex, _previous=None) -> None:
        if current.isValid():
            self.image_chosen.emit(current.data(ImageIdRole))

    def select(self, image_id: int) -> None:
        """Make an image's row current (if the filter shows it), without emitting `image_chosen` again."""
        row = self.source.row_of.get(image_id) if self.source else None
        if row is None:
            return
        index = self.proxy.mapFromSource(self.source.index(row, 0))
        if index.isValid() and self.table.currentIndex().row() != index.row():
            self.table.blockSignals(True)
            self.table.selectionModel().blockSignals(True)
            self.table.setCurrentIndex(index)
            self.table.selectionModel().blockSignals(False)
            self.table.blockSignals(False)
            self.table.viewport().update()

    def selected_ids(self) -> list[int]:
        rows = {i.row() for i in self.table.selectionModel().selectedIndexes()}
        return [self.proxy.index(r, 0).data(ImageIdRole) for r in sorted(rows)]
