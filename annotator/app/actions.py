"""Every action of the app in one table (labelme's way): its menu, text, shortcut and slot. The window builds its
menus from it and the help sheet lists it, grouped by menu, with the mouse gestures. A key is a
QKeySequence.StandardKey (the platform's own) or a portable string."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from PySide6.QtGui import QKeySequence

from annotator.config import Theme


@dataclass(frozen=True)
class Action:
    """One menu entry: `slot` is called with the main window."""

    name: str
    text: str
    key: QKeySequence.StandardKey | str | None
    slot: Callable[[Any], object]
    checkable: bool = False


SEPARATOR = "-"
RECENT = "recent"  # the File menu's submenu of recent folders
TOOLS = ("brush", "eraser", "polygon", "fill")  # checkable, one at a time; also on the toolbar
THEMES = {"theme_system": Theme.SYSTEM, "theme_light": Theme.LIGHT, "theme_dark": Theme.DARK}  # one at a time
# the toolbar, left to right (each has resources/icons/NAME.svg); the brush, opacity and fill boxes follow
TOOLBAR = (
    "open_folder",
    "save",
    SEPARATOR,
    "undo",
    "redo",
    SEPARATOR,
    *TOOLS,
    SEPARATOR,
    "propagate_all",
    "propagate_again",
    "cancel",
    SEPARATOR,
    "review",
    "review_grid",
    "accept",
    "reject",
    SEPARATOR,
    "zoom_fit",
)

MENUS: dict[str, tuple[Action | str, ...]] = {
    "&File": (
        Action("open_folder", "&Open folder…", QKeySequence.StandardKey.Open, lambda w: w.choose_folder()),
        Action("open_project", "Open &project…", "Ctrl+Shift+O", lambda w: w.choose_project()),
        RECENT,
        Action("export", "&Export…", "Ctrl+E", lambda w: w.export()),
        Action("import", "&Import annotations…", "Ctrl+Shift+I", lambda w: w.import_annotations()),
        Action("save", "&Save now", QKeySequence.StandardKey.Save, lambda w: w.save_now()),
        Action("quit", "&Quit", QKeySequence.StandardKey.Quit, lambda w: w.close()),
    ),
    "&Edit": (
        Action("undo", "&Undo", QKeySequence.StandardKey.Undo, lambda w: w.undo()),
        Action("redo", "&Redo", "Ctrl+Shift+Z", lambda w: w.canvas.redo()),
        Action(
            "clear_mask", "&Clear mask", "Ctrl+Backspace", lambda w: w.canvas.replace_mask(np.zeros_like(w.canvas.mask))
        ),
        Action("invert_mask", "&Invert mask", "Ctrl+I", lambda w: w.canvas.replace_mask(~w.canvas.mask)),
    ),
    "&Tools": (
        Action("brush", "Brush", "B", lambda w: w.canvas.set_tool("brush"), checkable=True),
        Action("eraser", "Eraser", "E", lambda w: w.canvas.set_tool("eraser"), checkable=True),
        Action("polygon", "Polygon / lasso", "P", lambda w: w.canvas.set_tool("polygon"), checkable=True),
        Action("fill", "Fill", "G", lambda w: w.canvas.set_tool("fill"), checkable=True),
        Action("new_instance", "&New instance of the class (then paint it)", "N", lambda w: w.new_instance()),
        SEPARATOR,
        Action("bigger_brush", "Bigger brush", "]", lambda w: w.canvas.set_brush(round(w.canvas.brush * 1.25) + 1)),
        Action("smaller_brush", "Smaller brush", "[", lambda w: w.canvas.set_brush(round(w.canvas.brush / 1.25))),
    ),
    "&View": (
        Action("zoom_fit", "Zoom to &fit", "Ctrl+0", lambda w: w.canvas.fit()),
        Action("actual_size", "&Actual size (1:1)", "Ctrl+1", lambda w: w.canvas.actual_size()),
        Action("zoom_in", "Zoom &in", QKeySequence.StandardKey.ZoomIn, lambda w: w.canvas.zoom(1.25)),
        Action("zoom_out", "Zoom &out", QKeySequence.StandardKey.ZoomOut, lambda w: w.canvas.zoom(0.8)),
        Action("more_opaque", "More opaque overlay", "Ctrl+]", lambda w: w.change_opacity(0.1)),
        Action("more_transparent", "More transparent overlay", "Ctrl+[", lambda w: w.change_opacity(-0.1)),
        Action("outline", "Toggle &outline", "O", lambda w: w.toggle_outline()),
        SEPARATOR,
        *(
            Action(name, text, None, lambda w, t=theme: w.theme.set_theme(t), checkable=True)
            for (name, theme), text in zip(THEMES.items(), ("&Theme: as the system", "Theme: &light", "Theme: &dark"))
        ),
    ),
    "&Class": (
        Action("new_class", "&New class…", "Ctrl+N", lambda w: w.add_class()),
        Action("rename_class", "&Rename class…", "F2", lambda w: w.rename_class()),
        Action("recolor_class", "Re&colour class…", "Ctrl+Shift+C", lambda w: w.recolor_class()),
        Action("delete_class", "&Delete class", "Ctrl+Shift+Delete", lambda w: w.delete_class()),
        Action("add_support", "Use this mask as a &support", "S", lambda w: w.add_support()),
        Action(
            "remove_support", "&Not a support (propagation ignores this mask)", "Shift+S", lambda w: w.remove_support()
        ),
    ),
    "&Propagate": (
        Action("propagate_all", "Propagate to &all images", "Ctrl+P", lambda w: w.propagate("all")),
        Action(
            "propagate_selection", "Propagate to the &selection", "Ctrl+Shift+P", lambda w: w.propagate("selection")
        ),
        Action(
            "propagate_again", "Propagate again (not yet &accepted)", "Ctrl+Alt+P", lambda w: w.propagate("unreviewed")
        ),
        Action(
            "propagate_again_rejected",
            "Propagate again, &including rejected",
            "Ctrl+Alt+Shift+P",
            lambda w: w.propagate("unreviewed", include_rejected=True),
        ),
        Action("cancel", "&Cancel propagation or adaptation", "Ctrl+.", lambda w: w.cancel_job()),
        Action("adapt", "A&dapt SG-One to this folder (self-supervised)", "Ctrl+Alt+A", lambda w: w.adapt_to_folder()),
        Action("settings", "&Settings…", "Ctrl+,", lambda w: w.edit_settings()),
    ),
    "&Review": (
        Action("review", "&Review proposals (least confident first)", "R", lambda w: w.toggle_review(), checkable=True),
        Action("accept", "&Accept", "Return", lambda w: w.accept_current()),
        Action("reject", "Re&ject", "Backspace", lambda w: w.reject_current()),
        Action("review_grid", "Review &grid (a page of proposals at a time)", "Ctrl+G", lambda w: w.toggle_grid()),
        Action("mark_reject", "&Mark / unmark to reject (review grid)", "Space", lambda w: w.reject_current()),
        Action("next", "&Next image", "Right", lambda w: w.step(1)),
        Action("previous", "&Previous image", "Left", lambda w: w.step(-1)),
    ),
    "&Help": (Action("help", "&Shortcuts and mouse", "F1", lambda w: w.show_help()),),
}

KEYS: dict[str, QKeySequence.StandardKey | str] = {
    a.name: a.key for entries in MENUS.values() for a in entries if isinstance(a, Action) and a.key
}

# what the mouse does, for the help sheet (annotator.app.canvas and review_grid implement it)
GESTURES: tuple[tuple[str, str], ...] = (
    ("Left drag (brush, eraser)", "paint or erase"),
    ("Click points (polygon)", "add a vertex; double-click or Enter closes it, Esc drops it"),
    ("Left drag (polygon)", "a lasso, closed on release"),
    ("Drag a vertex's handle (polygon, before it is closed)", "move that vertex"),
    ("Click (fill)", "fill the region of similar colour (within the fill tolerance)"),
    ("Shift + closing or clicking (polygon, fill)", "cut the region out instead"),
    ("Middle drag, or Alt + left drag", "pan"),
    ("Wheel", "zoom"),
    ("Double-click (review grid)", "open the image to correct it"),
)
