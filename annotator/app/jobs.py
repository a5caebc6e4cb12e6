"""The app's background job: one at a time, in its own QThread, cancellable, kept alive until its thread ends."""

from __future__ import annotations

from PySide6.QtCore import QObject, QThread

from annotator.app.workers import start_in_thread


class Jobs(QObject):
    """Starts a worker (an object with `run`, `cancel` and a `finished` signal) in a QThread and owns it.

    `current` is the job the window shows: None once it finished or was cancelled. A cancelled job may still
    be finishing its last step off the GUI thread (`stopping`); nothing new starts beside it, since jobs
    share the predictor and the project."""

    def __init__(self, parent: QObject) -> None:
        super().__init__(parent)
        self.current: QObject | None = None
        self.thread: QThread | None = None  # the latest job's thread
        self._alive: list[tuple[QThread, QObject]] = []  # freed only once their thread has finished

    @property
    def busy(self) -> bool:
        return self.current is not None

    @property
    def stopping(self) -> bool:
        """Whether a job's thread still runs (a cancelled one finishing its last step)."""
        return any(t.isRunning() for t, _ in self._alive)

    def start(self, worker: QObject) -> None:
        """Run `worker` in a new thread; its signals must be connected before."""
        self.current = worker
        self.thread = start_in_thread(worker, self)
        self._alive.append((self.thread, worker))
        self.thread.finished.connect(self._forget)  # queued: runs on the GUI thread

    def end(self, worker: QObject) -> bool:
        """Mark `worker`'s job as over on its `finished`; False if it no longer is the shown one (cancelled)."""
        if worker is not self.current:
            return False
        self.current = None
        return True

    def cancel(self) -> bool:
        """Ask the shown job to stop, and stop showing it; False if there is none."""
        if self.current is None:
            return False
        self.current.cancel()
        self.current = None
        return True

    def wait(self, timeout_ms: int = 60000) -> None:
        """Block until every job's thread has stopped (closing, tests)."""
        for thread, _ in list(self._alive):
            thread.wait(timeout_ms)

    def _forget(self) -> None:
        done = self.sender()
        self._alive = [(t, w) for t, w in self._alive if t is not done]
