"""The desktop app (Qt). Only this package imports Qt."""

from __future__ import annotations

from collections.abc import Sequence


def run_app(argv: Sequence[str]) -> int:
    """Open the main window, optionally on a folder given as the first argument."""
    from annotator.app.main_window import launch

    return launch(list(argv))
