"""Background work for the app, each in a QThread, reporting progress and cancellable: propagation, SG-One's
adaptation, and work done in steps (an export, an import)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QThread, Signal

from annotator.build import ModelSpec, build_model
from annotator.config import Model
from annotator.inference.crf import CRFParams
from annotator.inference.feature_cache import FeatureCache, default_cache_folder
from annotator.inference.predictor import Predictor
from annotator.inference.propagate import ImageResult, SupportError
from annotator.io.weights import WeightsError
from annotator.project.store import Project, ProjectError
from annotator.project.workflows import adapt_to_project, propagate_into_project
from annotator.utils.progress import Cancelled, Steps

_predictors: dict[tuple, Predictor] = {}


def shared_predictor(
    device: str, crf: CRFParams | None, model: Model = Model.PANET, checkpoint: Path | None = None
) -> Predictor:
    """One predictor per (device, CRF on or off, model, checkpoint) for the app's lifetime: weights load once;
    the CRF's parameters are the latest asked for."""
    stamp = checkpoint.stat().st_mtime_ns if checkpoint and checkpoint.exists() else None  # re-adapted: reload
    key = (device, crf is not None, model, checkpoint, stamp)
    if key not in _predictors:
        for old in [k for k in _predictors if k[:4] == key[:4]]:  # an older adaptation: let it go
            _predictors.pop(old).close()
        # The CRF runs in worker processes: in this process it would hold the GIL and freeze the GUI.
        # Features are cached by content: propagating again after adding a support costs only the matching.
        _predictors[key] = Predictor(
            build_model(ModelSpec(model=model, checkpoint=checkpoint)),
            device=device,
            crf=crf,
            batch_size=1,
            crf_processes=os.cpu_count() or 1,
            cache=FeatureCache(default_cache_folder()),
        )
    _predictors[key].crf = crf
    return _predictors[key]


def close_predictors() -> None:
    """Stop every shared predictor's CRF workers at once (the app quits: a refinement in flight, which can take a
    minute on a large photo, would otherwise keep the process alive after its window closed)."""
    while _predictors:
        _predictors.popitem()[1].close(wait_s=0)


class PropagationWorker(QObject):
    """Runs `propagate_into_project` off the GUI thread. Cancel is honoured between images."""

    started_on = Signal(str)  # device name
    progress = Signal(int, int, float)  # done, total, images per second
    result = Signal(int, bool)  # image id, whether a proposal was stored
    skipped = Signal(str)
    learned = Signal(str)  # what the model learned from, e.g. "learned from 7 masks and 12 rejections"
    finished = Signal(int, bool, str)  # done, cancelled, error ('' when none)

    def __init__(
        self,
        project: Project,
        class_id: int,
        image_ids: list[int],
        device: str,
        crf: CRFParams | None,
        presence_threshold: float,
        model: Model = Model.PANET,
        checkpoint: Path | None = None,
        include_rejected: bool = False,
    ) -> None:
        super().__init__()
        self.project, self.class_id, self.image_ids = project, class_id, image_ids
        self.device, self.crf, self.threshold = device, crf, presence_threshold
        self.model, self.checkpoint, self.include_rejected = model, checkpoint, include_rejected
        self._cancel = threading.Event()

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def run(self) -> None:
        done = 0
        t0 = time.perf_counter()
        total = len(self.image_ids)

        def on_result(image_id: int, res: ImageResult, stored: bool) -> None:
            nonlocal done
            done += 1
            if res.error:
                self.skipped.emit(res.error)
            self.result.emit(image_id, stored)
            self.progress.emit(done, total, done / max(time.perf_counter() - t0, 1e-9))

        try:
            predictor = shared_predictor(self.device, self.crf, self.model, self.checkpoint)
            self.started_on.emit(predictor.device_name)
            propagate_into_project(
                self.project,
                self.class_id,
                predictor,
                self.image_ids,
                self.threshold,
                cancelled=self._cancel.is_set,
                on_result=on_result,
                include_rejected=self.include_rejected,
                on_learned=lambda _: self.learned.emit(predictor.learned.summary()),
            )
        except (SupportError, WeightsError, ProjectError, ValueError, RuntimeError) as exc:
            self.finished.emit(done, self.cancelled, str(exc))
            return
        self.finished.emit(done, self.cancelled, "")


class AdaptWorker(QObject):
    """Self-supervised SG-One training on the project's own images ("Adapt to this folder"), from the
    shipped head (or the project's previous adaptation, resumed), into the project folder."""

    progress = Signal(int, int, str)  # done, total, what
    finished = Signal(bool, str)  # cancelled, error ('' when none)

    def __init__(self, project: Project, device: str) -> None:
        super().__init__()
        self.project, self.device = project, device
        self._cancel = threading.Event()

    def cancel(self) -> None:
        self._cancel.set()

    def run(self) -> None:
        try:
            adapt_to_project(
                self.project,
                self.device,
                stop=self._cancel.is_set,
                progress=lambda done, total, what: self.progress.emit(done, total, f"adapting: {what}"),
            )
        except (WeightsError, ValueError, RuntimeError, OSError) as exc:
            self.finished.emit(self._cancel.is_set(), str(exc))
            return
        self.finished.emit(self._cancel.is_set(), "")


class StepsWorker(QObject):
    """Runs `work(steps)` off the GUI thread: work that calls `steps(done, total)` once per step (an export, an
    import), which reports progress and raises Cancelled once cancelled. Its return value is kept in `result`; the
    exceptions of `errors` end it with their message."""

    progress = Signal(int, int, str)  # done, total, what
    finished = Signal(bool, str)  # cancelled, error ('' when none)

    def __init__(self, work: Callable[[Steps], object], what: str, errors: tuple[type[Exception], ...]) -> None:
        super().__init__()
        self.work, self.what, self.errors = work, what, errors
        self.result: object = None
        self._cancel = threading.Event()

    def cancel(self) -> None:
        self._cancel.set()

    def run(self) -> None:
        try:
            steps = Steps(lambda done, total: self.progress.emit(done, total, self.what), self._cancel.is_set)
            self.result = self.work(steps)
        except Cancelled:
            self.finished.emit(True, "")
            return
        except self.errors as exc:
            self.finished.emit(False, str(exc))
            return
        self.finished.emit(False, "")


def start_in_thread(worker: QObject, parent: QObject) -> QThread:
    """Move `worker` to a new QThread and run its `run` there; the thread quits when the worker finishes.

    The caller must keep both alive until the thread's `finished`: a worker freed from Python while its
    thread still runs it is a use-after-free in Qt.
    """
    thread = QThread(parent)
    worker.moveToThread(thread)
    thread.started.connect(worker.run)
    # Direct: quit from the worker's own thread as it finishes, so that a GUI thread blocked in QThread.wait
    # (closing, wait_for_worker) is not waiting for a queued quit that only it could deliver.
    worker.finished.connect(thread.quit, Qt.ConnectionType.DirectConnection)
    thread.start()
    return thread
