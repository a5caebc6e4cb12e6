"""Few-shot proposal quality on the shared DAVIS 2016 data: mIoU, FB-IoU, false foreground, timings.

Episodes (one per support sequence of each class group, see benchmarks/davis.py):
- support: 1 frame (1-shot) or 5 evenly spaced frames (5-shot) of one sequence;
- positives: every frame of the group's other sequences; for the one-sequence groups (blackswan,
  camel, cows, goat), the frames of the last 60% of the same sequence, supports taken from the first
  40% ("within-sequence", reported apart because it is easier);
- negatives: the middle frame of every sequence that does not show the class (davis.free_of: not only its
  group's videos are left out, but those whose riders, spectators or parked cars are people or cars too).
Backbone features of every frame are computed once and shared by all configurations, so the
backbone's time is counted once per image; matching and CRF are timed per query. CRF runs in a
process pool (one per core) and its time is measured inside the workers.

Rows: plain PANet, each issue-3 addition on its own, all of them, then what the learning loop adds to them from
the supports alone (per-support prototypes, the fitted heads: the default), box and scribble supports, and SG-One
with its shipped head and with a head adapted to these very images (`--adapted CKPT`, made by
`annotator train --init weights/sgone_head.safetensors --images ...` on the benchmark's frames).

Run: .venv/bin/python -m benchmarks.fewshot_quality [--input-size 417] [--cache DIR] [--adapted CKPT]
     [--methods NAME ...] [--vary FIELD=VALUE ...]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from annotator.build import ModelSpec, build_model
from annotator.config import Model, Precision
from annotator.inference.crf import CRFParams, refine
from annotator.inference.learning import NO_LEARNING, LearningConfig
from annotator.inference.predictor import Predictor
from annotator.io.imageio import image_size, read_image, read_mask
from annotator.modeling.panet import combine_layers
from benchmarks import davis
from benchmarks.settings import add_vary

CROSS = ("car", "dog", "person")  # groups whose positives come from other sequences


@dataclass
class Episode:
    cls: str
    support: list[tuple[Path, Path]]
    positives: list[tuple[Path, Path]]
    negatives: list[Path]


def episodes(shots: int) -> list[Episode]:
    """The benchmark's episodes for k = `shots`, deterministic."""
    out = []
    for cls, seqs in davis.GROUPS.items():
        outside = [s for s in davis.GROUPS_FLAT if davis.free_of(s, cls)]
        negatives = [davis.frames(s)[len(davis.frames(s)) // 2][0] for s in outside]
        for seq in seqs:
            fr = davis.frames(seq)
            if len(seqs) > 1:
                pool, positives = fr, [f for other in seqs if other != seq for f in davis.frames(other)]
            else:
                cut = int(len(fr) * 0.4)
                pool, positives = fr[:cut], fr[cut:]
            idx = np.linspace(0, len(pool) - 1, shots).round().astype(int) if shots > 1 else [0]
            out.append(Episode(cls, [pool[i] for i in idx], positives, negatives))
    return out


@dataclass
class Scores:
    """Accumulated counts for one configuration."""

    tp: dict = field(default_factory=dict)
    fp: dict = field(default_factory=dict)
    fn: dict = field(default_factory=dict)
    bg_tp: float = 0.0
    bg_fp: float = 0.0
    bg_fn: float = 0.0
    neg_fg: list = field(default_factory=list)
    presence: list = field(default_factory=list)  # (score, is_positive)
    matching: list = field(default_factory=list)
    crf: list = field(default_factory=list)

    def add_positive(self, cls: str, pred: np.ndarray, gt: np.ndarray, score: float) -> None:
        for d, v in ((self.tp, (pred & gt).sum()), (self.fp, (pred & ~gt).sum()), (self.fn, (~pred & gt).sum())):
            d[cls] = d.get(cls, 0) + int(v)
        self.bg_tp += int((~pred & ~gt).sum())
        self.bg_fp += int((~pred & gt).sum())
        self.bg_fn += int((pred & ~gt).sum())
        self.presence.append((score, 1))

    def add_negative(self, pred: np.ndarray, score: float) -> None:
        self.neg_fg.append(float(pred.mean()))
        self.presence.append((score, 0))

    def iou(self, cls: str) -> float:
        return self.tp[cls] / max(self.tp[cls] + self.fp[cls] + self.fn[cls], 1)

    def miou(self, classes) -> float:
        return 100 * float(np.mean([self.iou(c) for c in classes]))

    def fb_iou(self) -> float:
        fg = sum(self.tp.values()) / max(sum(self.tp.values()) + sum(self.fp.values()) + sum(self.fn.values()), 1)
        bg = self.bg_tp / max(self.bg_tp + self.bg_fp + self.bg_fn, 1)
        return 100 * (fg + bg) / 2

    def auroc(self) -> float:
        s = np.array([p[0] for p in self.presence])
        y = np.array([p[1] for p in self.presence])
        pos, neg = s[y == 1], s[y == 0]
        if not len(pos) or not len(neg):
            return float("nan")
        greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
        return float(greater / (len(pos) * len(neg)))


def _crf_job(args):
    image_path, prob, params = args
    image = read_image(image_path)
    t0 = time.perf_counter()
    mask = refine(image, prob.astype(np.float32), params) > 0.5
    return np.packbits(mask), mask.shape, time.perf_counter() - t0


def _unpack(bits, shape):
    return np.unpackbits(bits, count=shape[0] * shape[1]).reshape(shape).astype(bool)


def box_of(mask: np.ndarray) -> np.ndarray:
    """The support given as a box: its mask's bounding rectangle, filled."""
    ys, xs = np.nonzero(mask)
    out = np.zeros_like(mask)
    out[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1] = True
    return out


def scribble_of(mask: np.ndarray, width: int = 5) -> np.ndarray:
    """The support given as a scribble: one stroke along the mask's main axis, kept 3 px inside it."""
    ys, xs = np.nonzero(mask)
    pts = np.stack([xs, ys], 1).astype(np.float32)
    c = pts.mean(0)
    _, vecs = np.linalg.eigh(np.cov((pts - c).T))
    d = vecs[:, -1]
    span = np.abs((pts - c) @ d).max()
    line = np.zeros(mask.shape, np.uint8)
    a, b = c - span * d, c + span * d
    cv2.line(line, tuple(int(v) for v in a.round()), tuple(int(v) for v in b.round()), 1, width)
    inside = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5) > 3
    out = (line > 0) & inside
    return out if out.any() else mask


# name -> (predictor options, which features, support shape). PLAIN switches every addition off, the learning
# loop's included (what the supports teach beyond their prototypes: NO_LEARNING).
PLAIN = {"layers": ("conv5_3",), "learning": NO_LEARNING, "self_refine": False}
BOTH = ("conv4_3", "conv5_3")
ALL_THREE = {"layers": BOTH, "learning": NO_LEARNING.changed(bg_prototypes=5), "self_refine": True}
METHODS = {
    "PANet": (PLAIN, "conv5", "mask"),
    "+ conv4_3 with conv5_3": ({**PLAIN, "layers": BOTH}, "both", "mask"),
    "+ 5 background prototypes": ({**PLAIN, "learning": NO_LEARNING.changed(bg_prototypes=5)}, "conv5", "mask"),
    "+ self-prototype pass": ({**PLAIN, "self_refine": True}, "conv5", "mask"),
    "+ conv4_3 and self-prototype": ({**PLAIN, "layers": BOTH, "self_refine": True}, "both", "mask"),
    "+ all three": (ALL_THREE, "both", "mask"),
    "+ per-support prototypes and the close head everywhere (alone from 2 supports)": (
        {**ALL_THREE, "learning": LearningConfig(same_scene=0.0)},
        "both",
        "mask",
    ),
    "default (+ per-support prototypes, fitted heads by scene)": (
        {**ALL_THREE, "learning": LearningConfig()},
        "both",
        "mask",
    ),
    "default with the close head added to PANet's logits while there is one support": (
        {**ALL_THREE, "learning": LearningConfig(head_alone_from=2)},
        "both",
        "mask",
    ),
    "default without the supports' count of parts": (
        {**ALL_THREE, "learning": LearningConfig(parts=False)},
        "both",
        "mask",
    ),
    "PANet, box support": (PLAIN, "conv5", "box"),
    "PANet, scribble support": (PLAIN, "conv5", "scribble"),
    "default, box support": ({**ALL_THREE, "learning": LearningConfig()}, "both", "box"),
    "SG-One, shipped head": ({"model": "sgone"}, "sgone", "mask"),
    "SG-One, adapted head": ({"model": "sgone", "checkpoint": "ADAPTED"}, "sgone", "mask"),
}


def _view(f: torch.Tensor, kind: str) -> torch.Tensor:
    """The cached conv4_3+conv5_3 features as a method takes them."""
    if kind == "conv5":
        return f[512:]
    if kind == "both":
        return combine_layers([f[None, :512], f[None, 512:]])[0]
    return f


def run(args) -> None:
    torch.set_num_threads(os.cpu_count() or 1)
    methods = {k: v for k, v in METHODS.items() if k in args.methods}
    methods.update({name: ({**ALL_THREE, "learning": cfg}, "both", "mask") for name, cfg in args.vary})
    if "SG-One, adapted head" in methods:
        if not args.adapted:
            del methods["SG-One, adapted head"]
        else:
            methods["SG-One, adapted head"][0]["checkpoint"] = args.adapted
    encoder = Predictor(
        build_model(ModelSpec(model=Model.SGONE)),
        device=args.device,
        input_size=args.input_size,
        crf=None,
        precision=args.precision,
    )
    precision = encoder.precision_name
    eps = {k: episodes(k) for k in args.shots}
    needed = sorted(
        {p for es in eps.values() for e in es for p, _ in e.support + e.positives}
        | {p for es in eps.values() for e in es for p in e.negatives}
    )
    name = f"feats45_{encoder.model.weights_name}_{args.input_size}_{precision}.safetensors"
    cache = Path(args.cache) / name if args.cache else None
    if cache and cache.exists():
        stored = load_file(str(cache))
        feats = {p: stored[str(p)] for p in needed}
        backbone_s = float(safe_open(str(cache), "pt").metadata()["backbone_s"])
    else:
        feats = {}
        for i, p in enumerate(needed):
            feats[p] = encoder.encode([read_image(p)])[0]
            print(f"\rbackbone features {i + 1}/{len(needed)}", end="", file=sys.stderr)
        print(file=sys.stderr)
        backbone_s = encoder.timings.backbone / len(needed)
        if cache:
            cache.parent.mkdir(parents=True, exist_ok=True)
            save_file({str(p): f.contiguous() for p, f in feats.items()}, str(cache), {"backbone_s": str(backbone_s)})
    shapes = {p: image_size(p) for p in needed}  # header only: pixels are decoded where needed
    gts: dict = {}
    shape_of = {"mask": lambda m: m, "box": box_of, "scribble": scribble_of}

    rows = []
    crf_params = CRFParams()
    with get_context("fork").Pool(os.cpu_count() or 1) as pool:
        for name, (opts, kind, support_shape) in methods.items():
            spec = ModelSpec(**{k: v for k, v in opts.items() if k != "learning"})
            learning = opts.get("learning", NO_LEARNING)
            predictor = Predictor(
                build_model(spec), device=args.device, input_size=args.input_size, crf=None, learning=learning
            )
            for shots, es in eps.items():
                if support_shape != "mask" and shots > 1:
                    continue
                use_crf = args.crf and shots == 1 and name in args.crf_methods
                plain, with_crf = Scores(), Scores()
                swept = {t: Scores() for t in args.thresholds}
                for e in es:
                    predictor.set_support_features(
                        torch.stack([_view(feats[p], kind) for p, _ in e.support]),
                        [shape_of[support_shape](read_mask(m)) for _, m in e.support],
                    )
                    queries = [(p, m) for p, m in e.positives] + [(p, None) for p in e.negatives]
                    probs, presence = [], []
                    for p, _ in queries:
                        t0 = time.perf_counter()
                        prob, pres = predictor.match(_view(feats[p], kind), shapes[p])
                        probs.append(prob)
                        presence.append(pres)
                        plain.matching.append(time.perf_counter() - t0)
                    jobs = [(p, prob.astype(np.float16), crf_params) for (p, _), prob in zip(queries, probs)]
                    crf_out = pool.map(_crf_job, jobs, chunksize=4) if use_crf else [None] * len(jobs)
                    for (_, m), prob, pres, co in zip(queries, probs, presence, crf_out):
                        if m is not None and m not in gts:
                            gts[m] = read_mask(m)
                        for scores, mask in ((plain, prob > 0.5), (with_crf, _unpack(co[0], co[1]) if co else None)):
                            if mask is None:
                                continue
                            s = pres if mask.any() else 0.0  # the predictor's score; an empty mask means absent
                            if m is None:
                                scores.add_negative(mask, s)
                            else:
                                scores.add_positive(e.cls, mask, gts[m], s)
                        for t, scores in swept.items():  # the presence threshold: below it, an empty result
                            mask = prob > 0.5 if pres >= t else np.zeros(prob.shape, bool)
                            s = pres if mask.any() else 0.0
                            scores.add_negative(mask, s) if m is None else scores.add_positive(e.cls, mask, gts[m], s)
                        if co:
                            with_crf.crf.append(co[2])
                    print(f"\r{name} {shots}-shot episode {es.index(e) + 1}/{len(es)}", end="", file=sys.stderr)
                print(file=sys.stderr)
                rows.append((name, shots, plain))
                for t, scores in swept.items():
                    scores.matching = plain.matching
                    rows.append((f"{name}, presence >= {t}", shots, scores))
                if use_crf:
                    with_crf.matching = plain.matching
                    rows.append((name + " + CRF", shots, with_crf))

    classes = list(davis.GROUPS)
    print(
        f"\nFew-shot quality on DAVIS 2016 ({len(needed)} frames, input {args.input_size}px, "
        f"{encoder.device_name}, {precision}); mIoU over {', '.join(CROSS)} (other sequences) and over all 7 classes\n"
    )
    head = (
        "| method | shots | mIoU cross-seq | mIoU all | FB-IoU | false fg on negatives % | presence AUROC "
        "| backbone s/img | matching s/img | CRF s/img |"
    )
    print(head)
    print("|---" * (head.count("|") - 1) + "|")
    for name, shots, s in sorted(rows, key=lambda r: r[1]):
        print(
            f"| {name} | {shots} | {s.miou(CROSS):.1f} | {s.miou(classes):.1f} | {s.fb_iou():.1f} "
            f"| {100 * np.mean(s.neg_fg):.2f} | {s.auroc():.3f} | {backbone_s:.3f} | {np.mean(s.matching):.4f} "
            f"| {np.mean(s.crf) if s.crf else 0.0:.3f} |"
        )
    print("\nbackbone s/img is the VGG-16 pass up to conv5_3 (conv4_3 comes out of the same pass).")
    print("\nPer-class IoU:")
    for name, shots, s in sorted(rows, key=lambda r: r[1]):
        print(f"  {name} {shots}-shot: " + ", ".join(f"{c} {100 * s.iou(c):.1f}" for c in classes))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input-size", type=int, default=417)
    ap.add_argument("--shots", type=int, nargs="+", default=[1, 5])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", default="auto", choices=Precision.values(), help=Precision.__doc__)
    ap.add_argument("--no-crf", dest="crf", action="store_false", help="skip the CRF rows (faster)")
    ap.add_argument("--cache", help="folder to keep backbone features in between runs")
    ap.add_argument("--methods", nargs="*", default=list(METHODS), help="rows to run (names as in the table)")
    add_vary(ap)
    ap.add_argument(
        "--crf-methods",
        nargs="+",
        default=["PANet", "default (+ per-support prototypes, fitted heads by scene)", "SG-One, shipped head"],
        help="rows also run with the CRF (1-shot; the CRF costs about 0.5 s per query on CPU)",
    )
    ap.add_argument(
        "--thresholds",
        type=float,
        nargs="*",
        default=[],
        help="also score each row with these presence thresholds (below: an empty result)",
    )
    ap.add_argument("--adapted", help="SG-One head adapted to the benchmark's own images (the adapted row)")
    args = ap.parse_args()
    if not davis.available():
        sys.exit(f"skipped: {davis.ABSENT}")
    run(args)


if __name__ == "__main__":
    main()
