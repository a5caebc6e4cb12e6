"""The app's look: a light or dark palette, following the system's colour scheme unless the user picks one, and
the actions' icons (resources/icons/NAME.svg), drawn in the palette's text colour so they read on either."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray, QObject, QSettings, Qt, Signal
from PySide6.QtGui import QColor, QGuiApplication, QIcon, QPainter, QPalette, QPixmap
from PySide6.QtSvg import QSvgRenderer
from PySide6.QtWidgets import QApplication, QStyleFactory

from annotator.config import Theme

ICONS = Path(__file__).resolve().parents[2] / "resources" / "icons"
ICON_PX = 48  # drawn at this size and scaled down by Qt, so it is sharp on high-DPI screens too


def dark_palette() -> QPalette:
    """A dark palette for the Fusion style (grey surfaces, light text, blue selection)."""
    p = QPalette()
    window, base, text, mid = QColor(45, 45, 48), QColor(30, 30, 32), QColor(225, 225, 225), QColor(128, 128, 128)
    for role, color in (
        (QPalette.ColorRole.Window, window),
        (QPalette.ColorRole.WindowText, text),
        (QPalette.ColorRole.Base, base),
        (QPalette.ColorRole.AlternateBase, QColor(40, 40, 43)),
        (QPalette.ColorRole.ToolTipBase, window),
        (QPalette.ColorRole.ToolTipText, text),
        (QPalette.ColorRole.PlaceholderText, mid),
        (QPalette.ColorRole.Text, text),
        (QPalette.ColorRole.Button, window),
        (QPalette.ColorRole.ButtonText, text),
        (QPalette.ColorRole.BrightText, QColor(255, 90, 90)),
        (QPalette.ColorRole.Link, QColor(90, 160, 240)),
        (QPalette.ColorRole.Highlight, QColor(42, 110, 190)),
        (QPalette.ColorRole.HighlightedText, QColor(255, 255, 255)),
        (QPalette.ColorRole.Light, QColor(70, 70, 74)),
        (QPalette.ColorRole.Midlight, QColor(58, 58, 62)),
        (QPalette.ColorRole.Mid, QColor(38, 38, 40)),
        (QPalette.ColorRole.Dark, QColor(20, 20, 22)),
        (QPalette.ColorRole.Shadow, QColor(0, 0, 0)),
    ):
        p.setColor(role, color)
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        p.setColor(QPalette.ColorGroup.Disabled, role, mid)
    return p


def system_is_dark() -> bool:
    """Whether the platform reports a dark colour scheme (an unknown scheme counts as light)."""
    return QGuiApplication.styleHints().colorScheme() == Qt.ColorScheme.Dark


def icon(name: str, palette: QPalette) -> QIcon:
    """The icon of action `name` in `palette`'s text colours (normal and disabled), or a null icon when
    resources/icons has none."""
    path = ICONS / f"{name}.svg"
    if not path.is_file():
        return QIcon()
    svg = path.read_text(encoding="utf-8")
    out = QIcon()
    modes = ((QIcon.Mode.Normal, QPalette.ColorGroup.Active), (QIcon.Mode.Disabled, QPalette.ColorGroup.Disabled))
    for mode, group in modes:
        color = palette.color(group, QPalette.ColorRole.ButtonText).name()
        renderer = QSvgRenderer(QByteArray(svg.replace("currentColor", color).encode("utf-8")))
        pix = QPixmap(ICON_PX, ICON_PX)
        pix.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pix)
        renderer.render(painter)
        painter.end()
        out.addPixmap(pix, mode)
    return out


class ThemeSwitch(QObject):
    """The theme in use: stored in QSettings ('theme'), applied to the whole application (the Fusion style with a
    light or dark palette), and re-applied when the system's scheme changes while it is followed."""

    changed = Signal()  # the palette changed: what is drawn in its colours is drawn again

    def __init__(self, settings: QSettings, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.qs = settings
        value = str(settings.value("theme", Theme.SYSTEM.value))
        self.theme = Theme(value) if value in Theme.values() else Theme.SYSTEM
        QGuiApplication.styleHints().colorSchemeChanged.connect(self._system_changed)
        self._following = True
        self._apply()

    def set_theme(self, theme: Theme) -> None:
        """Use and remember `theme`."""
        self.theme = theme
        self.qs.setValue("theme", theme.value)
        self._apply()

    def stop(self) -> None:
        """Stop following the system (the window that owns this switch is closing)."""
        if self._following:
            QGuiApplication.styleHints().colorSchemeChanged.disconnect(self._system_changed)
            self._following = False

    def _system_changed(self, _scheme: Qt.ColorScheme) -> None:
        if self.theme == Theme.SYSTEM:
            self._apply()

    def _apply(self) -> None:
        app = QApplication.instance()
        dark = self.theme == Theme.DARK or (self.theme == Theme.SYSTEM and system_is_dark())
        style = QStyleFactory.create("Fusion")  # a style that draws what the palette says, on every platform
        app.setStyle(style)
        app.setPalette(dark_palette() if dark else style.standardPalette())
        self.changed.emit()
