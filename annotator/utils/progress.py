"""Progress and cancellation of long work that a front end runs in the background (an export, an import, the
head's fit)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


class Cancelled(Exception):
    """The work was stopped by its `cancelled` callback."""


def _never() -> bool:
    return False


def _ignore(_done: int, _total: int) -> None:
    return None


@dataclass(frozen=True)
class Steps:
    """Called once per step of a loop: raises Cancelled when `cancelled()` says so, else reports (done, total)."""

    report: Callable[[int, int], None] = _ignore
    cancelled: Callable[[], bool] = _never

    def __call__(self, done: int, total: int) -> None:
        if self.cancelled():
            raise Cancelled()
        self.report(done, total)


NO_STEPS = Steps()  # nothing reported, never cancelled: the CLI's exports
