"""The app's dialogs and its persistent settings: model settings, export and import options, the shortcut sheet."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtGui import QAction, QFont
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from annotator.app.actions import MENUS, Action
from annotator.config import DEVICES, MIN_INSTANCE_AREA, Model, State, out_of_range
from annotator.formats.export import ExportOptions
from annotator.formats.exporters import EXPORTERS
from annotator.formats.importers import AUTO, IMPORTERS
from annotator.inference.crf import CRF_HELP, CRF_RANGES, CRFParams


def _add_ok_cancel(dialog: QDialog, form: QFormLayout) -> None:
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
    buttons.accepted.connect(dialog.accept)
    buttons.rejected.connect(dialog.reject)
    form.addRow(buttons)


MODEL_LABELS = {Model.PANET: "PANet", Model.SGONE: "SG-One (this folder's adapted head if any, else the shipped one)"}


@dataclass
class ModelSettings:
    """What propagation runs with; persisted in QSettings between runs."""

    model: Model = Model.PANET
    crf: bool = True
    presence_threshold: float = 0.0
    device: str = DEVICES[0]
    crf_params: CRFParams = CRFParams()

    @classmethod
    def load(cls, qs: QSettings) -> ModelSettings:
        d = cls()
        name = str(qs.value("model/name", d.model))
        return cls(
            model=Model(name) if name in Model.values() else d.model,
            crf=str(qs.value("model/crf", d.crf)).lower() == "true",
            presence_threshold=float(qs.value("model/presence_threshold", d.presence_threshold)),
            device=str(qs.value("model/device", d.device)),
            crf_params=_stored_crf(qs),
        )

    def save(self, qs: QSettings) -> None:
        qs.setValue("model/name", self.model)
        qs.setValue("model/crf", self.crf)
        qs.setValue("model/presence_threshold", self.presence_threshold)
        qs.setValue("model/device", self.device)
        for name, value in self.crf_params.as_dict().items():
            qs.setValue(f"crf/{name}", value)


def _stored_crf(qs: QSettings) -> CRFParams:
    """The CRF parameters kept in QSettings; a missing, unreadable or out-of-range one is the default."""
    out = {}
    for f in fields(CRFParams):
        try:
            value = type(f.default)(qs.value(f"crf/{f.name}", f.default))
        except (TypeError, ValueError):
            continue
        if out_of_range({f.name: CRF_RANGES[f.name]}, lambda _, v=value: v) is None:
            out[f.name] = value
    return CRFParams(**out)


class SettingsDialog(QDialog):
    """Model, CRF, presence threshold and device."""

    def __init__(self, current: ModelSettings, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Propagation settings")
        form = QFormLayout(self)
        self.model = QComboBox()
        for m in Model:
            self.model.addItem(MODEL_LABELS[m], m.value)
        self.model.setCurrentIndex(max(0, self.model.findData(current.model)))
        self.crf = QCheckBox("Refine edges with a dense CRF")
        self.crf.setChecked(current.crf)
        self.crf_fields = {}  # CRFParams field -> its spin box, one per parameter, in CRF_RANGES
        for f in fields(CRFParams):
            lo, hi = CRF_RANGES[f.name]
            box = QSpinBox() if f.type in (int, "int") else QDoubleSpinBox()
            box.setRange(lo, hi)
            box.setValue(getattr(current.crf_params, f.name))
            box.setEnabled(current.crf)
            box.setToolTip(CRF_HELP[f.name][0].upper() + CRF_HELP[f.name][1:])
            self.crf.toggled.connect(box.setEnabled)
            self.crf_fields[f.name] = box
        self.threshold = QDoubleSpinBox()
        self.threshold.setRange(0.0, 1.0)
        self.threshold.setSingleStep(0.05)
        self.threshold.setValue(current.presence_threshold)
        self.threshold.setToolTip("Proposals scoring below this come back empty (the class judged absent)")
        self.device = QComboBox()
        for d in DEVICES:
            self.device.addItem(d, d)
        self.device.setCurrentIndex(max(0, self.device.findData(current.device)))
        form.addRow("Model", self.model)
        form.addRow("", self.crf)
        for name, box in self.crf_fields.items():
            form.addRow(f"  CRF {name.replace('_', ' ')}", box)
        form.addRow("Presence threshold", self.threshold)
        form.addRow("Device", self.device)
        _add_ok_cancel(self, form)

    def value(self) -> ModelSettings:
        crf = CRFParams(**{name: type(getattr(CRFParams, name))(box.value()) for name, box in self.crf_fields.items()})
        return ModelSettings(
            Model(self.model.currentData()),
            self.crf.isChecked(),
            self.threshold.value(),
            self.device.currentData(),
            crf,
        )


class ExportDialog(QDialog):
    """Format and content of an export."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export")
        form = QFormLayout(self)
        self.format = QComboBox()
        for key, exporter in EXPORTERS.items():
            self.format.addItem(exporter.label, key)
        self.proposals = QCheckBox("Also export unreviewed proposals (with their score)")
        self.instances = QCheckBox("One annotation per instance (else one per class and image)")
        self.min_area = QSpinBox()
        self.min_area.setRange(0, 1_000_000)
        self.min_area.setValue(MIN_INSTANCE_AREA)
        self.min_area.setSuffix(" px")
        self.min_area.setToolTip(
            "Instances (and VOC's objects): parts of fewer pixels, e.g. the CRF's specks, are left out"
        )
        self.holes = QComboBox()
        self.holes.addItem("keep them as RLE", "rle")
        self.holes.addItem("stop the export", "refuse")
        form.addRow("Format", self.format)
        form.addRow("", self.proposals)
        form.addRow("", self.instances)
        form.addRow("Smallest part of an instance", self.min_area)
        form.addRow("Polygons with holes", self.holes)
        self.val_fraction = QDoubleSpinBox()
        self.val_fraction.setRange(0.0, 0.95)
        self.val_fraction.setSingleStep(0.05)
        self.val_fraction.setToolTip("This share of the images goes to the val split (0: no split)")
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setToolTip("The seed that draws the val split")
        form.addRow("Val split (share of images)", self.val_fraction)
        form.addRow("Split seed", self.seed)
        self.format.currentIndexChanged.connect(self._format_chosen)
        self._format_chosen()
        _add_ok_cancel(self, form)

    def _format_chosen(self) -> None:
        """The holes policy is COCO polygons' only (other formats keep holes their own way); a val split is for the
        formats that write one."""
        exporter = EXPORTERS[self.format.currentData()]
        self.holes.setEnabled(exporter.polygons)
        self.val_fraction.setEnabled(exporter.splits)
        self.seed.setEnabled(exporter.splits)

    def value(self) -> tuple[str, ExportOptions]:
        fmt = self.format.currentData()
        return fmt, ExportOptions(
            include_proposals=self.proposals.isChecked(),
            instances=self.instances.isChecked(),
            min_area=self.min_area.value(),
            polygons=EXPORTERS[fmt].polygons,
            holes=self.holes.currentData(),
            val_fraction=self.val_fraction.value() if EXPORTERS[fmt].splits else 0.0,
            seed=self.seed.value(),
        )


class ImportDialog(QDialog):
    """What to import (a file or a folder, its format) and how (accepted or proposed, replacing the user's masks
    or not)."""

    def __init__(self, start: str, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Import annotations")
        self.start = start
        form = QFormLayout(self)
        self.source = QLineEdit()
        hint = "a COCO or CVAT file, or a YOLO-seg, VOC, labelme or mask PNG folder"
        self.source.setPlaceholderText(hint)
        self.source.setMinimumWidth(self.source.fontMetrics().horizontalAdvance(hint) + 24)  # the hint shows whole
        pick_file, pick_folder = QPushButton("File…"), QPushButton("Folder…")
        pick_file.clicked.connect(self._pick_file)
        pick_folder.clicked.connect(self._pick_folder)
        row = QHBoxLayout()
        for w in (self.source, pick_file, pick_folder):
            row.addWidget(w)
        self.format = QComboBox()
        self.format.addItem("Detect from the file or folder", AUTO)
        for key, importer in IMPORTERS.items():
            self.format.addItem(importer.label, key)
        self.state = QComboBox()
        self.state.addItem("accepted (reviewed)", State.ACCEPTED)
        self.state.addItem("proposed (to review)", State.PROPOSED)
        self.overwrite = QCheckBox("Replace accepted and edited masks (kept otherwise)")
        form.addRow("From", row)
        form.addRow("Format", self.format)
        form.addRow("Import as", self.state)
        form.addRow("", self.overwrite)
        _add_ok_cancel(self, form)

    def _pick_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Annotations file", self.start, "COCO JSON or CVAT XML (*.json *.xml)"
        )
        if path:
            self.source.setText(path)

    def _pick_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Annotations folder", self.start)
        if path:
            self.source.setText(path)

    def value(self) -> tuple[Path, str, State, bool]:
        """(source, format or AUTO, state, overwrite)."""
        return (
            Path(self.source.text().strip()),
            self.format.currentData(),
            self.state.currentData(),
            self.overwrite.isChecked(),
        )


class HelpDialog(QDialog):
    """A read-only sheet of every action with its shortcut, grouped by menu (read from the actions themselves, so
    it cannot drift), then the mouse gestures."""

    def __init__(self, actions: dict[str, QAction], gestures: Sequence[tuple[str, str]], parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Shortcuts and mouse")
        self.resize(560, 720)
        rows: list[tuple[str, str] | str] = []  # (what, how) or a group's title
        for title, entries in MENUS.items():
            shown = [actions[e.name] for e in entries if isinstance(e, Action) and e.name in actions]
            rows.append(title.replace("&", ""))
            rows += [(a.text().replace("&", ""), a.shortcut().toString()) for a in shown]
        rows.append("Mouse")
        rows += list(gestures)
        table = QTableWidget(len(rows), 2)
        table.setHorizontalHeaderLabels(["Action", "Shortcut"])
        table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        table.verticalHeader().hide()
        bold = QFont()
        bold.setBold(True)
        for r, row in enumerate(rows):
            if isinstance(row, str):
                item = QTableWidgetItem(row)
                item.setFont(bold)
                table.setItem(r, 0, item)
                table.setSpan(r, 0, 1, 2)
                continue
            for c, text in enumerate(row):
                table.setItem(r, c, QTableWidgetItem(text))
        table.resizeColumnsToContents()
        self.table = table
        layout = QVBoxLayout(self)
        layout.addWidget(table)
