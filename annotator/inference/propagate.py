"""Spreading one class over a folder, without a project: load supports and negatives, then stream a proposal
for every image.

Decoding runs ahead of the model and the CRF behind it (see `propagate`); only a few batches of
pixels are ever held, so memory does not grow with the folder. Propagating into a project (learning from its
reviews, storing proposals) is the recipe annotator.project.workflows.propagate_into_project.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from annotator.inference.loading import load_batches
from annotator.inference.predictor import Predictor
from annotator.io.imageio import ImageReadError, read_image, read_mask
from annotator.utils.sampling import evenly_spaced


class SupportError(ValueError):
    """A support image or mask cannot be used; the message names the file and the reason."""


def parse_support(spec: str, kind: str = "support") -> tuple[Path, Path]:
    """Split 'IMAGE:MASK.png' at its last colon (image paths may themselves contain colons); `kind` names the
    spec in the error ("support", "negative")."""
    image, sep, mask = spec.rpartition(":")
    if not sep or not image or not mask:
        raise SupportError(f"{kind} '{spec}': expected IMAGE:MASK.png")
    return Path(image), Path(mask)


def box_mask(spec: str, shape: tuple[int, int]) -> np.ndarray:
    """The mask of a box support 'box=X0,Y0,X1,Y1' (pixels, corners included) on an image of `shape`."""
    try:
        x0, y0, x1, y1 = (int(v) for v in spec.removeprefix("box=").split(","))
    except ValueError:
        raise SupportError(f"support '{spec}': a box is box=X0,Y0,X1,Y1 in pixels") from None
    h, w = shape
    if not (0 <= x0 <= x1 < w and 0 <= y0 <= y1 < h):
        raise SupportError(f"support '{spec}': the box is not inside the {w}x{h} image")
    mask = np.zeros(shape, bool)
    mask[y0 : y1 + 1, x0 : x1 + 1] = True
    return mask


def load_support(spec: str) -> tuple[Path, np.ndarray, np.ndarray]:
    """(image path, RGB image, boolean mask) of a support spec, or SupportError naming the culprit.

    The mask part is a mask file (a full mask, or a scribble: any pixel > 127 is the class) or a box,
    'box=X0,Y0,X1,Y1' (the PANet paper's weak supports; see benchmarks/fewshot_quality.py for their cost).
    """
    image_path, mask_path = parse_support(spec)
    try:
        image = read_image(image_path)
    except ImageReadError as exc:
        raise SupportError(f"support image {exc}") from None
    if str(mask_path).startswith("box="):
        mask = box_mask(str(mask_path), image.shape[:2])
        if mask.all():
            raise SupportError(f"support '{mask_path}': the box covers the whole image, so there is no background")
        return image_path, image, mask
    mask = _mask_of(image, image_path, mask_path, "support")
    if mask.all():
        raise SupportError(f"support mask {mask_path}: covers the whole image, so there is no background to learn from")
    return image_path, image, mask


def load_negative(spec: str) -> tuple[Path, np.ndarray, np.ndarray]:
    """(image path, RGB image, boolean region that is not the class) of a negative spec: 'IMAGE' (the whole
    image is free of the class) or 'IMAGE:MASK.png' (only the mask's pixels > 127, e.g. a wrong proposal)."""
    whole = Path(spec).is_file() or ":" not in spec
    image_path, mask_path = (Path(spec), None) if whole else parse_support(spec, "negative")
    try:
        image = read_image(image_path)
    except ImageReadError as exc:
        raise SupportError(f"negative image {exc}") from None
    if mask_path is None:
        return image_path, image, np.ones(image.shape[:2], bool)
    return image_path, image, _mask_of(image, image_path, mask_path, "negative")


def _mask_of(image: np.ndarray, image_path: Path, mask_path: Path, kind: str) -> np.ndarray:
    """The boolean mask file of a support or negative (`kind`), read and checked against its image: readable,
    the image's size, not empty; else SupportError naming it."""
    try:
        mask = read_mask(mask_path)
    except ImageReadError as exc:
        raise SupportError(f"{kind} mask {exc}") from None
    if mask.shape != image.shape[:2]:
        raise SupportError(
            f"{kind} mask {mask_path}: size {mask.shape[1]}x{mask.shape[0]} differs from its image "
            f"{image_path} ({image.shape[1]}x{image.shape[0]} after EXIF rotation)"
        )
    if not mask.any():
        raise SupportError(f"{kind} mask {mask_path}: empty (no pixel above 127)")
    return mask


def features_of(predictor: Predictor, paths: Sequence[Path]) -> torch.Tensor:
    """Backbone features [N,C,h,w] of image files through the predictor's feature cache (a support or negative
    that was propagated to before costs no backbone pass); SupportError names an unreadable file."""
    out: list[torch.Tensor] = []
    for batch in load_batches(paths, predictor.input_size, predictor.model_tag, predictor.batch_size, 0, False):
        for it in batch.items:
            if it.error:
                raise SupportError(f"cannot learn from {it.error}")
        out += predictor.cached_features([it.key for it in batch.items], batch.pixels)
    return torch.stack(out)


def folder_sample(
    predictor: Predictor, paths: Sequence[Path], cancelled: Callable[[], bool] = lambda: False
) -> list[torch.Tensor]:
    """Features [C,h,w] of up to `learning.folder_sample` evenly spaced images of `paths` (unreadable ones left
    out), through the feature cache so that the propagation after it pays no second backbone pass: the folder
    that Tent and the presence gap learn from. Raises learning.Cancelled when `cancelled()`."""
    from annotator.inference.learning import Cancelled

    if not (predictor.model.learns_from_reviews and predictor.learning.uses_folder):
        return []
    out: list[torch.Tensor] = []
    chosen = evenly_spaced(list(paths), predictor.learning.folder_sample)
    for batch in load_batches(chosen, predictor.input_size, predictor.model_tag, predictor.batch_size, 0, False):
        if cancelled():
            raise Cancelled()
        out += predictor.cached_features([it.key for it in batch.items if it.error is None], batch.pixels)
    return out


@dataclass
class ImageResult:
    """The outcome for one image: a mask (possibly empty) and score, or the reason it was skipped."""

    path: Path
    height: int = 0
    width: int = 0
    mask: np.ndarray | None = None
    score: float | None = None
    error: str | None = None


def propagate(
    predictor: Predictor,
    paths: Sequence[Path],
    known: dict[Path, np.ndarray] | None = None,
    batch_size: int = 4,
    workers: int = 0,
) -> Iterator[ImageResult]:
    """Yield an ImageResult per path, in order. Paths in `known` (the supports) keep their own mask.

    A pipeline: `workers` processes (or one thread when 0) decode ahead of the backbone; features come
    from the predictor's cache when it has them; CRF refinements run in the predictor's worker processes
    while the next batches go through the backbone. At most a few batches are in flight at any time.
    """
    known = {p.resolve(): m for p, m in (known or {}).items()}
    keep_pixels = predictor.crf is not None or predictor.learning.colour > 0  # the CRF's and the colours' pixels
    pending: deque[tuple[ImageResult, Future | None]] = deque()
    max_pending = 4 * batch_size + 2 * predictor.crf_processes

    def ready() -> Iterator[ImageResult]:
        while pending and (len(pending) > max_pending or pending[0][1] is None or pending[0][1].done()):
            res, fut = pending.popleft()
            if fut is not None:
                res.mask = fut.result()
                if not res.mask.any():
                    res.score = None
            yield res

    batches = load_batches(
        paths,
        predictor.input_size,
        predictor.model_tag,
        batch_size,
        workers,
        keep_pixels,
        pin_memory=predictor.device.type == "cuda",
    )
    for batch in batches:
        own = [known.get(it.path.resolve()) if known and it.error is None else None for it in batch.items]
        ok = [(it, m) for it, m in zip(batch.items, own) if it.error is None]  # the rows of batch.pixels
        todo = [i for i, (_, m) in enumerate(ok) if m is None]
        feats = iter(predictor.cached_features([ok[i][0].key for i in todo], batch.pixels[todo]))
        for it, mask in zip(batch.items, own):
            res = ImageResult(path=it.path, height=it.size[0], width=it.size[1], error=it.error)
            fut = None
            if mask is not None:
                res.mask, res.score = mask, 1.0
            elif it.error is None:
                prob, res.score = predictor.match(next(feats), it.size, it.image)
                fut = predictor.refine_async(it.image, prob)
            pending.append((res, fut))
        yield from ready()
    max_pending = 0
    yield from ready()
