"""The project's typed events (napari's way: the data model announces, views observe; no Qt here).

A view connects a callback to the event it shows; the project emits after each change, on the thread that made
it, once its lock is released. A Qt view passes the call on through a signal of its own, which Qt queues onto
the GUI thread when the change was made elsewhere (the session's writer, a propagation)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, ParamSpec

P = ParamSpec("P")


class Event(Generic[P]):
    """Callbacks of one kind of change, called in the order they connected."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[P, object]] = []
        self._lock = threading.Lock()

    def connect(self, callback: Callable[P, object]) -> None:
        with self._lock:
            self._callbacks.append(callback)

    def disconnect(self, callback: Callable[P, object]) -> None:
        with self._lock:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

    def emit(self, *args: P.args, **kwargs: P.kwargs) -> None:
        with self._lock:
            callbacks = list(self._callbacks)
        for cb in callbacks:
            cb(*args, **kwargs)


@dataclass(frozen=True)
class ProjectEvents:
    """What a Project announces."""

    changed: Event[[]] = field(default_factory=Event)  # anything: the index must be saved (the autosaver)
    record: Event[[int, int]] = field(default_factory=Event)  # (image id, class id): its state, mask or score
    classes: Event[[]] = field(default_factory=Event)  # a class added, renamed, recoloured or deleted
    supports: Event[[int, int]] = field(default_factory=Event)  # (image id, class id): marked or taken out
