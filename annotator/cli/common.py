"""What every command shares: the one-line failure and its exit code."""

from __future__ import annotations

import sys


def fail(msg: str) -> int:
    """Print `annotator: error: MSG` and return the exit code of bad input (2)."""
    print(f"annotator: error: {msg}", file=sys.stderr)
    return 2
