"""`annotator train`: fit SG-One's segmentation branch from unlabelled images (superpixel episodes) and/or
labelled masks, on frozen, cached trunk features. Stops cleanly, resumes from its checkpoint.

Each training image gets `views` augmented views whose trunk features are computed once (and kept in
the feature cache), so a step costs only the small head: a few hundred images stay practical on CPU.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save

from annotator.build import ModelSpec, build_model
from annotator.config import Model, Precision
from annotator.inference.feature_cache import FeatureCache, content_key
from annotator.inference.loading import resize_for_network
from annotator.inference.predictor import Predictor
from annotator.io.atomic import atomic_write_bytes
from annotator.io.imageio import read_file_bytes
from annotator.io.sgone_weights import load_head, save_head
from annotator.modeling.prototypes import masked_average_pool
from annotator.modeling.sgone import SGOne, SGOneHead
from annotator.training.config import TrainConfig
from annotator.training.episodes import IGNORE, augment, superpixels, usable_regions


@dataclass
class Source:
    """One training image: path (for its cache key), RGB pixels, a label map and the regions to learn."""

    path: Path
    image: np.ndarray
    labels: np.ndarray  # int32 [H,W]
    regions: list[int]
    shared: bool = False  # labelled: a region id is a class shared across images


@dataclass
class View:
    feats: torch.Tensor  # [1024,h,w] float16
    labels: np.ndarray  # int32 [s,s]


def unlabelled_sources(images: Sequence[tuple[Path, np.ndarray]], cfg: TrainConfig) -> list[Source]:
    """Self-supervised sources: each image's superpixels are its pseudo-classes."""
    out = []
    for i, (path, im) in enumerate(images):
        lab = superpixels(im, cfg.superpixels, seed=cfg.seed + i)
        out.append(Source(path, im, lab, usable_regions(lab)))
    return [s for s in out if s.regions]


def labelled_sources(items: Sequence[tuple[Path, np.ndarray, np.ndarray]]) -> list[Source]:
    """Sources from (path, image, class-id map with 0 = background): classes are shared across images."""
    return [
        Source(p, im, lab.astype(np.int32), sorted(int(c) for c in np.unique(lab) if c > 0), shared=True)
        for p, im, lab in items
        if (lab > 0).any()
    ]


class EpisodeBank:
    """The views of every source, featurised once, and random episodes drawn from them."""

    def __init__(
        self,
        predictor: Predictor,
        sources: list[Source],
        cfg: TrainConfig,
        progress: Callable[[int], None] = lambda _: None,
    ) -> None:
        self.cfg, self.sources = cfg, sources
        self.views: list[list[View]] = []
        for i, src in enumerate(sources):
            data = read_file_bytes(src.path).data
            vs = []
            for v in range(cfg.views):
                rng = np.random.default_rng([cfg.seed, i, v])
                img, lab = (src.image, src.labels) if v == 0 else augment(src.image, src.labels, rng)
                key = content_key(data, f"{predictor.model_tag}-view{v}-seed{cfg.seed}-{cfg.superpixels}")
                pixels = torch.from_numpy(resize_for_network(img, cfg.input_size)[None])
                feats = predictor.cached_features([key], pixels)[0].cpu()
                small = resize_for_network(lab.astype(np.float32), cfg.input_size).round().astype(np.int32)
                vs.append(View(feats, small))
            self.views.append(vs)
            progress(i + 1)  # sources featurised so far
        self.by_class: dict[int, list[int]] = {}
        for i, s in enumerate(sources):
            if s.shared:
                for c in s.regions:
                    self.by_class.setdefault(c, []).append(i)

    def episode(self, rng: np.random.Generator) -> tuple[View, np.ndarray, View, np.ndarray] | None:
        """(support view, support mask, query view, query region id map) or None if the draw failed."""
        i = int(rng.integers(len(self.sources)))
        src = self.sources[i]
        a = self.views[i][int(rng.integers(len(self.views[i])))]
        regions = usable_regions(a.labels) if not src.shared else [r for r in src.regions if (a.labels == r).any()]
        regions = [r for r in regions if r in src.regions]
        if not regions:
            return None
        r = regions[int(rng.integers(len(regions)))]
        if src.shared and len(self.by_class.get(r, [])) > 1:
            j = int(rng.choice([k for k in self.by_class[r] if k != i]))
            b = self.views[j][int(rng.integers(len(self.views[j])))]
        else:
            others = [v for v in self.views[i] if v is not a] or [a]
            b = others[int(rng.integers(len(others)))]
        return a, a.labels == r, b, np.where(b.labels == IGNORE, IGNORE, (b.labels == r).astype(np.int32))


def _targets(qry: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """Query region map at input size -> long targets at feature size (IGNORE where mostly unknown)."""
    t = torch.from_numpy(qry)
    fg = F.interpolate((t == 1).float()[None, None], size=size, mode="area")[0, 0]
    unknown = F.interpolate((t == IGNORE).float()[None, None], size=size, mode="area")[0, 0]
    out = (fg > 0.5).long()
    out[unknown > 0.5] = 255
    return out


def episode_loss(model: SGOne, batch: list[tuple[View, np.ndarray, View, np.ndarray]]) -> torch.Tensor:
    """Mean cross-entropy of the head's query logits over a batch of episodes (at feature resolution)."""
    dev = next(model.head.parameters()).device
    supp = torch.stack([a.feats for a, _, _, _ in batch]).to(dev).float()
    qry = torch.stack([b.feats for _, _, b, _ in batch]).to(dev).float()
    masks = torch.from_numpy(np.stack([m for _, m, _, _ in batch]).astype(np.float32)).to(dev)
    conv5 = model.split(supp)[1]
    protos = torch.stack([masked_average_pool(conv5, 1.0 - masks), masked_average_pool(conv5, masks)], dim=1)
    guidance = model.guidance(qry, protos)  # [B,1,h,w], one (bg, fg) prototype pair per episode
    logits = model.head(model.split(qry)[0], guidance)
    targets = torch.stack([_targets(q, logits.shape[-2:]) for _, _, _, q in batch]).to(dev)
    return F.cross_entropy(logits, targets, ignore_index=255)


def state_path(out: Path) -> Path:
    """The resumable training state written beside a head checkpoint."""
    return out.with_name(out.stem + ".state.safetensors")


def _save_state(out: Path, head: SGOneHead, opt: torch.optim.Optimizer, step: int, cfg: TrainConfig) -> None:
    tensors = {f"head.{k}": v.detach().cpu().contiguous() for k, v in head.state_dict().items()}
    for idx, st in opt.state_dict()["state"].items():
        for name, v in st.items():
            tensors[f"opt.{idx}.{name}"] = torch.as_tensor(v).detach().cpu().contiguous()
    meta = {"step": str(step), "hidden": str(head.hidden), **{k: str(v) for k, v in vars(cfg).items()}}
    atomic_write_bytes(state_path(out), save(tensors, meta))
    save_head(head, out, {"step": str(step), **{k: str(v) for k, v in vars(cfg).items()}})


def _load_state(out: Path, head: SGOneHead, opt: torch.optim.Optimizer) -> int:
    """The step a saved state reached, with the head and optimiser restored; ValueError naming the file when
    it is damaged or belongs to another head (another size or configuration)."""
    path = state_path(out)
    try:
        with safe_open(str(path), "pt") as f:
            step = int((f.metadata() or {})["step"])
        tensors = load_file(str(path))
        head.load_state_dict({k[5:]: v for k, v in tensors.items() if k.startswith("head.")})
        sd = opt.state_dict()
        state: dict[int, dict] = {}
        for k, v in tensors.items():
            if k.startswith("opt."):
                _, idx, name = k.split(".", 2)
                state.setdefault(int(idx), {})[name] = v
        opt.load_state_dict({"state": state, "param_groups": sd["param_groups"]})
    except Exception as exc:  # safetensors and torch raise several types for a damaged or foreign file
        raise ValueError(
            f"{path}: cannot resume from it ({type(exc).__name__}: {str(exc).splitlines()[0][:160]}); "
            "delete it to start over"
        ) from None
    return step


def train(
    bank: EpisodeBank,
    model: SGOne,
    out: Path,
    cfg: TrainConfig,
    resume: bool = False,
    stop: Callable[[], bool] = lambda: False,
    progress: Callable[[int, float], None] = lambda *_: None,
) -> int:
    """Train model.head on the bank's episodes up to cfg.steps, checkpointing to `out` (head only, what
    propagation loads) and `out`'s .state file (with the optimiser, for resuming). Returns the last step."""
    head = model.head.train()
    opt = torch.optim.Adam(head.parameters(), lr=cfg.lr)
    step = _load_state(out, head, opt) if resume and state_path(out).exists() else 0
    losses: list[float] = []
    while step < cfg.steps and not stop():
        rng = np.random.default_rng([cfg.seed, 10_000 + step])  # per step: a resumed run draws the same episodes
        batch = [e for e in (bank.episode(rng) for _ in range(cfg.batch)) if e is not None]
        if not batch:
            raise ValueError("no usable episode: the images have no region of a learnable size")
        loss = episode_loss(model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        losses.append(loss.item())
        progress(step, float(np.mean(losses[-20:])))
        if step % cfg.checkpoint_every == 0:
            _save_state(out, head, opt, step, cfg)
    _save_state(out, head, opt, step, cfg)
    head.eval()
    return step


def build(
    cfg: TrainConfig,
    device: str = "auto",
    init: Path | None = None,
    cache: FeatureCache | None = None,
    precision: Precision | str = Precision.AUTO,
) -> tuple[SGOne, Predictor]:
    """A predictor whose SG-One trunk featurises the views (in `precision`), and the model whose head will be
    trained (from `init`'s weights when given, else fresh)."""
    torch.manual_seed(cfg.seed)
    head = load_head(init) if init else SGOneHead(cfg.hidden)
    pred = Predictor(
        build_model(ModelSpec(model=Model.SGONE), head=head),
        device=device,
        input_size=cfg.input_size,
        crf=None,
        batch_size=1,
        cache=cache,
        precision=precision,
    )
    return pred.model, pred
