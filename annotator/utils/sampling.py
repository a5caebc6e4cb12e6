"""Deterministic subsets: training sources, the folder sample the learning loop looks at, left-out supports."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np

T = TypeVar("T")


def evenly_spaced(items: Sequence[T], n: int) -> list[T]:
    """At most n items, evenly spaced over the sequence (all of them when there are few enough)."""
    if len(items) <= n:
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, n).round().astype(int)]
