"""The app's background job: one at a time, in its own QThread, cancellable, kept alive until its thread ends; and
its part of the status bar (JobPanel)."""

from __future__ import annotations

from PySide6.QtCore import QObject, QThread, Signal
from PySide6.QtWidgets import QLabel, QProgressBar, QPushButton, QStatusBar

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


class JobPanel(QObject):
    """The status bar's part of the background job: its progress bar, rate or step, and Cancel; one job at a time
    (Jobs). `ended(message)` follows the shown job's end: finished, failed or cancelled, said in words."""

    ended = Signal(str)

    def __init__(self, status_bar: QStatusBar, parent: QObject) -> None:
        super().__init__(parent)
        self.jobs = Jobs(self)
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(260)
        self.progress.setFormat("%v/%m")
        self.progress.hide()
        self.eta = QLabel("")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.hide()
        self.cancel_button.clicked.connect(self.cancel)
        for w in (self.progress, self.eta, self.cancel_button):
            status_bar.addPermanentWidget(w)
        self._cancelled = ""

    def start(self, worker: QObject, total: int, text: str, cancelled: str) -> None:
        """Run `worker` (its signals connected) and show it: `total` steps (0: unknown yet), `text` until the first
        report, `cancelled` said if the user cancels it."""
        self.progress.setRange(0, total)
        self.progress.setValue(0)
        self.eta.setText(text)
        self.progress.show()
        self.cancel_button.show()
        self._cancelled = cancelled
        self.jobs.start(worker)

    def rate(self, done: int, total: int, rate: float) -> None:
        """A propagation's report: images done, and the rate with the time left."""
        self.progress.setValue(done)
        left = (total - done) / rate if rate > 0 else 0
        self.eta.setText(f"{rate:.2f} img/s · ETA {int(left // 60)}:{int(left % 60):02d}")

    def step(self, done: int, total: int, what: str) -> None:
        """A report in steps (an adaptation, an export, an import): steps done of `total`, and what it does."""
        self.progress.setRange(0, total)
        self.progress.setValue(done)
        self.eta.setText(what)

    def cancel(self) -> None:
        """Stop the shown job, and say so."""
        if self.jobs.cancel():
            self._end(self._cancelled)

    def finish(self, worker: QObject, message: str) -> bool:
        """`worker` ended with `message`; False (nothing said) if it was no longer shown (cancelled before)."""
        if not self.jobs.end(worker):
            return False
        self._end(message)
        return True

    def _end(self, message: str) -> None:
        self.progress.hide()
        self.cancel_button.hide()
        self.eta.setText("")
        self.ended.emit(message)
