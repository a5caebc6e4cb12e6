"""Recipes that both front ends run, so the CLI and the app cannot drift apart: propagating a class into a
project from its reviews ("Propagate", `annotator propagate --project`), training SG-One's head (`annotator
train`) and adapting it to a project's folder ("Adapt to this folder"). Export and import are
annotator.formats.export and coco_import."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from annotator.config import Precision, State
from annotator.inference.feature_cache import FeatureCache, default_cache_folder
from annotator.inference.predictor import Predictor
from annotator.inference.propagate import ImageResult, SupportError, features_of, folder_sample, propagate
from annotator.io.imageio import ImageReadError, read_image
from annotator.io.sgone_weights import default_checkpoint
from annotator.project.store import Project
from annotator.training.config import TrainConfig
from annotator.training.loop import EpisodeBank, build, state_path, train, unlabelled_sources
from annotator.utils.sampling import evenly_spaced

# Small enough to finish in minutes on a laptop CPU; the features of the views are cached for reruns.
ADAPT_CONFIG = TrainConfig(steps=300, views=2)
ADAPT_MAX_IMAGES = 120


def train_head(
    sources: Sequence,
    cfg: TrainConfig,
    out: Path,
    device: str = "auto",
    init: Path | None = None,
    resume: bool = False,
    cache: Path | None = None,
    stop: Callable[[], bool] = lambda: False,
    on_features: Callable[[int], None] = lambda _: None,
    on_step: Callable[[int, float], None] = lambda *_: None,
    precision: Precision | str = Precision.AUTO,
) -> tuple[int, str]:
    """Featurise the sources' views once (through the feature cache, in `precision`), then train SG-One's head
    into `out` (from `init`'s weights, or resumed from OUT's state); `stop()` ends it after the current step, saved.
    Returns the last step and the device's name. WeightsError or ValueError say what is wrong."""
    model, predictor = build(cfg, device, init, FeatureCache(cache or default_cache_folder()), precision)
    bank = EpisodeBank(predictor, sources, cfg, progress=on_features)
    return train(bank, model, out, cfg, resume=resume, stop=stop, progress=on_step), predictor.device_name


def adapted_checkpoint(project: Project) -> Path:
    """Where "Adapt to this folder" writes the project's own SG-One head."""
    return project.folder / "sgone_adapted.safetensors"


def adapt_to_project(
    project: Project,
    device: str = "auto",
    cfg: TrainConfig | None = None,
    stop: Callable[[], bool] = lambda: False,
    progress: Callable[[int, int, str], None] = lambda *_: None,
) -> bool:
    """Self-supervised SG-One training on up to ADAPT_MAX_IMAGES of the project's images, from the shipped
    head (or the project's previous adaptation, resumed), into adapted_checkpoint(project). Reports
    progress(done, total, what); returns False when stopped before training began."""
    cfg = cfg or ADAPT_CONFIG
    out = adapted_checkpoint(project)
    images = []
    for i in evenly_spaced(sorted(project.images), ADAPT_MAX_IMAGES):
        if stop():
            return False
        try:
            images.append((project.image_path(i), read_image(project.image_path(i))))
        except ImageReadError:
            continue
    sources = unlabelled_sources(images, cfg)
    if not sources:
        raise ValueError("no image of this folder has regions to learn from")
    resume = state_path(out).exists()
    total = len(sources) + cfg.steps
    train_head(
        sources,
        cfg,
        out,
        device,
        None if resume else default_checkpoint(),
        resume,
        stop=stop,
        on_features=lambda n: progress(n, total, "features"),
        on_step=lambda s, loss: progress(len(sources) + s, total, f"loss {loss:.3f}"),
    )
    return True


@dataclass
class Evidence:
    """What a project teaches propagation about one class: image ids with their support masks and their
    negative regions (the pixels that are not the class)."""

    supports: list[tuple[int, np.ndarray]]
    negatives: list[tuple[int, np.ndarray]]


def class_evidence(project: Project, class_id: int) -> Evidence:
    """Supports (marked, accepted and edited masks, less those taken out) and negatives (rejections; images
    accepted as free of the class) of a class; a rejection without a mask rules out the whole image."""
    supports = [(i, project.mask(i, class_id)) for i in project.support_ids(class_id)]
    negatives = []
    for i in project.negative_ids(class_id):
        region = project.mask(i, class_id)
        negatives.append((i, region if region is not None else np.ones(project.size_of(i), bool)))
    if not supports:
        raise SupportError(f"class '{project.classes[class_id].name}' has no support yet: paint a mask and mark it")
    return Evidence(supports, negatives)


def learn_from_project(
    project: Project,
    class_id: int,
    predictor: Predictor,
    queries: Sequence[int] = (),
    cancelled: Callable[[], bool] = lambda: False,
) -> Evidence:
    """Fit the predictor to the project's evidence of the class (features through the cache) and to a sample of
    the `queries` (folder_sample)."""
    ev = class_evidence(project, class_id)
    feats = features_of(predictor, [project.image_path(i) for i, _ in ev.supports])
    neg = features_of(predictor, [project.image_path(i) for i, _ in ev.negatives]) if ev.negatives else None
    taught = {i for i, _ in ev.supports} | {i for i, _ in ev.negatives}
    folder = folder_sample(predictor, [project.image_path(i) for i in queries if i not in taught], cancelled)
    images = []
    if predictor.learning.colour > 0:  # the supports' colours (learning.LearningConfig.colour)
        try:
            images = [read_image(project.image_path(i)) for i, _ in ev.supports]
        except ImageReadError as exc:
            raise SupportError(f"cannot learn from {exc}") from exc
    predictor.set_support_features(
        feats, [m for _, m in ev.supports], neg, [r for _, r in ev.negatives], folder, cancelled, images
    )
    return ev


def propagate_into_project(
    project: Project,
    class_id: int,
    predictor: Predictor,
    image_ids: Sequence[int],
    presence_threshold: float = 0.0,
    cancelled: Callable[[], bool] = lambda: False,
    on_result: Callable[[int, ImageResult, bool], None] = lambda *_: None,
    batch_size: int = 1,
    include_rejected: bool = False,
    on_learned: Callable[[Evidence], None] = lambda _: None,
) -> int:
    """Learn the class from the project's evidence, then propose it on `image_ids`, storing each proposal as it
    comes. Accepted or edited masks are never overwritten, and a rejected image is not proposed again unless
    `include_rejected`. Stops between images when `cancelled()`.

    `on_learned(evidence)` is called once fitted, `on_result(image_id, result, stored)` per image. Returns the
    number of images done.
    """
    from annotator.inference.learning import Cancelled

    try:
        ev = learn_from_project(project, class_id, predictor, image_ids, cancelled)
    except Cancelled:
        return 0
    on_learned(ev)
    settings = {**predictor.settings(), "learned_from": {"masks": len(ev.supports), "rejections": len(ev.negatives)}}
    skip = {i for i, _ in ev.supports} | (
        set() if include_rejected else {i for i in image_ids if project.record(i, class_id).state == State.REJECTED}
    )
    by_path = {project.image_path(i): i for i in image_ids if i not in skip}
    done = 0
    for res in propagate(predictor, list(by_path), batch_size=batch_size):
        if cancelled():  # a result that lands after Cancel is dropped
            break
        image_id = by_path[res.path]
        stored = False
        if res.error is None and res.mask is not None:
            keep = res.score is not None and res.score >= presence_threshold
            mask = res.mask if keep else np.zeros_like(res.mask)
            stored = project.set_proposal(image_id, class_id, mask, res.score if keep else None, settings)
        on_result(image_id, res, stored)
        done += 1
    return done
