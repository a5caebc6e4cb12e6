"""What the model learns from a reviewer: supports, negatives and the folder itself, on cached features only.

`learn(...)` turns the evidence of one class into a `Learned` state that the predictor matches with:
- a foreground prototype per support (clustered when there are many), so each support keeps its own evidence;
- background prototypes from the supports' background (and, off by default, from rejected regions);
- fitted `PixelHead`s (1x1 conv, class-balanced logistic regression on the supports' pixels): supports' pixels
  are positives and backgrounds, rejected regions are negatives. Two are fitted. A close one (light L2) decides
  alone on queries of the supports' own scenes (a video's other frames, told by `scene_descriptor`), from the
  first support on: there a linear classifier over the supports separates better than their prototypes. On other
  scenes it overfits the supports, so a more regularised one is added to PANet's logits there
  (benchmarks/fewshot_quality.py, benchmarks/labelling_effort.py). Off by default, a scene group (a video) with
  enough supports gets a close head of its own, fitted without the other scenes' supports: one head over several
  videos' dancers leaves most of a folder's people unacceptable even with every other image drawn (labelling_effort.py
  --ceiling: the draws' floor 21.4% -> 16.7%), but the loop itself drew 1-3 images more of 300;
- the folder's own pixels: Tent's entropy minimisation (on) and, off, confident pseudo-labels, PANet's prototype
  alignment (PAR: the prototypes of what the head finds in the folder's images must segment the supports) and a
  FixMatch-style consistency (the confident labels fitted on features with half of each pixel's channels dropped);
- a presence floor (set by the predictor) above the negatives' scores and, where the folder's own scores split
  into two groups with a clear gap between them, in that gap: so images like the negatives come back empty.
  Not on the supports' own scenes, where the close head decides alone: there the user drew the class, and a small
  object (libby, the little dog) scored under a floor set by large animals' frames and came back empty; there a
  negative teaches the head alone (and an image where it finds nothing comes back empty, whatever its colours);
- the supports' count of parts: where each support is one object, a proposal keeps only its strongest part
  (annotator.inference.mask_parts), so the crowd around the drawn dancer is not proposed;
- the supports' colours (annotator.inference.colour_model), on queries of their own scenes;
- a foreground bias on those queries, where a CRF follows: their masks came out too thin (a dancer's trousers and
  legs left out: high precision, low recall), and the CRF's appearance kernel trims the surplus at colour edges.
  Not on other scenes: a car in another video lost 8 points of IoU to it.
Which pieces are on is decided by benchmarks/labelling_effort.py (see LearningConfig).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from annotator.inference.colour_model import ColourModel
from annotator.inference.mask_parts import count_parts
from annotator.modeling.pixel_head import PixelHead
from annotator.modeling.prototypes import (
    masked_average_pool,
    masked_kmeans_prototypes,
    resize_mask,
    scene_descriptor,
    spherical_kmeans,
)
from annotator.utils.progress import Cancelled


@dataclass(frozen=True)
class LearningConfig:
    """The learning loop's pieces and sizes. Defaults: what lowered effort in benchmarks/labelling_effort.py."""

    per_support: bool = True  # a foreground prototype per support, not one average
    negatives: bool = True  # rejected regions are background samples of the head's fit
    negative_prototypes: int = 0  # k-means prototypes per negative region added to the background (0: none)
    head: bool = True  # fit a 1x1-conv head on supports and negatives
    head_alone_from: int = 1  # from this many supports the head's logit alone decides (0: never) ...
    same_scene: float = 0.985  # ... on a query this alike (scene cosine) to a support, e.g. a video's frame (0: any)
    scene_heads_from: int = 0  # a scene group with this many supports gets a close head of its own (0: never)
    other_scene_l2: float = 1e-3  # on other scenes a second head, more regularised, is added to PANet's logits
    pseudo_labels: bool = False  # add the folder's confident pixels to the head's fit
    entropy: bool = True  # Tent: minimise the head's prediction entropy on the folder's pixels
    alignment: float = 0.0  # weight of PANet's PAR in the fit: the folder's predicted prototypes segment the supports
    consistency: float = 0.0  # weight of a FixMatch-style term: confident folder pixels, their features half dropped
    presence: bool = True  # a presence floor above the negatives' scores
    presence_gap: float = 0.05  # ... and in the folder's widest gap in presence scores of at least this (0: off)
    floor_own_scenes: bool = False  # the floor also applies where the close head decides alone (a support's scene)
    parts: bool = True  # a proposal keeps only as many connected parts (its strongest) as a support has at most
    own_scene_bias: float = 1.0  # added to the foreground logit before the CRF on queries of the supports' scenes
    colour: float = 1.0  # weight of the own-scene supports' colour log ratio in the foreground logit (0: off; 1: as is)
    folder_sample: int = 32  # the folder's images the transductive pieces look at (Tent, the presence gap)
    bg_prototypes: int = 5  # k-means prototypes of the supports' background
    max_fg_prototypes: int = 8  # beyond this many supports, their prototypes are clustered
    max_negative_prototypes: int = 24
    samples_per_image: int = 4096  # pixels drawn per image and label for the head's fit (417 px: all of them)
    max_samples: int = 16384  # ... and per label over all images, so memory does not grow with their number
    tent_samples: int = 8192  # the folder's pixels in Tent's entropy term
    head_steps: int = 100
    head_l2: float = 1e-5
    seed: int = 0

    @property
    def fits_folder(self) -> bool:
        """Whether the head's fit learns from the folder's images (pseudo-labels, Tent, PAR, consistency)."""
        return self.pseudo_labels or self.entropy or self.alignment > 0 or self.consistency > 0

    @property
    def uses_folder(self) -> bool:
        """Whether any piece learns from a sample of the folder (the fit's pieces, the presence gap)."""
        return self.fits_folder or (self.presence and self.presence_gap > 0)

    def changed(self, **kw) -> LearningConfig:
        return replace(self, **kw)

    def as_dict(self) -> dict:
        return asdict(self)


NO_LEARNING = LearningConfig(
    per_support=False, negatives=False, head=False, entropy=False, presence=False, bg_prototypes=1, colour=0.0
)  # plain PANet: one averaged prototype per side, nothing fitted (SG-One's guidance; the benchmarks' baselines)


@dataclass
class Learned:
    """The matching state of one class: prototype sets, the fitted head (or None) and the presence floor."""

    fg: torch.Tensor  # [F,C]
    bg: torch.Tensor  # [B,C]; empty when `head` decides alone on every query (fg then only gives presence)
    head: PixelHead | None = None  # fitted closely to the supports: for queries of their scenes
    presence_floor: float = 0.0
    supports: int = 0
    negatives: int = 0
    head_alone: bool = False  # `head` alone decides foreground (else it is added to PANet's logits)
    scenes: torch.Tensor | None = None  # [k,C] the supports' scene descriptors (None: every query is of theirs) ...
    same_scene: float = 0.0  # ... a query at least this alike to one of them is of their scenes
    other_head: PixelHead | None = None  # more regularised, added to PANet's logits on queries of other scenes
    parts: int = 0  # the most parts a support's mask has: a proposal keeps that many (0: all)
    floor_own_scenes: bool = True  # the presence floor applies where the close head decides alone (hand-built: yes)
    colours: ColourModel | None = None  # the supports' colours, for queries of their scenes (set by the predictor)
    scene_heads: tuple[tuple[np.ndarray, PixelHead], ...] = ()  # (which supports [k], their own close head) per group

    def floor_for(self, alone: bool) -> float:
        """The presence floor of a query whose head decides `alone` (learning.LearningConfig.floor_own_scenes)."""
        own_scene = alone and self.scenes is not None
        return 0.0 if own_scene and not self.floor_own_scenes else self.presence_floor

    def head_for(self, scene: torch.Tensor | None) -> tuple[PixelHead | None, bool]:
        """The head for a query (its scene descriptor [C]) and whether it decides alone. A head fitted closely to
        the supports is best on their own scenes (a video's other frames) but overfits them: on another scene
        (another video, a varied photo) a more regularised one corrects PANet's prototypes instead
        (benchmarks/fewshot_quality.py). A query of a scene group that has a close head of its own (scene_heads)
        gets that one."""
        if self.scenes is None:
            return self.head, self.head_alone
        own = self.own_scenes(scene)
        if not own.any():
            return self.other_head, False
        shared = [int((members & own).sum()) for members, _ in self.scene_heads]
        if shared and max(shared) > 0:  # the group the query is most alike to has its own head
            return self.scene_heads[shared.index(max(shared))][1], self.head_alone
        return self.head, self.head_alone

    def own_scenes(self, scene: torch.Tensor | None) -> np.ndarray | None:
        """[k] bool: which supports a query (its scene descriptor [C]) shares a scene with; None when there are no
        scenes (`same_scene` 0: every query is of every support's scene)."""
        if self.scenes is None:
            return None
        return (self.scenes @ scene.to(self.scenes.device, self.scenes.dtype) >= self.same_scene).cpu().numpy()

    def summary(self) -> str:
        """What it was learned from, as the status bar and the CLI say it: "learned from 7 masks and 12 rejections"."""
        n, m = self.supports, self.negatives
        return f"learned from {n} mask{'s' * (n != 1)} and {m} rejection{'s' * (m != 1)}"


def gap_floor(scores: Sequence[float], min_gap: float, min_below: int = 2) -> float:
    """A presence floor from a folder's presence scores: the middle of the widest gap between consecutive
    non-zero scores, if it is at least `min_gap` wide with at least `min_below` scores under it; else 0.
    A folder with and without the class scores in two groups; one outlier alone does not make a group."""
    s = sorted(x for x in scores if x > 0)
    gaps = [(s[i + 1] - s[i], (s[i + 1] + s[i]) / 2) for i in range(min_below - 1, len(s) - 1)]
    if not gaps:
        return 0.0
    width, middle = max(gaps)
    return middle if width >= min_gap else 0.0


def scene_groups(scenes: torch.Tensor, same_scene: float) -> np.ndarray:
    """[k] group label of each support's scene descriptor [k,C]: supports linked by a chain of scene cosines of at
    least `same_scene` (a video's frames) share one, the smallest index among them."""
    linked = (scenes @ scenes.T >= same_scene).cpu().numpy()
    labels = np.arange(len(linked))
    while True:
        merged = np.array([labels[row].min() for row in linked])  # each takes its neighbours' smallest label
        if np.array_equal(merged, labels):
            return labels
        labels = merged


def foreground_prototypes(feats: torch.Tensor, fg: torch.Tensor, cfg: LearningConfig) -> torch.Tensor:
    """[F,C]: one prototype per support (k-means of them beyond `max_fg_prototypes`), or their mean."""
    protos = masked_average_pool(feats, fg)
    if not cfg.per_support:
        return protos.mean(0, keepdim=True)
    if len(protos) > cfg.max_fg_prototypes:
        return spherical_kmeans(protos, cfg.max_fg_prototypes)
    return protos


def background_prototypes(
    feats: torch.Tensor,
    bg: torch.Tensor,
    neg_feats: torch.Tensor | None,
    neg_regions: torch.Tensor | None,
    cfg: LearningConfig,
) -> torch.Tensor:
    """[B,C]: k-means of the supports' background, plus k-means of each negative region (bounded in number)."""
    out = [
        masked_kmeans_prototypes(feats, bg, cfg.bg_prototypes)
        if cfg.bg_prototypes > 1
        else masked_average_pool(feats, bg).mean(0, keepdim=True)
    ]
    if cfg.negative_prototypes and neg_feats is not None and len(neg_feats):
        neg = torch.cat(
            [
                masked_kmeans_prototypes(f[None], r[None], cfg.negative_prototypes)
                for f, r in zip(neg_feats, neg_regions)
            ]
        )
        if len(neg) > cfg.max_negative_prototypes:
            neg = spherical_kmeans(neg, cfg.max_negative_prototypes)
        out.append(neg)
    return torch.cat(out)


def _sample(
    feats: torch.Tensor, target: torch.Tensor, n: int, gen: torch.Generator
) -> list[tuple[float, torch.Tensor]]:
    """(label, up to n pixel vectors [M,C]) for each label, from features [C,h,w] and a soft target [h,w]
    (> 0.9: 1, < 0.1: 0; between: ignored, e.g. boundaries)."""
    x = feats.permute(1, 2, 0).reshape(-1, feats.shape[0])
    t = target.reshape(-1)
    out = []
    for label, where in ((1.0, t > 0.9), (0.0, t < 0.1)):
        idx = where.nonzero()[:, 0]
        if len(idx) > n:
            idx = idx[torch.randperm(len(idx), generator=gen)[:n]]
        out.append((label, x[idx]))
    return out


@dataclass
class Alignment:
    """PANet's prototype alignment (PAR) on the folder: the prototypes of what the head finds in each folder image
    (pixels [Q,n,C]) must segment the supports' pixels ([M,C], unit-norm, labels [M], weights [M]) as drawn."""

    folder: torch.Tensor
    supports: torch.Tensor
    labels: torch.Tensor
    weight: torch.Tensor
    scale: float = 20.0  # PANet's cosine scale

    def loss(self, head: PixelHead) -> torch.Tensor:
        q, n, c = self.folder.shape
        p = torch.sigmoid(head.pixels(self.folder.reshape(q * n, c))).reshape(q, n)
        # each image's fg and bg prototypes [Q,C]: weighted sums, as their norm drops the masked average's divisor
        fg = F.normalize(torch.einsum("qn,qnc->qc", p, self.folder), dim=1)
        bg = F.normalize(torch.einsum("qn,qnc->qc", 1 - p, self.folder), dim=1)
        cos = self.supports @ (fg - bg).T  # [M,Q]: the fg cosine minus the bg one, a two-way softmax's logit
        y = self.labels[:, None].expand_as(cos)
        ce = F.binary_cross_entropy_with_logits(self.scale * cos, y, reduction="none").mean(1)
        return (ce * self.weight).sum()


def fit_head(
    x: torch.Tensor,
    y: torch.Tensor,
    weight: torch.Tensor,
    cfg: LearningConfig,
    unlabelled: torch.Tensor | None = None,
    cancelled: Callable[[], bool] = lambda: False,
    l2: float | None = None,
    alignment: Alignment | None = None,
) -> PixelHead:
    """Weighted logistic regression (L-BFGS, full batch, float32) of the head on pixel vectors [M,C] with labels [M];
    `unlabelled` pixels [U,C] add Tent's entropy term, `alignment` PAR's; `l2`: cfg.head_l2 unless given.
    Deterministic for the same inputs and thread count."""
    head = PixelHead(x.shape[1]).to(x.device)
    x = x.float()
    w = weight / weight.sum()
    opt = torch.optim.LBFGS(
        head.parameters(), lr=0.5, max_iter=cfg.head_steps, history_size=10, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        if cancelled():
            raise Cancelled()
        opt.zero_grad()
        loss = (F.binary_cross_entropy_with_logits(head.pixels(x), y, reduction="none") * w).sum()
        loss = loss + (cfg.head_l2 if l2 is None else l2) * head.conv.weight.pow(2).sum() * head.scale**2
        if unlabelled is not None and len(unlabelled):
            p = torch.sigmoid(head.pixels(unlabelled.float()))
            loss = loss + 0.1 * -(p * torch.log(p + 1e-6) + (1 - p) * torch.log(1 - p + 1e-6)).mean()
        if alignment is not None:
            loss = loss + cfg.alignment * alignment.loss(head)
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return head.eval().requires_grad_(False)


def head_samples(
    feats: torch.Tensor, targets: torch.Tensor, n: int, gen: torch.Generator, weight: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Up to `n` pixel vectors per image and label, their labels and weights, drawn from images [N,C,h,w] with soft
    targets [N,H,W]; each image's two labels weigh equally whatever their areas, so small objects count as much
    as large ones. All three on the features' device."""
    xs, ys, ws = [], [], []
    small = resize_mask(targets.to(feats.device), feats.shape[-2:])
    for f, t in zip(feats, small):
        for label, x in _sample(f.float(), t, n, gen):
            xs.append(x)
            ys.append(torch.full((len(x),), label, device=x.device))
            ws.append(torch.full((len(x),), weight / max(len(x), 1), device=x.device))
    return torch.cat(xs), torch.cat(ys), torch.cat(ws)


def balanced(weight: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The weights [M] scaled so that each label's sum to 1: more negatives must not lower every foreground logit."""
    fg = labels > 0.5
    return torch.where(fg, weight / weight[fg].sum().clamp_min(1e-9), weight / weight[~fg].sum().clamp_min(1e-9))


def pixels_per_image(feats: Sequence[torch.Tensor], count: int, gen: torch.Generator) -> torch.Tensor:
    """[Q,count,C] float32: `count` pixel vectors drawn without replacement from each image's features [C,h,w]."""
    c, h, w = feats[0].shape
    return torch.stack(
        [f.reshape(c, h * w)[:, torch.randperm(h * w, generator=gen)[:count].to(f.device)].T.float() for f in feats]
    )


def pixel_sample(feats: Sequence[torch.Tensor], count: int, gen: torch.Generator) -> torch.Tensor:
    """Up to `count` pixel vectors [count,C] (float32) drawn without replacement from all pixels of images' features
    [C,h,w], image by image: the folder's features are never stacked or copied whole (32 images in float32 and their
    transposed copy were 0.7 GB of the fit's peak)."""
    c, h, w = feats[0].shape
    idx = torch.randperm(len(feats) * h * w, generator=gen)[:count].to(feats[0].device)  # image-major pixel rows
    out = feats[0].new_empty((len(idx), c), dtype=torch.float32)
    for i, f in enumerate(feats):
        rows = (idx // (h * w) == i).nonzero()[:, 0]
        out[rows] = f.reshape(c, h * w)[:, idx[rows] % (h * w)].T.float()
    return out


def learn(
    supp_feats: torch.Tensor,
    supp_masks: torch.Tensor,
    cfg: LearningConfig,
    neg_feats: torch.Tensor | None = None,
    neg_regions: torch.Tensor | None = None,
    pseudo: Sequence[tuple[torch.Tensor, torch.Tensor]] = (),
    cancelled: Callable[[], bool] = lambda: False,
) -> Learned:
    """The matching state from supports (features [k,C,h,w], soft masks [k,H,W]), negatives (features [n,C,h,w],
    regions [n,H,W] that are not the class) and, for the transductive pieces, (features [C,h,w], soft foreground
    probability [H',W']) of the folder's images."""
    supp_feats = supp_feats.float()
    alone = cfg.head and 0 < cfg.head_alone_from <= len(supp_feats)
    gated = cfg.head and cfg.same_scene > 0  # a second head for queries of other scenes
    fg = foreground_prototypes(supp_feats, supp_masks, cfg)
    if alone and not gated:  # nothing matches against background prototypes: their k-means is skipped
        bg = supp_feats.new_zeros((0, supp_feats.shape[1]))
    else:
        bg = background_prototypes(
            supp_feats, 1.0 - supp_masks, neg_feats.float() if neg_feats is not None else None, neg_regions, cfg
        )
    n_neg = len(neg_feats) if neg_feats is not None else 0
    head = other_head = None
    scenes = scene_descriptor(supp_feats) if cfg.same_scene > 0 else None
    scene_heads = []
    if cfg.head:
        gen = torch.Generator().manual_seed(cfg.seed)
        images = len(supp_feats) + (n_neg if cfg.negatives else 0) + (len(pseudo) if cfg.pseudo_labels else 0)
        n = max(1, min(cfg.samples_per_image, cfg.max_samples // images))
        parts = [head_samples(supp_feats, supp_masks, n, gen)]
        if n_neg and cfg.negatives:
            # a negative region is background (0); outside it the image is unknown (0.5: not sampled)
            parts.append(head_samples(neg_feats.float(), 0.5 * (1.0 - neg_regions), n, gen))
        unlabelled = None
        if pseudo and (cfg.pseudo_labels or cfg.consistency > 0):
            qf = torch.stack([f for f, _ in pseudo]).float()
            qp = torch.stack([resize_mask(p[None], qf.shape[-2:])[0] for _, p in pseudo])
            if cfg.pseudo_labels:
                parts.append(head_samples(qf, qp, n, gen, weight=0.5))
            if cfg.consistency > 0:  # FixMatch on cached features: the confident labels, half of each pixel dropped
                qx, qy, qw = head_samples(qf, qp, n, gen, weight=cfg.consistency)
                keep = torch.rand(qx.shape, generator=gen).to(qx.device) < 0.5
                parts.append((qx * keep * 2.0, qy, qw))
        if pseudo and cfg.entropy:
            unlabelled = pixel_sample([f for f, _ in pseudo], cfg.tent_samples, gen)
        x, y, w = (torch.cat(t) for t in zip(*parts))
        w = balanced(w, y)
        alignment = None
        if pseudo and cfg.alignment > 0:
            m = len(parts[0][0])  # the supports' own pixels come first
            folder = pixels_per_image([f for f, _ in pseudo], cfg.tent_samples // len(pseudo), gen)
            alignment = Alignment(folder, F.normalize(x[:m], dim=1), y[:m], balanced(w[:m], y[:m]) / 2)
        head = fit_head(x, y, w, cfg, unlabelled, cancelled, alignment=alignment)
        if gated:
            other_head = fit_head(x, y, w, cfg, unlabelled, cancelled, l2=cfg.other_scene_l2, alignment=alignment)
        if alone and gated and cfg.scene_heads_from > 0:
            groups = scene_groups(scenes, cfg.same_scene)
            for label in np.unique(groups):
                members = groups == label
                if members.sum() < cfg.scene_heads_from or members.all():  # all of them: the close head is theirs
                    continue
                idx = torch.from_numpy(np.flatnonzero(members)).to(supp_feats.device)
                own = head_samples(supp_feats[idx], supp_masks[idx], n, torch.Generator().manual_seed(cfg.seed))
                # the close head's fit (PAR aside) with its own supports' pixels instead of all of theirs
                gx, gy, gw = (torch.cat(t) for t in zip(own, *parts[1:]))
                scene_heads.append((members, fit_head(gx, gy, balanced(gw, gy), cfg, unlabelled, cancelled)))
    return Learned(
        fg=fg,
        bg=bg,
        head=head,
        supports=len(supp_feats),
        negatives=n_neg,
        head_alone=alone,
        scenes=scenes,
        same_scene=cfg.same_scene,
        other_head=other_head,
        parts=max(count_parts(m) for m in (supp_masks > 0.5).cpu().numpy()) if cfg.parts else 0,
        floor_own_scenes=cfg.floor_own_scenes,
        scene_heads=tuple(scene_heads),
    )
