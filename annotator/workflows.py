"""Recipes that both front ends run, so the CLI and the app cannot drift apart: training SG-One's head
(`annotator train`) and adapting it to a project's folder ("Adapt to this folder"). Propagation's recipe
is annotator.propagate.propagate_into_project; export and import are annotator.export and coco_import."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from annotator.feature_cache import FeatureCache, default_cache_folder
from annotator.imageio import ImageReadError, read_image
from annotator.project import Project
from annotator.sgone_weights import default_checkpoint
from annotator.train import EpisodeBank, build, state_path, train, unlabelled_sources
from annotator.train_config import TrainConfig
from annotator.utils.sampling import evenly_spaced

# Small enough to finish in minutes on a laptop CPU; the features of the views are cached for reruns.
ADAPT_CONFIG = TrainConfig(steps=300, views=2)
ADAPT_MAX_IMAGES = 120


def train_head(sources: Sequence, cfg: TrainConfig, out: Path, device: str = "auto", init: Path | None = None,
               resume: bool = False, cache: Path | None = None, stop: Callable[[], bool] = lambda: False,
               on_features: Callable[[int], None] = lambda _: None,
               on_step: Callable[[int, float], None] = lambda *_: None) -> tuple[int, str]:
    """Featurise the sources' views once (through the feature cache), then train SG-One's head into `out`
    (from `init`'s weights, or resumed from OUT's state); `stop()` ends it after the current step, saved.
    Returns the last step and the device's name. WeightsError or ValueError say what is wrong."""
    model, predictor = build(cfg, device, init, FeatureCache(cache or default_cache_folder()))
    bank = EpisodeBank(predictor, sources, cfg, progress=on_features)
    return train(bank, model, out, cfg, resume=resume, stop=stop, progress=on_step), predictor.device_name


def adapted_checkpoint(project: Project) -> Path:
    """Where "Adapt to this folder" writes the project's own SG-One head."""
    return project.folder / "sgone_adapted.safetensors"


def adapt_to_project(project: Project, device: str = "auto", cfg: TrainConfig | None = None,
                     stop: Callable[[], bool] = lambda: False,
                     progress: Callable[[int, int, str], None] = lambda *_: None) -> bool:
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
    train_head(sources, cfg, out, device, None if resume else default_checkpoint(), resume, stop=stop,
               on_features=lambda n: progress(n, total, "features"),
               on_step=lambda s, loss: progress(len(sources) + s, total, f"loss {loss:.3f}"))
    return True
