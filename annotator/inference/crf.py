"""Dense-CRF refinement of a foreground probability map (Kraehenbuehl & Koltun) through pydensecrf."""

from __future__ import annotations

import os
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from multiprocessing import get_context

import cv2
import numpy as np
import pydensecrf.densecrf as dcrf
from pydensecrf.utils import unary_from_softmax

from annotator.config import out_of_range


@dataclass(frozen=True)
class CRFParams:
    """Mean-field iterations, smoothness kernel (position) and appearance kernel (position + colour), and a bias
    added to the foreground's logit in the unary (> 0: fuller masks, for thin objects such as people's limbs,
    whose proposals come out with high precision and low recall; off by default, see benchmarks/RESULTS.md).

    `max_side` caps the resolution the CRF runs at; larger images are refined downscaled and the
    marginals upsampled, which keeps a 4000x3000 photo at the cost of a 1024-pixel one.
    """

    iterations: int = 5
    gaussian_sxy: float = 3.0
    gaussian_compat: float = 3.0
    bilateral_sxy: float = 50.0
    bilateral_srgb: float = 13.0
    bilateral_compat: float = 5.0
    fg_bias: float = 0.0
    max_side: int = 1024

    def as_dict(self) -> dict:
        """Plain dict, for recording which settings made a proposal."""
        return asdict(self)

    def check(self) -> CRFParams:
        """Itself, or ValueError "bilateral-srgb 0.0: must be between 0.1 and 255.0" for the first parameter
        outside CRF_RANGES (pydensecrf crashes on some)."""
        problem = out_of_range(CRF_RANGES, lambda name: getattr(self, name))
        if problem:
            raise ValueError(problem)
        return self


# The accepted range of each parameter: what the CLI checks and the settings dialog offers.
CRF_RANGES = {
    "iterations": (1, 50),
    "gaussian_sxy": (0.1, 100.0),
    "gaussian_compat": (0.0, 100.0),
    "bilateral_sxy": (0.1, 500.0),
    "bilateral_srgb": (0.1, 255.0),
    "bilateral_compat": (0.0, 100.0),
    "fg_bias": (-10.0, 10.0),
    "max_side": (64, 8192),
}

# What each parameter does, in one line: the CLI's --crf-* help and the settings dialog's tooltips.
CRF_HELP = {
    "iterations": "mean-field iterations: more follow the image further from the network's mask",
    "gaussian_sxy": "reach of the smoothness kernel in pixels: it removes specks and fills pinholes",
    "gaussian_compat": "weight of the smoothness kernel",
    "bilateral_sxy": "reach of the appearance kernel in pixels: alike colours within it take the same label",
    "bilateral_srgb": "colour difference the appearance kernel still counts as alike (0-255 per channel)",
    "bilateral_compat": "weight of the appearance kernel: higher snaps the mask to colour edges harder",
    "fg_bias": "added to the foreground's logit on every image (> 0: fuller masks; on a video's own frames "
    "the learning loop already adds 1.0, and the two add up)",
    "max_side": "larger images are refined at this side, and the result scaled up",
}


def _fit(image: np.ndarray, prob: np.ndarray, max_side: int) -> tuple[np.ndarray, np.ndarray]:
    h, w = prob.shape
    s = max_side / max(h, w)
    if s >= 1.0:
        return image, prob
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), cv2.resize(prob, size, interpolation=cv2.INTER_LINEAR)


def refine(image: np.ndarray, fg_prob: np.ndarray, params: CRFParams = CRFParams()) -> np.ndarray:
    """Foreground marginal [H,W] float32 after dense-CRF inference on an RGB uint8 image [H,W,3]."""
    h, w = fg_prob.shape
    if image.shape[:2] != (h, w):
        raise ValueError(f"image {image.shape[:2]} and probability map {(h, w)} differ in size")
    img, prob = _fit(image, fg_prob.astype(np.float32), params.max_side)
    ph, pw = prob.shape
    probs = np.stack([1.0 - prob, prob]).clip(1e-5, 1.0 - 1e-5).astype(np.float32)
    crf = dcrf.DenseCRF2D(pw, ph, 2)
    unary = unary_from_softmax(probs)  # -log p per label: a logit bias is a lower foreground energy
    unary[1] -= params.fg_bias
    crf.setUnaryEnergy(np.ascontiguousarray(unary))
    crf.addPairwiseGaussian(sxy=params.gaussian_sxy, compat=params.gaussian_compat)
    crf.addPairwiseBilateral(
        sxy=params.bilateral_sxy,
        srgb=params.bilateral_srgb,
        rgbim=np.ascontiguousarray(img),
        compat=params.bilateral_compat,
    )
    q = np.asarray(crf.inference(params.iterations), dtype=np.float32).reshape(2, ph, pw)[1]
    if (ph, pw) != (h, w):
        q = cv2.resize(q, (w, h), interpolation=cv2.INTER_LINEAR)
    return q


def timed_refine(image: np.ndarray, fg_prob: np.ndarray, params: CRFParams) -> tuple[np.ndarray, float]:
    """`refine` and the seconds it took (measured where it ran, e.g. inside a worker process)."""
    t0 = time.perf_counter()
    q = refine(image, fg_prob, params)
    return q, time.perf_counter() - t0


class CRFWorkerError(RuntimeError):
    """A CRF worker process died (killed, out of memory, crashed); the run cannot go on."""


def _worker_died(exc: BaseException) -> CRFWorkerError:
    return CRFWorkerError(f"a CRF worker process died ({exc or 'killed, or out of memory'}); the run stopped")


class CRFPool:
    """Runs `refine` in worker processes. pydensecrf holds the GIL for the whole inference, so run in a
    thread it would freeze a GUI's event loop for the CRF's duration; in processes it also uses every core.
    Workers are spawned (not forked), so a parent with Qt or CUDA threads is safe.
    """

    def __init__(self, processes: int | None = None) -> None:
        self.processes = processes or os.cpu_count() or 1
        self._pool = ProcessPoolExecutor(max_workers=self.processes, mp_context=get_context("spawn"))

    def submit(self, image: np.ndarray, prob: np.ndarray, params: CRFParams) -> Future[tuple[np.ndarray, float]]:
        """Refine in a worker; the future gives the foreground marginal and the seconds the worker spent, or
        CRFWorkerError if a worker died (the pool then ends its other workers: none is left behind)."""
        if self._worker_dead():
            raise _worker_died(RuntimeError("a worker exited"))
        try:
            fut = self._pool.submit(timed_refine, image, prob, params)
        except Exception as exc:  # a pool breaking under the submit fails in several ways (closed pipes, fds)
            if isinstance(exc, BrokenProcessPool) or self._worker_dead():
                raise _worker_died(exc) from None
            raise
        out: Future = Future()

        def done(f: Future) -> None:
            if f.cancelled():
                out.cancel()
                return
            exc = f.exception()
            if exc is None:
                out.set_result(f.result())
            else:
                out.set_exception(_worker_died(exc) if isinstance(exc, BrokenProcessPool) else exc)

        fut.add_done_callback(done)
        return out

    def _worker_dead(self) -> bool:
        """Whether the pool broke or one of its workers has exited (private attributes: the only handle on them)."""
        return bool(self._pool._broken) or any(
            w.exitcode is not None for w in list((self._pool._processes or {}).values())
        )

    def close(self, wait_s: float = 10.0) -> None:
        """Stop the workers without ever waiting on a stuck one: when a worker is killed mid-run, Python 3.11's
        own shutdown can wait forever on a worker it started just then, so each is joined for at most `wait_s`
        in all, then killed (0: at once, as when the app quits and the refinements in flight are not wanted)."""
        pool = self._pool
        workers = list((pool._processes or {}).values())  # private, but the only handle on the workers
        pool.shutdown(wait=False, cancel_futures=True)
        workers += [w for w in list((pool._processes or {}).values()) if w not in workers]
        deadline = time.monotonic() + wait_s
        for w in workers:
            w.join(max(0.0, deadline - time.monotonic()))
            if w.is_alive():
                w.kill()
                w.join(1)
            _until_reaped(w, 1.0)


def _until_reaped(worker, timeout_s: float) -> None:
    """Wait until `worker` reads as exited: the pool's own manager thread may reap a killed worker first, and
    until it records the exit code, `is_alive()` in this thread still says True (a race seen in CI)."""
    deadline = time.monotonic() + timeout_s
    while worker.is_alive() and time.monotonic() < deadline:
        time.sleep(0.005)
