"""Labelling effort on the shared DAVIS 2016 data: how many images a simulated reviewer must draw or clear.

Folders: per class group, up to 15 frames with the class (evenly spaced over the group's videos) and 10
without (evenly spaced over the videos that do not show the class: benchmarks.davis.free_of; with
`--unlabelled-negatives`, over every other group's video, riders and parked cars included). The first support
is the first positive's true mask.
Each round (at most 5):
- propagate over the folder with every support and negative so far (accepted images are kept);
- the reviewer walks the proposals from least to most confident, then the images judged empty; an
  acceptable one is accepted as it is passed, and the first 2 that are not acceptable are fixed:
  an image with the class whose IoU with the truth is below 0.75 is redrawn (its true mask becomes a
  support), an image without the class whose proposal covers more than 0.5% of it is rejected (its
  proposed region becomes a negative).
After the last round every image still not acceptable counts as fixed by hand.
Reported per class and as a mean: draws (share of the images with the class that the person drew, the
first support included), rejects (share of those without it that the person cleared), the mIoU of the
folder's positives after each round's propagation, and seconds per round by stage.

Rows: today's loop (drawn supports only, averaged; rejections teach nothing and come back), each
learning piece alone, all of them, and the default (annotator.inference.learning.LearningConfig()).

`--episodes` instead asks, for fixed sets of drawn supports (EPISODES: where the default's reviewer had drawn by
rounds 3 and 5), for the folder's other positives once, and reports their IoU and how many are acceptable: a
screen of a change to a video's own frames in about a minute instead of the loop's ten.

`--ceiling` instead proposes each positive of a folder from all its other positives drawn and its class-free frames
cleared, and reports the draws that no order of review would avoid (those under 0.75, and the first support): how
low the model lets the loop go, whatever the reviewer meets first.

`--variants N` also runs each folder drawn N-1 more ways: its lists of frames with and without the class rotated by
v/N of their length before the frames are picked, so the first support is another video's frame (or another part of
a single video) and the frames are others. The issue's folders are variant 0; the means cover all of them.

`--speed N` instead times one "propagate again" round of the project workflow over N images whose
features are cached (copies of 15 DAVIS car frames), fitting included, without the CRF.

Run: .venv/bin/python -m benchmarks.labelling_effort [--crf] [--rows NAME ...] [--vary FIELD=VALUE ...] [--classes ...]
     [--variants N]
     .venv/bin/python -m benchmarks.labelling_effort --crf --episodes [--rows ...] [--vary ...]
     .venv/bin/python -m benchmarks.labelling_effort --crf --ceiling [--rows ...] [--vary ...] [--classes ...]
     .venv/bin/python -m benchmarks.labelling_effort --speed 2000
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from annotator.build import build_model
from annotator.config import INPUT_SIZE, InputSize, Precision, input_size_name, parse_input_size
from annotator.inference.crf import CRFParams
from annotator.inference.learning import NO_LEARNING, LearningConfig
from annotator.inference.predictor import Predictor
from annotator.io.imageio import image_size, read_image, read_mask
from annotator.utils.sampling import evenly_spaced
from benchmarks import davis
from benchmarks.fewshot_quality import _crf_job, _unpack
from benchmarks.settings import add_vary

POSITIVES, NEGATIVES, ROUNDS, FIXES_PER_ROUND = 15, 10, 5, 2
IOU_OK, NEG_OK = 0.75, 0.005
OFF = NO_LEARNING.changed(bg_prototypes=5)  # today's loop: one averaged prototype per side, nothing fitted


@dataclass(frozen=True)
class Loop:
    """A reviewer-side configuration: the model's learning pieces and what the loop feeds it."""

    learning: LearningConfig
    exclude_rejected: bool = True  # a rejected image is not proposed again
    accepted_as_supports: bool = True  # accepted proposals join the supports
    negatives: bool = True  # rejections (and confirmed empties) are passed to the model
    second_look: float = 0.0  # margin of a second look at each proposal's box (0: none; see SecondLook)
    crf: CRFParams = CRFParams()  # with --crf: the refinement's parameters


BASICS = dict(exclude_rejected=False, accepted_as_supports=False, negatives=False)  # today's reviewer side
ROWS: dict[str, Loop] = {
    "today's loop": Loop(OFF, **BASICS),
    "+ rejected not proposed again": Loop(OFF, **{**BASICS, "exclude_rejected": True}),
    "+ accepted masks as supports": Loop(OFF, **{**BASICS, "accepted_as_supports": True}),
    "+ per-support prototypes": Loop(OFF.changed(per_support=True), **BASICS),
    "+ fitted head (supports only)": Loop(OFF.changed(head=True), **BASICS),
    "+ fitted head, always added to PANet's logits": Loop(OFF.changed(head=True, head_alone_from=0), **BASICS),
    "+ fitted head with negatives": Loop(OFF.changed(head=True, negatives=True), **{**BASICS, "negatives": True}),
    "+ negatives as background prototypes": Loop(OFF.changed(negative_prototypes=3), **{**BASICS, "negatives": True}),
    "+ learned presence floor": Loop(OFF.changed(presence=True, presence_gap=0.0), **{**BASICS, "negatives": True}),
    "+ presence gap in the folder's scores": Loop(OFF.changed(presence=True), **BASICS),
    "+ fitted head, pseudo-labels": Loop(OFF.changed(head=True, pseudo_labels=True), **BASICS),
    "+ fitted head, entropy (Tent)": Loop(OFF.changed(head=True, entropy=True), **BASICS),
    "+ fitted head, PANet's PAR on the folder": Loop(OFF.changed(head=True, alignment=1.0), **BASICS),
    "+ fitted head, FixMatch-style consistency": Loop(OFF.changed(head=True, consistency=1.0), **BASICS),
    "loop only (rejected not again, accepted as supports, per-support)": Loop(OFF.changed(per_support=True)),
    "loop + head with negatives": Loop(OFF.changed(per_support=True, head=True, negatives=True)),
    "loop + head with negatives + presence": Loop(
        OFF.changed(per_support=True, head=True, negatives=True, presence=True, presence_gap=0.0)
    ),
    "default without the presence gap": Loop(LearningConfig(presence_gap=0.0)),
    "all pieces": Loop(LearningConfig(pseudo_labels=True, entropy=True, negative_prototypes=3)),
    "default with the head always added to PANet": Loop(LearningConfig(head_alone_from=0, same_scene=0.0)),
    "default with one close head on every scene": Loop(LearningConfig(same_scene=0.0)),
    "yesterday's default (head added to PANet, strong L2, 512 samples)": Loop(
        LearningConfig(head_alone_from=0, same_scene=0.0, head_l2=1e-3, samples_per_image=512, head_steps=40)
    ),
    "default + a second look at small proposals' boxes": Loop(LearningConfig(), second_look=0.3),
    "default without the supports' count of parts": Loop(LearningConfig(parts=False)),
    "default with the presence floor on the supports' own scenes too": Loop(LearningConfig(floor_own_scenes=True)),
    "default without the supports' colours": Loop(LearningConfig(colour=0.0)),
    "default with the supports' colours at half weight (0.5)": Loop(LearningConfig(colour=0.5)),
    "default with the supports' colours at weight 1.5": Loop(LearningConfig(colour=1.5)),
    "default with twice the head's samples (32,768 a label)": Loop(LearningConfig(max_samples=32768)),
    "the CRF's foreground bias at 0.5 on every query": Loop(
        LearningConfig(own_scene_bias=0.0), crf=CRFParams(fg_bias=0.5)
    ),
    "the CRF's foreground bias at 1.0 on every query": Loop(
        LearningConfig(own_scene_bias=0.0), crf=CRFParams(fg_bias=1.0)
    ),
    "the CRF's foreground bias at 1.5 on every query": Loop(
        LearningConfig(own_scene_bias=0.0), crf=CRFParams(fg_bias=1.5)
    ),
    "the CRF's foreground bias at 2.0 on every query": Loop(
        LearningConfig(own_scene_bias=0.0), crf=CRFParams(fg_bias=2.0)
    ),
    "CRF's foreground bias at 1.0, weaker appearance kernel (compat 3)": Loop(
        LearningConfig(own_scene_bias=0.0), crf=CRFParams(fg_bias=1.0, bilateral_compat=3)
    ),
    "CRF's foreground bias at 1.0, stronger appearance kernel (compat 8)": Loop(
        LearningConfig(own_scene_bias=0.0), crf=CRFParams(fg_bias=1.0, bilateral_compat=8)
    ),
    "default without the foreground bias on the supports' own scenes": Loop(LearningConfig(own_scene_bias=0.0)),
    "default with the own-scene foreground bias at 0.5": Loop(LearningConfig(own_scene_bias=0.5)),
    "default with the own-scene foreground bias at 1.5": Loop(LearningConfig(own_scene_bias=1.5)),
    "default with the close head added to PANet's logits while there is one support": Loop(
        LearningConfig(head_alone_from=2)
    ),
    "default + PANet's PAR on the folder (weight 1)": Loop(LearningConfig(alignment=1.0)),
    "default + PANet's PAR on the folder (weight 0.1)": Loop(LearningConfig(alignment=0.1)),
    "default + FixMatch-style consistency (weight 1)": Loop(LearningConfig(consistency=1.0)),
    "default + a scene's own close head from 2 of its supports": Loop(LearningConfig(scene_heads_from=2)),
    "default (LearningConfig())": Loop(LearningConfig()),
}

# --episodes: drawn supports (video/frame) per class, from the default's trace of 2026-12-07 (after rounds 3 and 5)
EPISODES: dict[str, tuple[tuple[str, ...], ...]] = {
    "person": (
        ("breakdance/00000", "dance-twirl/00070", "parkour/00000"),
        (
            "breakdance/00000",
            "dance-twirl/00070",
            "parkour/00000",
            "dance-twirl/00030",
            "dance-twirl/00050",
            "parkour/00075",
        ),
    ),
    "car": (
        ("car-roundabout/00000", "drift-chicane/00025"),
        ("car-roundabout/00000", "drift-chicane/00025", "drift-chicane/00010", "drift-straight/00000"),
    ),
    "dog": (("dog/00000", "libby/00000", "libby/00010"),),
}


class SecondLook:
    """Small objects (issue 11): the backbone looks again at a square box around a mask, `margin` of its size on
    each side, when the box covers at most `max_area` of the image. The supports' and negatives' boxes join
    the fit as extra views (so the head sees the class at the crops' scale; views, not images, count towards
    head_alone_from, hence it doubles); a query's proposal is replaced inside its box by the crop's. The crops'
    backbone time counts as matching."""

    def __init__(self, predictor: Predictor, margin: float, max_area: float = 0.8, grid: int = 16) -> None:
        self.predictor, self.margin, self.max_area, self.grid = predictor, margin, max_area, grid
        self.feats: dict[tuple[Path, tuple[int, int, int, int]], torch.Tensor] = {}  # crops met so far

    def box(self, mask: np.ndarray) -> tuple[int, int, int, int] | None:
        """(y0, y1, x0, x1) of the look at a boolean mask, on a grid so that boxes repeat; None: no look."""
        if not mask.any():
            return None
        ys, xs = np.nonzero(mask)
        h, w = mask.shape
        side = max(ys.max() + 1 - ys.min(), xs.max() + 1 - xs.min()) * (1 + 2 * self.margin)
        if side * side > self.max_area * h * w:
            return None
        side = int(np.ceil(side / self.grid) * self.grid)
        sh, sw = min(side, h), min(side, w)
        y0 = int(np.clip(round(((ys.min() + ys.max() + 1 - sh) / 2) / self.grid) * self.grid, 0, h - sh))
        x0 = int(np.clip(round(((xs.min() + xs.max() + 1 - sw) / 2) / self.grid) * self.grid, 0, w - sw))
        return y0, y0 + sh, x0, x0 + sw

    def crop(self, path: Path, box: tuple[int, int, int, int]) -> torch.Tensor:
        if (path, box) not in self.feats:
            y0, y1, x0, x1 = box
            self.feats[(path, box)] = self.predictor.encode([read_image(path)[y0:y1, x0:x1]])[0]
        return self.feats[(path, box)]

    def views(self, items: list[tuple[Path, np.ndarray]]) -> list[tuple[torch.Tensor, np.ndarray]]:
        """The crop views (features, mask within the box) of (image, mask) pairs that get a look."""
        out = []
        for path, mask in items:
            if b := self.box(mask):
                out.append((self.crop(path, b), mask[b[0] : b[1], b[2] : b[3]]))
        return out

    def rematch(self, path: Path, prob: np.ndarray) -> np.ndarray:
        """The probability map with its proposal's box matched again from the crop."""
        if (b := self.box(prob > 0.5)) is None:
            return prob
        y0, y1, x0, x1 = b
        prob = prob.copy()
        prob[y0:y1, x0:x1] = self.predictor.match(self.crop(path, b), (y1 - y0, x1 - x0))[0]
        return prob


@dataclass
class Folder:
    cls: str
    positives: list[tuple[Path, Path]]
    negatives: list[Path]
    variant: int = 0  # see folders()

    @property
    def name(self) -> str:
        """The class, and the variant where it is not the issue's folder: "car", "car@1"."""
        return f"{self.cls}@{self.variant}" if self.variant else self.cls


def folders(negatives: int = NEGATIVES, unlabelled: bool = False, variant: int = 0, variants: int = 1) -> list[Folder]:
    """The benchmark's folders, one per class group, deterministic; `negatives` class-free frames in each, from
    the videos that do not show the class (davis.free_of); `unlabelled`: from every other group's video, as
    before 2026-12-06, though riders and spectators are people and scooter-black's street has parked cars.
    `variant` v of `variants` (0: the issue's folders): each frame list is rotated by v/variants of its length
    before the frames are picked, so the first support and the frames are others."""
    out = []
    for cls, seqs in davis.GROUPS.items():
        pos = _rotated([f for s in seqs for f in davis.frames(s)], variant, variants)
        free = [s for s in davis.GROUPS_FLAT if (davis.group_of(s) != cls if unlabelled else davis.free_of(s, cls))]
        neg = _rotated([f for s in free for f, _ in davis.frames(s)], variant, variants)
        picked = evenly_spaced(neg, negatives) if negatives else []
        out.append(Folder(cls, evenly_spaced(pos, POSITIVES), picked, variant))
    return out


def _rotated(items: list, variant: int, variants: int) -> list:
    k = round(variant * len(items) / variants)
    return items[k:] + items[:k]


def features(paths: list[Path], predictor: Predictor, cache: Path) -> tuple[dict[Path, torch.Tensor], float]:
    """Backbone features of every image (computed once, kept in `cache`), and the backbone's seconds per image."""
    stored = load_file(str(cache)) if cache.exists() else {}
    meta = stored.pop("__backbone_s__", torch.tensor([0.0]))
    todo = [p for p in paths if str(p) not in stored]
    for i, p in enumerate(todo):
        stored[str(p)] = predictor.encode([read_image(p)])[0].contiguous()
        print(f"\rbackbone features {i + 1}/{len(todo)}", end="", file=sys.stderr)
    if todo:
        print(file=sys.stderr)
        meta = torch.tensor([predictor.timings.backbone / len(todo)])
        cache.parent.mkdir(parents=True, exist_ok=True)
        save_file({**stored, "__backbone_s__": meta}, str(cache))
    return {p: stored[str(p)] for p in paths}, float(meta[0])


@dataclass
class Outcome:
    name: str  # the folder's (Folder.name)
    variant: int = 0
    draws: int = 0
    rejects: int = 0
    positives: int = 0
    negatives: int = 0
    miou: list[float] = field(default_factory=list)
    fitting: list[float] = field(default_factory=list)
    matching: list[float] = field(default_factory=list)
    crf: list[float] = field(default_factory=list)
    trace: list[str] = field(default_factory=list)  # per round: each positive's IoU ("d": drawn, "a": accepted)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def final_masks(
    probs: dict[Path, np.ndarray], crf: CRFParams, pool, use_crf: bool
) -> tuple[dict[Path, np.ndarray], float]:
    """Each image's final mask from its foreground probability: refined by the dense CRF in the pool's processes
    when `use_crf` (their seconds summed, the second value), else thresholded at 0.5."""
    if not use_crf:
        return {p: prob > 0.5 for p, prob in probs.items()}, 0.0
    res = pool.map(_crf_job, [(p, prob.astype(np.float16), crf) for p, prob in probs.items()], chunksize=2)
    return {p: _unpack(bits, shape) for p, (bits, shape, _) in zip(probs, res)}, sum(r[2] for r in res)


def simulate(folder: Folder, loop: Loop, predictor: Predictor, feats: dict, pool, use_crf: bool) -> Outcome:
    """One folder labelled by the simulated reviewer under one loop configuration."""
    truth = {p: read_mask(m) for p, m in folder.positives}
    sizes = {p: image_size(p) for p in list(truth) + folder.negatives}
    is_pos = {p: p in truth for p in sizes}
    first = folder.positives[0][0]
    drawn = {first}
    accepted: dict[Path, np.ndarray] = {first: truth[first]}  # the folder's final masks (empty = absent)
    rejected: dict[Path, np.ndarray] = {}  # image -> the region that was rejected
    confirmed_empty: set[Path] = set()
    out = Outcome(folder.name, folder.variant, positives=len(truth), negatives=len(folder.negatives))
    predictor.learning = loop.learning
    look = SecondLook(predictor, loop.second_look) if loop.second_look else None
    if look:
        predictor.learning = loop.learning.changed(head_alone_from=2 * loop.learning.head_alone_from)
    current: dict[Path, np.ndarray] = {}
    colour = loop.learning.colour > 0 and not look  # the supports' colours need full images, not a look's crops
    pixels: dict[Path, np.ndarray] = {}

    def image(p: Path) -> np.ndarray | None:
        if colour and p not in pixels:
            pixels[p] = read_image(p)
        return pixels.get(p)

    for _ in range(ROUNDS):
        supports = [p for p in accepted if p in drawn or (loop.accepted_as_supports and accepted[p].any())]
        negs = []
        if loop.negatives:
            negs = [(p, r) for p, r in rejected.items()] + [(p, np.ones(sizes[p], bool)) for p in confirmed_empty]
        queries = [p for p in sizes if p not in accepted and not (loop.exclude_rejected and p in rejected)]
        if not queries:
            break
        supp = [(feats[p], accepted[p]) for p in supports]
        neg = [(feats[p], r) for p, r in negs]
        if look:
            supp += look.views([(p, accepted[p]) for p in supports])
            neg += look.views(negs)
        t0 = time.perf_counter()
        predictor.set_support_features(
            torch.stack([f for f, _ in supp]),
            [m for _, m in supp],
            torch.stack([f for f, _ in neg]) if neg else None,
            [r for _, r in neg],
            folder=[feats[p] for p in evenly_spaced(queries, loop.learning.folder_sample)],
            images=[image(p) for p in supports] if colour else (),
        )
        out.fitting.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        matched = {p: predictor.match(feats[p], sizes[p], image(p)) for p in queries}
        if look:
            matched = {p: (look.rematch(p, prob), score) for p, (prob, score) in matched.items()}
        out.matching.append(time.perf_counter() - t0)
        masks, crf_s = final_masks({p: prob for p, (prob, _) in matched.items()}, loop.crf, pool, use_crf)
        if use_crf:
            out.crf.append(crf_s)
        current = {**{p: rejected[p] for p in rejected if p not in matched}, **masks}
        state = {**current, **accepted}
        ious = {p: iou(state[p], truth[p]) for p in truth}  # this round's proposals (drawn and accepted: as kept)
        out.miou.append(100 * float(np.mean(list(ious.values()))))
        score = {p: matched[p][1] for p in matched}
        order = sorted((p for p in matched if masks[p].any()), key=lambda p: (score[p], str(p)))
        order += sorted((p for p in matched if not masks[p].any()), key=str)
        fixes = 0
        for p in order:
            if is_pos[p]:
                if iou(masks[p], truth[p]) >= IOU_OK:
                    accepted[p] = masks[p]
                    continue
                accepted[p] = truth[p]
                drawn.add(p)
            else:
                if masks[p].mean() <= NEG_OK:
                    accepted[p] = np.zeros(sizes[p], bool)
                    confirmed_empty.add(p)
                    continue
                rejected[p] = masks[p]
            fixes += 1
            if fixes == FIXES_PER_ROUND:
                break
        out.trace.append(
            " ".join(
                f"{p.parent.name[:5]}{p.stem[-3:]}:"
                + ("d" if p in drawn else "a" if p in accepted else "")
                + f"{v:.2f}"
                for p, v in ious.items()
            )
        )
        if fixes == 0:
            break
    final = {**current, **accepted}
    out.draws = len(drawn) + sum(1 for p in truth if p not in drawn and iou(final[p], truth[p]) < IOU_OK)
    out.rejects = len(rejected) + sum(1 for p in folder.negatives if p not in rejected and final[p].mean() > NEG_OK)
    return out


def frame_name(p: Path) -> str:
    """'video/frame' of a DAVIS frame's path, as EPISODES names it."""
    return f"{p.parent.name}/{p.stem}"


def ask(
    folder: Folder, supports: tuple[str, ...], loop: Loop, predictor: Predictor, feats: dict, pool, use_crf: bool
) -> list[float]:
    """The IoU of each of the folder's positives that is not among `supports`, proposed once from those drawn
    supports (the folder's other images as its sample, as a first round has them)."""
    truth = {p: read_mask(m) for p, m in folder.positives}
    drawn = [p for p in truth if frame_name(p) in supports]
    queries = [p for p in truth if p not in drawn]
    predictor.learning = loop.learning
    colour = loop.learning.colour > 0
    predictor.set_support_features(
        torch.stack([feats[p] for p in drawn]),
        [truth[p] for p in drawn],
        folder=[feats[p] for p in evenly_spaced(queries + folder.negatives, loop.learning.folder_sample)],
        images=[read_image(p) for p in drawn] if colour else (),
    )
    probs = {p: predictor.match(feats[p], truth[p].shape, read_image(p) if colour else None)[0] for p in queries}
    masks, _ = final_masks(probs, loop.crf, pool, use_crf)
    return [iou(masks[p], truth[p]) for p in queries]


def run_episodes(
    fs: list[Folder], loops: dict[str, Loop], predictor: Predictor, feats: dict, pool, use_crf: bool
) -> None:
    """The --episodes table: per row, the positives' mean IoU and how many are acceptable, overall and per episode."""
    eps = [(f, sup) for f in fs if f.variant == 0 for sup in EPISODES.get(f.cls, ())]  # drawn in the folders
    head = "| loop | mean IoU | acceptable | " + " | ".join(f"{f.cls}, {len(s)} drawn" for f, s in eps) + " |"
    print(head)
    print("|---" * (head.count("|") - 1) + "|")
    for name, loop in loops.items():
        ious = [ask(f, sup, loop, predictor, feats, pool, use_crf) for f, sup in eps]
        every = [v for vs in ious for v in vs]
        cells = [f"{np.mean(vs):.3f} ({sum(v >= IOU_OK for v in vs)}/{len(vs)})" for vs in ious]
        ok = sum(v >= IOU_OK for v in every)
        print(f"| {name} | {np.mean(every):.4f} | {ok}/{len(every)} | " + " | ".join(cells) + " |", flush=True)


def leave_one_out(folder: Folder, loop: Loop, predictor: Predictor, feats: dict, pool, use_crf: bool) -> list[float]:
    """The IoU of each of the folder's positives proposed from all its other positives drawn and its class-free
    frames cleared (whole images as negatives): where a reviewer who had done everything else would be."""
    truth = {p: read_mask(m) for p, m in folder.positives}
    neg_feats = torch.stack([feats[p] for p in folder.negatives]) if folder.negatives else None
    neg_regions = [np.ones(image_size(p), bool) for p in folder.negatives]
    colour = loop.learning.colour > 0
    images = {p: read_image(p) for p in truth} if colour else {}
    predictor.learning = loop.learning
    probs = {}
    for q in truth:
        drawn = [p for p in truth if p != q]
        predictor.set_support_features(
            torch.stack([feats[p] for p in drawn]),
            [truth[p] for p in drawn],
            neg_feats,
            neg_regions,
            folder=[feats[q]],
            images=[images[p] for p in drawn] if colour else (),
        )
        probs[q] = predictor.match(feats[q], truth[q].shape, images.get(q))[0]
    masks, _ = final_masks(probs, loop.crf, pool, use_crf)
    return [iou(masks[p], truth[p]) for p in truth]


def run_ceiling(
    fs: list[Folder], loops: dict[str, Loop], predictor: Predictor, feats: dict, pool, use_crf: bool
) -> None:
    """The --ceiling table: per row, the draws no reviewer's order can avoid, each positive proposed from all the
    folder's other images reviewed (leave_one_out): those under IoU 0.75, and the first support, which is always
    drawn. More supports do not always make a better proposal, so it is an estimate, not a bound."""
    head = "| loop | draws floor % | mean IoU | acceptable | " + " | ".join(f.name for f in fs) + " |"
    print(head)
    print("|---" * (head.count("|") - 1) + "|")
    for name, loop in loops.items():
        ious = [leave_one_out(f, loop, predictor, feats, pool, use_crf) for f in fs]
        floors = [(1 + sum(v < IOU_OK for v in vs[1:])) / len(vs) for vs in ious]  # vs[0]: the first support
        every = [v for vs in ious for v in vs]
        ok = sum(v >= IOU_OK for v in every)
        cells = [f"{100 * fl:.0f}" for fl in floors]
        print(
            f"| {name} | {100 * np.mean(floors):.1f} | {np.mean(every):.4f} | {ok}/{len(every)} | "
            + " | ".join(cells)
            + " |",
            flush=True,
        )


def run(args) -> None:
    torch.set_num_threads(os.cpu_count() or 1)
    fs = [
        f
        for v in range(args.variants)
        for f in folders(args.negatives, args.unlabelled_negatives, v, args.variants)
        if f.cls in args.classes
    ]
    predictor = Predictor(  # its CRF runs here, in a pool (loop.crf), but matching must know whether one follows
        build_model(),
        device=args.device,
        input_size=args.input_size,
        crf=CRFParams() if args.crf else None,
        precision=args.precision,
    )
    paths = sorted({p for f in fs for p, _ in f.positives} | {p for f in fs for p in f.negatives})
    feats, backbone_s = features(paths, predictor, Path(args.cache) / f"effort_{predictor.model_tag}.safetensors")
    loops = {**{name: ROWS[name] for name in args.rows}, **{name: Loop(cfg) for name, cfg in args.vary}}
    rows = []
    with get_context("fork").Pool(os.cpu_count() or 1) as pool:
        if args.episodes:
            return run_episodes(fs, loops, predictor, feats, pool, args.crf)
        if args.ceiling:
            return run_ceiling(fs, loops, predictor, feats, pool, args.crf)
        for name, loop in loops.items():
            outs = []
            for f in fs:
                outs.append(simulate(f, loop, predictor, feats, pool, args.crf))
                print(f"\r{name}: {f.name} done", end="", file=sys.stderr)
            print(file=sys.stderr)
            rows.append((name, outs))
    crf = "with" if args.crf else "without"
    precision = predictor.precision_name
    print(
        f"\nLabelling effort on DAVIS 2016 ({len(fs)} folders of up to {POSITIVES}+{NEGATIVES} images, input "
        f"{input_size_name(args.input_size)}px, {crf} CRF, {predictor.device_name}, {precision}; "
        f"backbone {backbone_s:.2f} s/img, once per image)\n"
    )
    head = (
        "| loop | draws % | rejects % | "
        + " | ".join(f"mIoU r{i + 1}" for i in range(ROUNDS))
        + " | fitting s/round | matching s/round | CRF s/round |"
    )
    print(head)
    print("|---" * (head.count("|") - 1) + "|")
    for name, outs in rows:
        draws, rejects = shares(outs)
        mious = []
        for r in range(ROUNDS):  # a folder finished early keeps its last round's mIoU
            mious.append(np.mean([o.miou[min(r, len(o.miou) - 1)] for o in outs]))
        stages = [
            np.mean([np.mean(getattr(o, a)) if getattr(o, a) else 0.0 for o in outs])
            for a in ("fitting", "matching", "crf")
        ]
        print(
            f"| {name} | {draws:.1f} | {rejects:.1f} | "
            + " | ".join(f"{m:.1f}" for m in mious)
            + " | "
            + " | ".join(f"{s:.2f}" for s in stages)
            + " |"
        )
    if args.trace:
        print("\nEach positive's IoU after each round's proposals (d: drawn by then, a: accepted by then):")
        for name, outs in rows:
            for o in outs:
                print(f"  {name}, {o.name}:", *(f"\n    r{i + 1} {t}" for i, t in enumerate(o.trace)))
    print("\nPer class (draws % / rejects %):")
    for name, outs in rows:
        print(
            f"  {name}: "
            + ", ".join(
                f"{o.name} {100 * o.draws / o.positives:.0f}/{100 * o.rejects / max(o.negatives, 1):.0f}" for o in outs
            )
        )
    if args.variants > 1:
        print("\nPer variant (draws % / rejects %; 0: the issue's folders):")
        for name, outs in rows:
            cells = []
            for v in range(args.variants):
                draws, rejects = shares([o for o in outs if o.variant == v])
                cells.append(f"{v} {draws:.1f}/{rejects:.1f}")
            print(f"  {name}: " + ", ".join(cells))


def shares(outs: list[Outcome]) -> tuple[float, float]:
    """Draws % and rejects %: the folders' shares of positives drawn and of class-free frames cleared, averaged."""
    draws = 100 * np.mean([o.draws / o.positives for o in outs])
    rejects = 100 * np.mean([o.rejects / o.negatives for o in outs]) if outs[0].negatives else float("nan")
    return float(draws), float(rejects)


def speed(n: int, input_size: InputSize = INPUT_SIZE, negatives: int = 10) -> None:
    """Time one project round over `n` images with cached features: learning from 5 masks and `negatives`
    rejections, then matching and storing a proposal for every other image."""
    import resource
    import shutil
    import tempfile

    from annotator.inference.feature_cache import FeatureCache
    from annotator.project.review import unreviewed
    from annotator.project.store import Project
    from annotator.project.workflows import propagate_into_project

    torch.set_num_threads(os.cpu_count() or 1)
    frames = [f for s in davis.GROUPS["car"] for f in davis.frames(s)][::3][:20]
    others = [f for s in davis.EXTRA_NEGATIVES for f, _ in davis.frames(s)][:negatives]
    with tempfile.TemporaryDirectory(prefix="annotator-speed-") as tmp:
        root = Path(tmp) / "images"
        root.mkdir()
        for i in range(n):
            img, _ = frames[i % len(frames)]
            shutil.copyfile(img, root / f"{i:05d}.jpg")
        for j, img in enumerate(others):
            shutil.copyfile(img, root / f"neg{j:03d}.jpg")
        proj = Project.create(Path(tmp) / "proj", root)
        cid = proj.add_class("car").id
        ids = {e.file: e.id for e in proj.images.values()}
        for i in range(5):
            proj.set_mask(ids[f"{i:05d}.jpg"], cid, read_mask(frames[i][1]))
        for j in range(len(others)):
            proj.set_proposal(ids[f"neg{j:03d}.jpg"], cid, np.ones(image_size(others[j]), bool), 0.5, {})
            proj.set_state(ids[f"neg{j:03d}.jpg"], cid, "rejected")
        predictor = Predictor(
            build_model(), device="cpu", input_size=input_size, crf=None, cache=FeatureCache(Path(tmp) / "features")
        )
        todo = unreviewed(proj, cid)
        t0 = time.perf_counter()
        propagate_into_project(proj, cid, predictor, todo[: len(frames)])  # fills the feature cache
        warm = time.perf_counter() - t0
        predictor.timings.matching = 0.0
        learned_at: list[float] = []
        t0 = time.perf_counter()
        done = propagate_into_project(
            proj, cid, predictor, unreviewed(proj, cid), on_learned=lambda _: learned_at.append(time.perf_counter())
        )
        total = time.perf_counter() - t0
        proj.save()
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"\nOne round over {done} images with cached features (copies of {len(frames)} frames), "
        f"{predictor.learned.summary()}, no CRF, input {input_size_name(input_size)}px, {predictor.device_name}; "
        f"cache filled first in {warm:.1f} s\n"
    )
    print("| images | fitting s | matching s | round total s | images/s | peak RSS MB | target |")
    print("|---|---|---|---|---|---|---|")
    print(
        f"| {done} | {learned_at[0] - t0:.2f} | {predictor.timings.matching:.1f} | {total:.1f} | {done / total:.1f} "
        f"| {rss:.0f} | <= 60 s |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--rows",
        nargs="*",
        choices=list(ROWS),
        help="rows to run (default: all; --episodes: all without a second look)",
    )
    add_vary(ap)
    ap.add_argument("--classes", nargs="+", default=list(davis.GROUPS))
    ap.add_argument("--crf", action="store_true", help="refine with the dense CRF (about 0.6 s per image per round)")
    ap.add_argument(
        "--input-size",
        type=parse_input_size,
        default=INPUT_SIZE,
        help="the network's input: a side (square), or HEIGHTxWIDTH (e.g. 417x737 keeps DAVIS's 16:9)",
    )
    ap.add_argument(
        "--negatives",
        type=int,
        default=NEGATIVES,
        help="class-free frames per folder (0: folders where every image has the class)",
    )
    ap.add_argument(
        "--unlabelled-negatives",
        action="store_true",
        help="the folders before 2026-12-06: class-free frames from every other group's video, though some show "
        "the class unlabelled (people on person's, parked cars on car's)",
    )
    ap.add_argument(
        "--variants",
        type=int,
        default=1,
        help="also run each folder drawn N-1 more ways (its frame lists rotated: another first support, other "
        "frames); the means cover them all",
    )
    ap.add_argument("--trace", action="store_true", help="print each positive's IoU after each round")
    ap.add_argument(
        "--episodes",
        action="store_true",
        help="instead of the reviewer: ask once from fixed drawn supports (EPISODES), report the others' IoU",
    )
    ap.add_argument(
        "--ceiling",
        action="store_true",
        help="instead of the reviewer: each positive proposed from all the folder's other images reviewed; the "
        "draws that no order of review avoids",
    )
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", default="auto", choices=Precision.values(), help=Precision.__doc__)
    ap.add_argument("--cache", default="benchmarks/.cache", help="folder for the backbone features")
    ap.add_argument("--speed", type=int, metavar="N", help="time one cached round over N images instead")
    args = ap.parse_args()
    once = args.episodes or args.ceiling  # they ask once, outside the reviewer's loop, where a second look is taken
    if args.rows is None:
        args.rows = [name for name, loop in ROWS.items() if not (once and loop.second_look)]
    elif once and (looks := [name for name in args.rows if ROWS[name].second_look]):
        ap.error(f"--episodes and --ceiling take no second look: row '{looks[0]}' needs the reviewer's loop")
    if not davis.available():
        sys.exit(f"skipped: {davis.ABSENT}")
    speed(args.speed, args.input_size) if args.speed else run(args)


if __name__ == "__main__":
    main()
