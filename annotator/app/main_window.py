"""The main window: classes on the left, the canvas (or the review grid) in the middle, the image list on the
right, thumbnails below; menus wire the actions (each with a shortcut, from one table) to the session, the
views and the background jobs."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from PySide6.QtCore import QEvent, QSettings, QStandardPaths, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QColor, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QColorDialog,
    QDockWidget,
    QFileDialog,
    QInputDialog,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QSlider,
    QSpinBox,
    QStackedWidget,
    QToolBar,
)

from annotator.app.actions import GESTURES, MENUS, RECENT, SEPARATOR, THEMES, TOOLBAR, TOOLS, Action
from annotator.app.canvas import Canvas
from annotator.app.dialogs import ExportDialog, HelpDialog, ImportDialog, ModelSettings, SettingsDialog
from annotator.app.image_list import ImageIdRole, ImageList, ImageTableModel
from annotator.app.jobs import JobPanel
from annotator.app.review_grid import ReviewGrid
from annotator.app.theme import ThemeSwitch, icon
from annotator.app.thumbnails import Thumbnails
from annotator.app.workers import AdaptWorker, PropagationWorker, StepsWorker, close_predictors
from annotator.config import Model, State
from annotator.formats.export import ExportError, left_out_proposals
from annotator.formats.exporters import EXPORTERS
from annotator.formats.importers import import_annotations, import_report
from annotator.formats.importing import ImportFormatError
from annotator.io.imageio import ImageReadError, read_image
from annotator.project.review import unreviewed
from annotator.project.session import Session, open_or_create
from annotator.project.store import Project, ProjectError, ProjectLockedError
from annotator.project.workflows import adapted_checkpoint
from annotator.utils.progress import Steps

ORG, APP = "annotator", "annotator"


def app_data_dir() -> Path:
    """The user's data folder for this app (projects of folders whose parent is not writable go there)."""
    return Path(QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation))


class MainWindow(QMainWindow):
    """The annotator window. `open_folder` / `open_project` load work; everything else is an action."""

    save_failed = Signal(str)
    _classes_changed = Signal()  # the project's classes event, passed on to the GUI thread

    def __init__(self, folder: Path | None = None, settings: QSettings | None = None) -> None:
        super().__init__()
        self.setWindowTitle("annotator")
        self.resize(1400, 900)
        self.qs = settings or QSettings(ORG, APP)
        self.model_settings = ModelSettings.load(self.qs)
        self.session: Session | None = None
        self.thumbnails: Thumbnails | None = None
        self.images: ImageTableModel | None = None  # the rows of the image list and the strip
        self.theme = ThemeSwitch(self.qs, self)
        self.learned_from = ""  # what the running propagation learned from
        self.save_failed.connect(lambda msg: self.statusBar().showMessage(msg, 15000))
        self._classes_changed.connect(lambda: self._fill_classes())
        self._build_widgets()
        self._build_actions()
        self.setAcceptDrops(True)
        if folder is not None:
            self.open_path(folder)

    # ---- the session's state, as the views read it ----------------------------------------
    @property
    def project(self) -> Project | None:
        return self.session.project if self.session else None

    @property
    def image_id(self) -> int | None:
        return self.session.image_id if self.session else None

    @property
    def class_id(self) -> int | None:
        return self.session.class_id if self.session else None

    @property
    def worker(self) -> PropagationWorker | AdaptWorker | StepsWorker | None:
        """The background job shown (progress bar, Cancel), if any."""
        return self.job.jobs.current

    @property
    def review(self) -> list[int] | None:
        return self.session.review if self.session else None

    def _flush_writes(self) -> None:
        if self.session:
            self.session.flush()

    # ---- layout ---------------------------------------------------------------------------
    def _build_widgets(self) -> None:
        self.canvas = Canvas(self)
        self.canvas.edited.connect(self._mask_edited)
        self.grid = ReviewGrid(self)
        self.grid.open_image.connect(self._open_from_grid)
        self.grid.decided.connect(lambda _ids: self.images.refresh_all())  # many rows at once: counted at once
        self.grid.message.connect(lambda msg: self.statusBar().showMessage(msg, 8000))
        self.grid.closed.connect(self.show_canvas)
        self.centre = QStackedWidget()
        self.centre.addWidget(self.canvas)
        self.centre.addWidget(self.grid)
        self.setCentralWidget(self.centre)
        self.classes = QListWidget()
        self.classes.currentItemChanged.connect(self._class_chosen)
        self.classes.itemDoubleClicked.connect(lambda _: self.rename_class())
        classes_dock = QDockWidget("Classes", self)
        classes_dock.setObjectName("classes")
        classes_dock.setWidget(self.classes)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, classes_dock)
        self.strip = QListView()
        self.strip.setViewMode(QListView.ViewMode.IconMode)
        self.strip.setFlow(QListView.Flow.LeftToRight)
        self.strip.setWrapping(False)
        self.strip.setUniformItemSizes(True)
        self.strip.setLayoutMode(QListView.LayoutMode.Batched)
        self.strip.setSelectionMode(QListView.SelectionMode.ExtendedSelection)
        self.strip.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.strip.setMinimumHeight(150)
        dock = QDockWidget("Thumbnails", self)
        dock.setObjectName("images")
        dock.setWidget(self.strip)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)
        self.image_list = ImageList()
        self.image_list.image_chosen.connect(self._image_chosen)
        self.strip.setModel(self.image_list.proxy)  # the strip shows the list's rows, filtered alike
        self.strip.selectionModel().currentChanged.connect(self._thumb_chosen)
        dock = QDockWidget("Image list", self)
        dock.setObjectName("image_list")
        dock.setWidget(self.image_list)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
        self.resizeDocks([classes_dock, dock], [160, 500], Qt.Orientation.Horizontal)
        sb = self.statusBar()
        self.zoom_label = QLabel("")
        self.canvas.zoomed.connect(lambda scale: self.zoom_label.setText(f"{100 * scale:.0f}%"))
        self.device_label = QLabel("device: not started")
        self.job = JobPanel(sb, self)  # the background job's progress, rate and Cancel
        self.job.ended.connect(self._job_ended)
        for w in (self.zoom_label, self.device_label):
            sb.addPermanentWidget(w)
        sb.showMessage("Open a folder of images (Ctrl+O)")

    def _act(self, menu, entry: Action) -> QAction:
        a = QAction(entry.text, self)
        if entry.key:
            a.setShortcut(QKeySequence(entry.key))
        a.setCheckable(entry.checkable)

        def run() -> None:  # every slot reads what it needs itself (a checkable one, its action's state)
            try:
                entry.slot(self)
            except ProjectError as exc:  # e.g. an edit of a project open read-only: said, not raised into Qt
                self.statusBar().showMessage(str(exc))

        a.triggered.connect(run)
        menu.addAction(a)
        self.addAction(a)  # shortcuts work whichever widget has focus
        return a

    def _build_actions(self) -> None:
        """The menus from the one action table (actions.MENUS), then the toolbar."""
        self.named_actions: dict[str, QAction] = {}
        for title, entries in MENUS.items():
            m = self.menuBar().addMenu(title)
            for entry in entries:
                if entry == SEPARATOR:
                    m.addSeparator()
                elif entry == RECENT:
                    self.recent_menu = m.addMenu("Recent")
                    self._fill_recent()
                else:
                    self.named_actions[entry.name] = self._act(m, entry)
        group = QActionGroup(self)
        self.tool_actions = {tool: self.named_actions[tool] for tool in TOOLS}
        for a in self.tool_actions.values():
            group.addAction(a)
        self.tool_actions["brush"].setChecked(True)
        self.review_action = self.named_actions["review"]
        themes = QActionGroup(self)
        for name, theme in THEMES.items():
            themes.addAction(self.named_actions[name])
            self.named_actions[name].setChecked(theme == self.theme.theme)
        tb = QToolBar("Tools", self)
        tb.setObjectName("tools")
        for name in TOOLBAR:
            if name == SEPARATOR:
                tb.addSeparator()
            else:
                tb.addAction(self.named_actions[name])
        tb.addSeparator()
        tb.addWidget(QLabel(" Brush "))
        self.brush_spin = QSpinBox()
        self.brush_spin.setRange(1, 500)
        self.brush_spin.setValue(self.canvas.brush)
        self.brush_spin.valueChanged.connect(self.canvas.set_brush)
        self.brush_spin.installEventFilter(self)  # Enter or Escape hands the keys back to the canvas
        self.canvas.brush_changed.connect(self.brush_spin.setValue)
        tb.addWidget(self.brush_spin)
        tb.addWidget(QLabel(" Opacity "))
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(50)
        self.opacity.setMaximumWidth(120)
        self.opacity.valueChanged.connect(lambda v: self.canvas.set_opacity(v / 100))
        tb.addWidget(self.opacity)
        tb.addWidget(QLabel(" Fill tolerance "))
        self.tolerance_spin = QSpinBox()
        self.tolerance_spin.setRange(0, 255)
        self.tolerance_spin.setValue(self.canvas.fill_tolerance)
        self.tolerance_spin.setToolTip("Fill: how far (0-255 per channel) a pixel's colour may be from the clicked one")
        self.tolerance_spin.valueChanged.connect(lambda v: setattr(self.canvas, "fill_tolerance", v))
        self.tolerance_spin.installEventFilter(self)
        tb.addWidget(self.tolerance_spin)
        self.addToolBar(tb)
        self.theme.changed.connect(self._draw_icons)
        self._draw_icons()

    def _draw_icons(self) -> None:
        """Every action's icon (those in resources/icons) in the current palette's colours."""
        for name, a in self.named_actions.items():
            a.setIcon(icon(name, QApplication.palette()))

    def eventFilter(self, obj, event) -> bool:
        """The toolbar's number boxes give the focus back after Enter or Escape, so no widget traps the shortcuts."""
        ends = (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Escape)
        boxes = isinstance(obj, QSpinBox)  # the filter is on the toolbar's boxes only
        if boxes and event.type() == QEvent.Type.ShortcutOverride and event.key() in ends:
            event.accept()  # the box takes this key (Enter must not also accept the image), then hands focus back
            return True
        if boxes and event.type() == QEvent.Type.KeyPress and event.key() in ends:
            obj.interpretText()
            self.canvas.setFocus()
            return True
        return super().eventFilter(obj, event)

    def change_opacity(self, delta: float) -> None:
        """The mask overlay's opacity up or down by `delta` (0-1)."""
        self.opacity.setValue(int(self.opacity.value() + 100 * delta))

    def toggle_outline(self) -> None:
        """Show or hide the mask's outline."""
        self.canvas.show_outline = not self.canvas.show_outline
        self.canvas.update_outline()

    def new_instance(self) -> None:
        """The tools paint a new instance of the class from now on (said in the status bar)."""
        if self.session is None or not self.session.ready():
            return
        self.canvas.new_instance()
        rec = self.project.record(self.image_id, self.class_id)
        self._show_state(rec.state, rec.score)

    # ---- opening --------------------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:
        if any(Path(u.toLocalFile()).is_dir() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        """A folder dropped on the window opens (an image folder, or a project folder)."""
        folders = [Path(u.toLocalFile()) for u in event.mimeData().urls() if Path(u.toLocalFile()).is_dir()]
        if folders:
            event.acceptProposedAction()
            self.open_path(folders[0])

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a folder of images", self._last_dir())
        if folder:
            self._last_dir(folder)
            self.open_path(Path(folder))

    def choose_project(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a project folder (*.annotator)", self._last_dir())
        if folder:
            self._last_dir(folder)
            self.open_path(Path(folder))

    def _last_dir(self, chosen: str | None = None) -> str:
        """The folder file dialogs start in: the last one used (stored when `chosen` is given), else the home."""
        if chosen:
            self.qs.setValue("last_dir", chosen)
        return self.qs.value("last_dir", str(Path.home()), str)

    def open_path(self, path: Path) -> None:
        """A project folder opens as it is; an image folder opens (or starts) its project."""
        try:
            try:
                proj = open_or_create(path, app_data_dir())
            except ProjectLockedError as exc:
                if not self.ask_read_only(str(exc)):
                    return
                proj = open_or_create(path, app_data_dir(), read_only=True)
        except (ProjectError, ImageReadError, OSError) as exc:
            self.statusBar().showMessage(f"Cannot open {path}: {exc}")
            return
        self.set_project(proj)
        notes = proj.report.notes()
        if proj.read_only:
            notes.insert(0, "read-only: another process writes this project; edits are refused")
        if proj.report.added:
            notes.append(f"{len(proj.report.added)} new images found")
        self.statusBar().showMessage("; ".join(notes) or f"{proj.image_root}: {len(proj.images)} images")
        self._remember(proj.folder)

    def ask_read_only(self, why: str) -> bool:
        """Whether to open a project another process writes, read-only."""
        answer = QMessageBox.question(self, "Project in use", f"{why}.\n\nOpen it read-only?")
        return answer == QMessageBox.StandardButton.Yes

    def set_project(self, proj: Project) -> None:
        if self.job.jobs.busy or self.job.jobs.stopping:  # a job works on the project being closed: stop it first
            self.job.cancel()
            self.wait_for_worker()
        self._close_session()
        self.show_canvas()
        self.session = Session(proj, on_error=self.save_failed.emit)
        self.thumbnails = Thumbnails(proj, self)
        self.images = ImageTableModel(proj, self.thumbnails, self)  # it observes the project's records
        self._on_classes = self._classes_changed.emit
        proj.events.classes.connect(self._on_classes)  # the class list observes its classes
        self.image_list.set_source(self.images)
        self.setWindowTitle(self._title())
        last = self._last_seen()
        self.image_list.restore_filter(last.get("filter") or {})
        for box, key in ((self.brush_spin, "brush"), (self.opacity, "opacity"), (self.tolerance_spin, "tolerance")):
            if isinstance(last.get(key), int):
                box.setValue(last[key])  # clamped to the box's range
        self._fill_classes(select=last.get("class"))
        if not proj.classes and not proj.read_only:
            self._add_class_named("object")
        if proj.images:
            image_id = int(last["image"]) if str(last.get("image")).isdigit() else None
            self.show_image(image_id if image_id in proj.images else min(proj.images))

    def _project_key(self) -> str:
        return "projects/" + hashlib.sha1(str(self.project.folder.resolve()).encode()).hexdigest()[:16]

    def _last_seen(self) -> dict:
        """What was shown when this project was last closed: image, class, the list's filter, the brush size, the
        overlay's opacity and the fill tolerance (or {})."""
        try:
            last = json.loads(self.qs.value(self._project_key(), "{}", str))
        except ValueError:
            return {}
        return last if isinstance(last, dict) else {}

    def _close_session(self) -> None:
        """Save and close the project shown, remembering what _last_seen restores."""
        if not self.session:
            return
        last = {
            "image": self.image_id,
            "class": self.class_id,
            "filter": self.image_list.filter_state(),
            "brush": self.brush_spin.value(),
            "opacity": self.opacity.value(),
            "tolerance": self.tolerance_spin.value(),
        }
        self.qs.setValue(self._project_key(), json.dumps(last))
        if not self.session.close():
            QMessageBox.warning(self, "Not saved", self.session.saver.last_error or "The project could not be saved.")
        self.project.events.classes.disconnect(self._on_classes)
        self.images.detach()
        self.session = None
        if self.thumbnails:
            self.thumbnails.shutdown()

    def _title(self) -> str:
        """ "annotator — FOLDER [i/N]" (the image's place in the folder), and "(read-only)" when so."""
        proj = self.project
        where = ""
        if self.images is not None and self.image_id in self.images.folder_rank:
            where = f" [{self.images.folder_rank[self.image_id] + 1}/{len(proj.images)}]"
        return f"annotator — {proj.image_root.name}{where}" + (" (read-only)" if proj.read_only else "")

    def _remember(self, folder: Path) -> None:
        recent = [str(folder)] + [r for r in self.qs.value("recent", [], list) if r != str(folder)]
        self.qs.setValue("recent", recent[:10])
        self._fill_recent()

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for r in self.qs.value("recent", [], list):
            self.recent_menu.addAction(r, lambda r=r: self.open_path(Path(r)))

    # ---- classes --------------------------------------------------------------------------
    def _fill_classes(self, select: int | None = None) -> None:
        self.classes.blockSignals(True)
        self.classes.clear()
        for c in self.project.classes.values():
            item = QListWidgetItem(c.name)
            item.setData(Qt.ItemDataRole.UserRole, c.id)
            item.setForeground(QColor(c.color))
            n, m = len(self.project.support_ids(c.id)), len(self.project.negative_ids(c.id))
            item.setToolTip(f"{c.name}: learns from {n} mask(s) and {m} rejection(s)")
            item.setText(f"{c.name}  ({n}★)" if n else c.name)
            self.classes.addItem(item)
        self.classes.blockSignals(False)
        ids = [self.classes.item(r).data(Qt.ItemDataRole.UserRole) for r in range(self.classes.count())]
        target = select if select in ids else (self.class_id if self.class_id in ids else (ids[0] if ids else None))
        if target is not None:
            self.classes.setCurrentRow(ids.index(target))
        else:
            self.session.choose_class(None)
        if self.images is not None:
            self.image_list.fill_classes()  # the list's class filter: names, new and deleted classes

    def _class_chosen(self, item, _previous=None) -> None:
        if item is None:
            return
        self.session.choose_class(item.data(Qt.ItemDataRole.UserRole))
        self.images.set_class(self.class_id)
        if self.session.review is not None:  # the review queue follows the class
            self.session.start_review()
        if self.centre.currentWidget() is self.grid:
            self.grid.reload(page=0)
        if self.image_id is not None:
            self.show_image(self.image_id)

    def _add_class_named(self, name: str) -> None:
        try:
            c = self.project.add_class(name)
        except ProjectError as exc:
            self.statusBar().showMessage(str(exc))
            return
        self._fill_classes(select=c.id)

    def add_class(self) -> None:
        if self.project:
            name, ok = QInputDialog.getText(self, "New class", "Name:")
            if ok and name.strip():
                self._add_class_named(name.strip())

    def rename_class(self) -> None:
        if self.project and self.class_id:
            old = self.project.classes[self.class_id].name
            name, ok = QInputDialog.getText(self, "Rename class", "Name:", text=old)
            if ok and name.strip():
                try:
                    self.project.rename_class(self.class_id, name.strip())
                except ProjectError as exc:
                    self.statusBar().showMessage(str(exc))

    def recolor_class(self) -> None:
        if self.project and self.class_id:
            c = QColorDialog.getColor(QColor(self.project.classes[self.class_id].color), self)
            if c.isValid():
                self.project.recolor_class(self.class_id, c.name())
                self.canvas.set_color(c)

    def delete_class(self) -> None:
        if not (self.project and self.class_id):
            return
        name = self.project.classes[self.class_id].name
        ask = QMessageBox.question(self, "Delete class", f"Delete '{name}' and all its masks?")
        if ask == QMessageBox.StandardButton.Yes:
            self.session.delete_class()

    # ---- images and masks -----------------------------------------------------------------
    def _thumb_chosen(self, current, _previous=None) -> None:
        if current.isValid():
            self._image_chosen(current.data(ImageIdRole))

    def _image_chosen(self, image_id: int) -> None:
        if image_id != self.image_id:
            self.show_image(image_id)

    def show_image(self, image_id: int) -> None:
        """Put an image and its current-class mask on the canvas (and make it current in the list and strip)."""
        self.session.choose_image(image_id)
        index = self.image_list.proxy.mapFromSource(self.images.index(self.images.row_of[image_id], 0))
        if index.isValid() and self.strip.currentIndex() != index:
            self.strip.selectionModel().blockSignals(True)
            self.strip.setCurrentIndex(index)
            self.strip.selectionModel().blockSignals(False)
            self.strip.viewport().update()
        self.image_list.select(image_id)
        self.setWindowTitle(self._title())
        try:
            rgb = read_image(self.project.image_path(image_id))
        except ImageReadError as exc:
            self.canvas.set_image(np.zeros((240, 320, 3), np.uint8), None, QColor("red"))
            self.statusBar().showMessage(str(exc))
            return
        labels = None
        color = QColor("#ff0000")
        if self.class_id is not None:
            color = QColor(self.project.classes[self.class_id].color)
            try:
                labels = self.project.labels(image_id, self.class_id)
            except ProjectError as exc:
                self.statusBar().showMessage(str(exc))
            if labels is not None and labels.shape != rgb.shape[:2]:
                labels = None
        self.canvas.set_image(rgb, labels, color)
        rec = self.project.record(image_id, self.class_id) if self.class_id else None
        self._show_state(rec.state if rec else None, rec.score if rec else None)

    def _show_state(self, state: State | None, score: float | None = None) -> None:
        """The status line: where in the review, the image's name and its state (kept live while editing)."""
        text = "" if state is None else f"{state}" + (f" (score {score:.2f})" if score is not None else "")
        if self.images is not None and self.image_id in self.images.supports:
            text += " · ★ support (Shift+S: not a support)"
        if self.canvas.instance > 1:
            text += f" · painting instance {self.canvas.instance} (N: a new one)"
        self.statusBar().showMessage(f"{self.session.where()}{self.project.images[self.image_id].file} · {text}")

    def _mask_edited(self) -> None:
        """A brush edit makes the mask the user's own (accepted; emptied: unlabelled), and undoing every edit puts
        the record back as it was; written off the GUI thread."""
        if self.session is None or not self.session.ready():
            return
        rec = self.session.paint(self.canvas.labels, all_undone=not self.canvas.undo_stack)
        self._show_state(rec.state, rec.score)

    def save_now(self) -> None:
        if self.session and self.session.save():
            self.statusBar().showMessage("Saved", 3000)

    def add_support(self) -> None:
        """Make the current mask a support of the current class (accepting it if it was a proposal)."""
        if not (self.project and self.image_id and self.class_id):
            return
        try:
            message = self.session.add_support()
        except ProjectError as exc:
            self.statusBar().showMessage(str(exc))
            return
        self._fill_classes()  # its count of supports
        self.statusBar().showMessage(message)

    def remove_support(self) -> None:
        """ "Not a support": propagation stops learning from the current image's mask (the mask stays)."""
        if not (self.project and self.image_id and self.class_id):
            return
        message = self.session.remove_support()
        self._fill_classes()
        self.statusBar().showMessage(message)

    # ---- propagation ----------------------------------------------------------------------
    def propagate(self, scope: str, include_rejected: bool = False) -> None:
        """Propagate the current class to all images, the selection, or what is not yet reviewed; rejected
        images are left alone unless `include_rejected`."""
        if not (self.project and self.class_id):
            return
        if self.job.jobs.busy:
            self.statusBar().showMessage("A job is already running (Ctrl+. cancels it)")
            return
        if self.job.jobs.stopping:  # a cancelled run finishing its last image
            self.statusBar().showMessage("Waiting for the cancelled propagation to stop…")
            QTimer.singleShot(200, lambda: self.propagate(scope, include_rejected))
            return
        self._flush_writes()
        if scope == "selection":
            ids = self.image_list.selected_ids()
            if len(ids) < 2:  # one row is just the image shown: the strip's selection, then
                ids = [i.data(ImageIdRole) for i in self.strip.selectionModel().selectedIndexes()]
        elif scope == "unreviewed":
            ids = unreviewed(self.project, self.class_id, include_rejected)
        else:
            ids = sorted(self.project.images)
        if not ids:
            self.statusBar().showMessage("Nothing to propagate to")
            return
        s = self.model_settings
        checkpoint = None
        if s.model == Model.SGONE and adapted_checkpoint(self.project).exists():
            checkpoint = adapted_checkpoint(self.project)
        crf = s.crf_params if s.crf else None
        worker = PropagationWorker(
            self.project, self.class_id, ids, s.device, crf, s.presence_threshold, s.model, checkpoint, include_rejected
        )
        self.learned_from = ""
        worker.learned.connect(self._learned)
        worker.started_on.connect(lambda name: self.device_label.setText(f"device: {name}"))
        worker.progress.connect(self.job.rate)
        worker.result.connect(self._proposal_arrived)
        worker.skipped.connect(lambda msg: self.statusBar().showMessage(f"skipped: {msg}", 5000))
        worker.finished.connect(self._propagation_done)  # a method of the window: queued onto the GUI thread
        self.job.start(worker, len(ids), "starting…", "Propagation cancelled")

    def _learned(self, summary: str) -> None:
        self.learned_from = summary
        self.statusBar().showMessage(f"Propagating: {summary}")

    def _proposal_arrived(self, image_id: int, stored: bool) -> None:
        if stored and image_id == self.image_id:
            self.show_image(image_id)

    def cancel_job(self) -> None:
        """Stop the running propagation or adaptation, and say which."""
        self.job.cancel()

    def _propagation_done(self, done: int, _cancelled: bool, error: str) -> None:
        # (if it was cancelled, the panel already said so)
        self.job.finish(self.sender(), error or f"Propagation done: {done} images, {self.learned_from}")

    def _job_ended(self, message: str) -> None:
        self.statusBar().showMessage(message)
        if self.review_action.isChecked():
            self.session.requeue()
        if self.centre.currentWidget() is self.grid:
            self.grid.reload()
        self.images.refresh_all()

    def adapt_to_folder(self) -> None:
        """Train SG-One's head on this folder's images in the background; propagation then uses it."""
        if not self.project:
            return
        if self.job.jobs.busy or self.job.jobs.stopping:
            self.statusBar().showMessage("Wait for the running job to finish (Ctrl+. cancels it)")
            return
        self._flush_writes()
        worker = AdaptWorker(self.project, self.model_settings.device)
        worker.progress.connect(self.job.step)
        worker.finished.connect(self._adapt_done)
        self.job.start(worker, 0, "adapting: reading images…", "Adaptation cancelled; run it again to continue")

    def _adapt_done(self, cancelled: bool, error: str) -> None:
        if self.job.jobs.current is not self.sender():  # cancelled before: the panel said so
            return
        if not error and not cancelled:
            self.model_settings.model = Model.SGONE
            self.model_settings.save(self.qs)
        msg = error or (
            "Adaptation stopped; run it again to continue"
            if cancelled
            else f"SG-One adapted to this folder ({adapted_checkpoint(self.project).name}); propagation now uses it"
        )
        self.job.finish(self.sender(), msg)

    def wait_for_worker(self, timeout_ms: int = 60000) -> None:
        """Block until every job's thread has stopped (closing, tests)."""
        self.job.jobs.wait(timeout_ms)

    def edit_settings(self) -> None:
        dlg = SettingsDialog(self.model_settings, self)
        if dlg.exec():
            self.model_settings = dlg.value()
            self.model_settings.save(self.qs)

    # ---- review ---------------------------------------------------------------------------
    def toggle_review(self) -> None:
        if not (self.project and self.class_id) or not self.review_action.isChecked():
            if self.session:
                self.session.stop_review()
            self.review_action.setChecked(False)
            return
        if not self.session.start_review():
            self.statusBar().showMessage("No proposals to review: propagate first (Ctrl+P)")
            self.review_action.setChecked(False)
            return
        self.show_image(self.review[0])

    def _set_current_state(self, state: State) -> None:
        if not (self.project and self.image_id and self.class_id):
            return
        if self.canvas.drawing_polygon:  # Enter closes the polygon being drawn first
            self.canvas.close_polygon()
            return
        self.session.set_state(state)
        self.step(1)

    def accept_current(self) -> None:
        """Accept the image shown; in the review grid, the page (its marked proposals are rejected)."""
        if self.centre.currentWidget() is self.grid:
            self.grid.accept_page()
        else:
            self._set_current_state(State.ACCEPTED)

    def reject_current(self) -> None:
        """Reject the image shown; in the review grid, mark or unmark the current proposal."""
        if self.centre.currentWidget() is self.grid:
            self.grid.toggle_current()
        else:
            self._set_current_state(State.REJECTED)

    def undo(self) -> None:
        """Undo the last stroke; in the review grid, the last page or bulk decision."""
        if self.centre.currentWidget() is self.grid:
            self.grid.undo()
        else:
            self.canvas.undo()

    def toggle_grid(self) -> None:
        """Show the review grid of the current class's proposals, or go back to the image."""
        if self.centre.currentWidget() is self.grid:
            self.show_canvas()
            return
        if not (self.project and self.class_id):
            return
        self._flush_writes()
        self.centre.setCurrentWidget(self.grid)
        if not self.grid.start(self.session, self.thumbnails):
            self.statusBar().showMessage("No proposals to review: propagate first (Ctrl+P)")
        self.grid.view.setFocus()

    def show_canvas(self) -> None:
        self.centre.setCurrentWidget(self.canvas)
        if self.image_id is not None:
            self.show_image(self.image_id)

    def _open_from_grid(self, image_id: int) -> None:
        """Double-click in the grid: the image on the canvas, to correct it."""
        self.centre.setCurrentWidget(self.canvas)
        self.show_image(image_id)
        self.canvas.setFocus()

    def step(self, delta: int) -> None:
        """Next/previous image: in the grid, the next cell; in review, through the review queue; else through
        the folder."""
        if self.centre.currentWidget() is self.grid:
            self.grid.move(delta)
            return
        if not self.project or self.image_id is None:
            return
        target = self.session.step(delta)
        if target is not None:
            self.show_image(target)
        elif self.review:
            self.statusBar().showMessage("End of the review queue")

    # ---- export, help, closing ------------------------------------------------------------
    def export(self) -> None:
        if not self.project:
            return
        dlg = ExportDialog(self)
        if not dlg.exec():
            return
        fmt, opts = dlg.value()
        start = self.qs.value("last_export_dir", str(self.project.folder), str)
        if EXPORTERS[fmt].folder:
            out = QFileDialog.getExistingDirectory(self, f"Export {EXPORTERS[fmt].label} into", start)
        else:
            name, kind = EXPORTERS[fmt].file
            out, _ = QFileDialog.getSaveFileName(self, f"Export {EXPORTERS[fmt].label}", str(Path(start) / name), kind)
        if out:
            self.qs.setValue("last_export_dir", out if EXPORTERS[fmt].folder else str(Path(out).parent))
            self.export_to(Path(out), fmt, opts)

    def import_annotations(self) -> None:
        """File -> Import: a COCO, YOLO-seg, VOC, labelme or CVAT source into the project (the CLI's recipe)."""
        if not self.project:
            return
        if self.worker is not None:
            self.statusBar().showMessage(
                "A propagation or adaptation is running: cancel it (Ctrl+.) or wait, then import"
            )
            return
        dlg = ImportDialog(self.qs.value("last_import_dir", str(self.project.image_root), str), self)
        if dlg.exec():
            source, fmt, state, overwrite = dlg.value()
            self.qs.setValue("last_import_dir", str(source if source.is_dir() else source.parent))
            self.import_from(source, fmt, state, overwrite)

    def import_from(self, source: Path, fmt: str, state: State, overwrite: bool) -> None:
        """Import in the background, with the status bar's progress (a step per mask stored) and Cancel; then show
        the result: new classes, masks and states, what was done and left out in the status bar, a bad file in a
        message box (nothing is stored then: every format is read and checked before a mask is stored)."""
        if self.job.jobs.busy or self.job.jobs.stopping:
            self.statusBar().showMessage("Wait for the running job to finish (Ctrl+. cancels it), then import")
            return
        self._flush_writes()
        project = self.project

        def work(steps: Steps) -> str:  # off the GUI thread: what it did, in words
            n = import_annotations(project, source, fmt, state, overwrite, steps=steps)
            done, warnings = import_report(n, "tick 'Replace accepted and edited masks' to replace them")
            return "; ".join([done[0].upper() + done[1:], *warnings])

        worker = StepsWorker(work, "importing", (ImportFormatError, ProjectError, ImageReadError, OSError))
        worker.progress.connect(self.job.step)
        worker.finished.connect(self._import_done)
        self.job.start(worker, 0, "importing: reading…", "Import cancelled: the masks stored until then stay")

    def _import_done(self, cancelled: bool, error: str) -> None:
        if not error:
            self.session.save()  # what was stored, all of it or (cancelled) until then
            if self.image_id is not None:
                said = self.statusBar().currentMessage()
                self.show_image(self.image_id)  # its mask may be new
                self.statusBar().showMessage(said)
        if not cancelled:  # (if it was, the panel said so)
            self._steps_done(self.sender(), "Import failed", error)

    def export_to(self, out: Path, fmt: str, opts) -> None:
        """Export in the background, with the status bar's progress and Cancel; what was written, skipped and left
        out is said when it ends, a failure in a message box."""
        if self.job.jobs.busy or self.job.jobs.stopping:
            self.statusBar().showMessage("Wait for the running job to finish (Ctrl+. cancels it), then export")
            return
        self._flush_writes()
        exporter, project = EXPORTERS[fmt], self.project

        def work(steps: Steps) -> str:  # off the GUI thread: what it wrote and left out, in words
            n = exporter.write(project, out, opts, steps)
            left = left_out_proposals(project, opts)
            done, warnings = exporter.report(n, out, left, "tick 'also export unreviewed proposals'")
            return "; ".join([f"Exported {done}", *warnings])

        worker = StepsWorker(work, "exporting", (ExportError, ProjectError, OSError))
        worker.progress.connect(self.job.step)
        worker.finished.connect(self._export_done)
        left = f"the files written so far stay in {out}" if exporter.folder else f"{out} was not written"
        self.job.start(worker, 0, "exporting…", f"Export cancelled: {left}")

    def _export_done(self, cancelled: bool, error: str) -> None:
        if not cancelled:  # (if it was, the panel said so)
            self._steps_done(self.sender(), "Export failed", error)

    def _steps_done(self, worker: StepsWorker, failed: str, error: str) -> None:
        """An import or export ended: its message (worker.result) in the status bar, or its error in a message box
        too; nothing if it is no longer the job shown (cancelled before)."""
        if not error:
            self.job.finish(worker, worker.result)
        elif self.job.finish(worker, f"{failed}: {error}"):
            QMessageBox.warning(self, failed, error)

    def show_help(self) -> None:
        HelpDialog(self.named_actions, GESTURES, self).exec()

    def closeEvent(self, event) -> None:
        self.job.jobs.cancel()
        self.wait_for_worker()
        self._close_session()
        self.theme.stop()
        super().closeEvent(event)


def launch(argv: list[str]) -> int:
    """Run the Qt event loop with a main window; argv[0], when given, is a folder or project to open."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName(ORG)
    app.setApplicationName(APP)
    win = MainWindow(Path(argv[0]) if argv else None)
    win.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    win.show()
    try:
        return app.exec()
    finally:
        close_predictors()
