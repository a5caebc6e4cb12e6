"""The project's typed events (napari's pattern without Qt): the project emits them after a change is made, on
the thread that made it; views, the autosaver and tests connect to the ones they show."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, ParamSpec

P = ParamSpec("P")


class Event(Generic[P]):
    """One kind of change; `emit(...)` calls every connected callback with its arguments, in connection order."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[P, None]] = []

    def connect(self, callback: Callable[P, None]) -> None:
        self._callbacks.append(callback)

    def disconnect(self, callback: Callable[P, None]) -> None:
        """Stop calling `callback` (a callback never connected is ignored)."""
        if callback in self._callbacks:
            self._callbacks.remove(callback)

    def emit(self, *args: P.args, **kwargs: P.kwargs) -> None:
        for callback in list(self._callbacks):
            callback(*args, **kwargs)


@dataclass(frozen=True)
class ProjectEvents:
    """What changed in a project; `changed` follows every change (the index needs saving)."""

    changed: Event[[]] = field(default_factory=Event)
    classes: Event[[]] = field(default_factory=Event)  # a class added, renamed, recoloured or deleted
    record: Event[[int, int]] = field(default_factory=Event)  # (image, class): its mask or state
    supports: Event[[int, int]] = field(default_factory=Event)  # (image, class): marked or unmarked as a support
    images: Event[[]] = field(default_factory=Event)  # images added to the project (a rescan of the folder)
