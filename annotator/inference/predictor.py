"""Stateful few-shot predictor: set the supports of one class once, then propose masks for any images.

Takes a network built by annotator.build (PANet or SG-One, which own their matching) and adds what the
learning loop fitted (annotator.inference.learning), pre-processing, device choice, batching that halves itself on
CUDA out-of-memory, the presence score, dense-CRF refinement and per-stage timings.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import torch
import torch.nn.functional as F

from annotator.config import INPUT_SIZE, InputSize, Precision, input_size_name, network_shape
from annotator.inference.colour_model import ColourModel
from annotator.inference.crf import CRFParams, CRFPool, refine
from annotator.inference.device import describe, pick_device
from annotator.inference.feature_cache import FeatureCache, Layout
from annotator.inference.learning import NO_LEARNING, Learned, LearningConfig, gap_floor, learn
from annotator.inference.loading import resize_for_network
from annotator.inference.mask_parts import strongest_parts
from annotator.io.int8_ranges import load_ranges
from annotator.io.openvino_ir import checked_ir
from annotator.io.weights import WeightsError
from annotator.modeling.backbones import IMAGENET_MEAN, IMAGENET_STD, VGG16OS8
from annotator.modeling.openvino_backbone import OpenVINOVGG16OS8
from annotator.modeling.panet import PANet
from annotator.modeling.prototypes import inverse_norms, masked_average_pool, resize_mask, scene_descriptor
from annotator.modeling.quantized import QuantizedVGG16OS8, activation_bits, int8_supported, quantize
from annotator.modeling.sgone import SGOne
from annotator.utils.sampling import evenly_spaced


@dataclass
class Proposal:
    """A proposed mask for one image; `score` is the class's presence score (None when the mask is empty)."""

    mask: np.ndarray
    score: float | None

    @property
    def empty(self) -> bool:
        return not bool(self.mask.any())


@dataclass
class Timings:
    """Seconds spent per stage, summed over calls, and the number of images they cover."""

    backbone: float = 0.0
    matching: float = 0.0
    crf: float = 0.0
    images: int = 0
    _sync: bool = field(default=False, repr=False)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        yield
        if self._sync:
            torch.cuda.synchronize()
        setattr(self, name, getattr(self, name) + time.perf_counter() - t0)


INT8_BACKBONES = (QuantizedVGG16OS8, OpenVINOVGG16OS8)


class Predictor:
    """Few-shot segmentation of one class from k support (image, mask) pairs, by a model annotator.build made."""

    def __init__(
        self,
        model: PANet | SGOne,
        device: str = "auto",
        input_size: InputSize = INPUT_SIZE,
        crf: CRFParams | None = CRFParams(),
        batch_size: int = 4,
        crf_processes: int = 0,
        precision: Precision | str = Precision.AUTO,
        cache: FeatureCache | None = None,
        learning: LearningConfig = LearningConfig(),
    ) -> None:
        """`crf_processes` > 0 runs the CRF in that many worker processes (needed beside a GUI, see CRFPool).
        `precision`: see config.Precision; in int8 the model's float backbone is replaced by its int8 version.
        `learning`: what the supports, negatives and folder teach a model that learns from reviews (see
        annotator.inference.learning); SG-One takes its supports' mean prototypes only."""
        self.device = pick_device(device)
        self.learning = learning if model.learns_from_reviews else NO_LEARNING
        self.model = model.to(self.device).eval()
        self.input_size = input_size
        int8 = self._int8_backbone(Precision(precision))
        self.int8 = int8 is not None
        if int8 is not None:
            self.model.backbone = int8  # the float one is let go (memory)
        self.precision = self._pick_precision(Precision(precision))
        if self.device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.cache = cache
        self.crf = crf
        self.batch_size = max(1, batch_size)
        self._crf_pool = CRFPool(crf_processes) if crf and crf_processes > 0 else None
        self.crf_processes = crf_processes if self._crf_pool else 0
        self.timings = Timings(_sync=self.device.type == "cuda")
        self.learned: Learned | None = None
        mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
        self._mean, self._std = mean.view(1, 3, 1, 1).to(self.device), std.view(1, 3, 1, 1).to(self.device)

    def _pick_precision(self, precision: Precision) -> torch.dtype:
        """The backbone's float arithmetic (float32 under the int8 backbone, whose outputs are float32)."""
        if self.int8 or precision == Precision.FP32:
            return torch.float32
        if precision == Precision.AUTO:
            if self.device.type != "cuda":
                return torch.float32
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return {Precision.BF16: torch.bfloat16, Precision.FP16: torch.float16}[precision]

    def _int8_backbone(self, precision: Precision) -> QuantizedVGG16OS8 | OpenVINOVGG16OS8 | None:
        """The int8 version of the model's backbone where `precision` asks for it (int8: PyTorch's; int8-openvino:
        OpenVINO's, from the checked files set-up made, annotator.io.openvino_ir), or is auto on a CPU that has
        the int8 engine and a backbone with calibrated ranges (the shipped VGG-16: PyTorch's); else None.
        ValueError if int8 was asked for and cannot be had."""
        int8 = (Precision.INT8, Precision.INT8_OPENVINO, Precision.AUTO)
        if isinstance(self.model.backbone, INT8_BACKBONES):  # a model another predictor made int8
            if precision not in int8:
                raise ValueError(f"precision {precision}: the model's backbone is already int8; build a new model")
            return self.model.backbone
        if precision not in int8:
            return None
        bits = activation_bits()
        why = None
        if self.device.type != "cpu":
            why = f"it runs on the CPU only, not on {self.device.type}"
        elif not int8_supported():
            why = "this PyTorch has no x86 int8 engine (an x86-64 CPU is needed)"
        elif not isinstance(self.model.backbone, VGG16OS8):
            why = "only the VGG-16 backbone has an int8 version"
        else:
            try:
                ranges = load_ranges(self.model.weights_name)
                if precision == Precision.INT8_OPENVINO:
                    return OpenVINOVGG16OS8(checked_ir(bits), bits, torch.get_num_threads())
            except WeightsError as exc:
                why = str(exc)
        if why:
            if precision != Precision.AUTO:
                raise ValueError(f"precision {precision}: {why}")
            return None
        return quantize(self.model.backbone, ranges, bits)

    @property
    def device_name(self) -> str:
        return describe(self.device)

    @property
    def precision_name(self) -> str:
        """The backbone's arithmetic as reports name it: "int8" ("int8-7bit": 7-bit activations, on a CPU without
        VNNI; "-openvino" when OpenVINO runs it), "float32", "bfloat16" or "float16"."""
        if self.int8:
            bits = self.model.backbone.bits
            engine = "-openvino" if isinstance(self.model.backbone, OpenVINOVGG16OS8) else ""
            return ("int8" if bits == 8 else f"int8-{bits}bit") + engine
        return str(self.precision).removeprefix("torch.")

    @property
    def model_tag(self) -> str:
        """What the features depend on besides the pixels: the feature cache's namespace."""
        return f"{self.model.tag}-{self.model.weights_name}-{input_size_name(self.input_size)}-{self.precision_name}"

    def settings(self) -> dict:
        """The settings that make a proposal, recorded beside it."""
        return {
            **self.model.settings(),
            **(
                {"bg_prototypes": self.learning.bg_prototypes, "learning": self.learning.as_dict()}
                if self.model.learns_from_reviews
                else {}
            ),
            "backbone": self.model.weights_name,
            "input_size": self.input_size,
            "crf": self.crf.as_dict() if self.crf else None,
        }

    @cached_property
    def feature_layout(self) -> Layout:
        """What a cache entry of this model and input size holds: {"features": ([C,h,w], float16)}, worked out
        on the meta device (no computation; int8 kernels have none: one pass on a blank image, 0.2 s), so that an
        entry of another shape is never used."""
        if self.int8:
            with torch.inference_mode():
                shape = self.model.features(torch.zeros(1, 3, *network_shape(self.input_size))).shape
        else:
            x = torch.empty(1, 3, *network_shape(self.input_size), device="meta")
            shape = copy.deepcopy(self.model).to("meta").features(x).shape
        return {"features": (tuple(shape[1:]), torch.float16)}

    def network_input(self, pixels: torch.Tensor) -> torch.Tensor:
        """Network-sized uint8 pixels [N,s,s,3] (pinned or not) -> normalised float input on the device (what the
        backbone sees; the int8 calibration sees the same)."""
        x = pixels.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
        x = (x - self._mean) / self._std
        return x.contiguous(memory_format=torch.channels_last) if self.device.type == "cuda" else x

    @torch.inference_mode()
    def _features(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone features, rounded to float16 whatever the precision: the feature cache keeps them so,
        and a first pass then gives exactly the masks a cached second pass gives."""
        with self.timings.stage("backbone"):
            amp = self.precision != torch.float32
            with torch.autocast(self.device.type, dtype=self.precision) if amp else nullcontext():
                return self.model.features(x).half()

    def set_supports(
        self,
        supports: Sequence[tuple[np.ndarray, np.ndarray]],
        negatives: Sequence[tuple[np.ndarray, np.ndarray]] = (),
        folder: Sequence[torch.Tensor] = (),
    ) -> None:
        """Take k (RGB uint8 image, boolean mask) pairs of one class and, optionally, negatives: (RGB image,
        boolean region that is not the class; all True for an image without the class) and the features [C,h,w]
        of a sample of the folder (see set_support_features)."""
        if not supports:
            raise ValueError("at least one support is needed")
        for kind, pairs in (("support", supports), ("negative", negatives)):
            for i, (im, m) in enumerate(pairs):
                if im.shape[:2] != m.shape:
                    raise ValueError(f"{kind} {i}: mask {m.shape} is not the image's size {im.shape[:2]}")
                if not m.any():
                    raise ValueError(f"{kind} {i}: mask is empty")
        feats = self.encode([im for im, _ in supports])
        neg = self.encode([im for im, _ in negatives]) if negatives else None
        images, masks = zip(*supports)
        self.set_support_features(feats, masks, neg, [m for _, m in negatives], folder, images=images)

    def _network_masks(self, masks: Sequence[np.ndarray]) -> torch.Tensor:
        """Boolean masks of any sizes -> soft masks [N,h,w] at the network's input size, on the device."""
        return torch.from_numpy(
            np.stack([resize_for_network(m.astype(np.float32), self.input_size) for m in masks])
        ).to(self.device)

    def set_support_features(
        self,
        feats: torch.Tensor,
        masks: Sequence[np.ndarray],
        neg_feats: torch.Tensor | None = None,
        neg_masks: Sequence[np.ndarray] = (),
        folder: Sequence[torch.Tensor] = (),
        cancelled=lambda: False,
        images: Sequence[np.ndarray] = (),
    ) -> None:
        """Learn the class from already-encoded support features [k,C,h,w] with their boolean masks, and negatives'
        features [n,C,h,w] with the regions that are not the class. Where the fit learns from the folder
        (LearningConfig.fits_folder), the features [C,h,w] of some of its images are fitted to as well, from a first
        fit's predictions on them; with the presence gap on, their presence scores place the presence floor. The
        supports' RGB uint8 `images`, when given, teach their colours (learning.LearningConfig.colour). Raises
        learning.Cancelled when `cancelled()`."""
        fg_t = self._network_masks(masks)
        neg_t = self._network_masks(neg_masks) if neg_feats is not None and len(neg_masks) else None
        if not self.model.learns_from_reviews:  # one prototype pair from the supports (SG-One's guidance)
            with torch.inference_mode():
                protos = self.model.prototypes(feats, fg_t, 1.0 - fg_t)
            self.learned = Learned(fg=protos[1:2], bg=protos[:1], supports=len(feats))
            return
        feats = feats.to(self.device)
        neg_feats = neg_feats.to(self.device) if neg_t is not None else None
        self._fit(feats, fg_t, neg_feats, neg_t, (), cancelled)
        if folder and self.learning.fits_folder:
            if self.learning.presence and neg_t is not None:  # the first fit's predictions see the negatives' floor
                self.learned.presence_floor = self._presence_floor(feats, neg_feats, neg_t)
            side = tuple(folder[0].shape[-2:])
            pseudo = [(f.to(self.device), torch.from_numpy(self.match(f, side)[0])) for f in folder]
            confident = [(f, p) for f, p in pseudo if p.max() > 0.5] or pseudo  # images where the class was found
            self._fit(feats, fg_t, neg_feats, neg_t, confident, cancelled)
        gap = folder if self.learning.presence_gap else ()
        if self.learning.presence and (neg_t is not None or gap):  # once, on the final fit
            self.learned.presence_floor = self._presence_floor(feats, neg_feats, neg_t, gap)
        if images and self.learning.colour > 0:
            self.learned.colours = ColourModel.fit(images, masks, self.learning.colour)

    def _fit(
        self,
        feats: torch.Tensor,
        fg_t: torch.Tensor,
        neg_feats: torch.Tensor | None,
        neg_t: torch.Tensor | None,
        pseudo: Sequence[tuple[torch.Tensor, torch.Tensor]],
        cancelled,
    ) -> None:
        """learn() on the device (the presence floor is the caller's: it depends on which fit is the last)."""
        with torch.inference_mode(False), torch.no_grad():
            self.learned = learn(feats, fg_t, self.learning, neg_feats, neg_t, pseudo, cancelled)

    def _presence_floor(
        self,
        feats: torch.Tensor,
        neg_feats: torch.Tensor | None,
        neg_regions: torch.Tensor | None,
        folder: Sequence[torch.Tensor] = (),
    ) -> float:
        """Just above the best presence any negative still gets in its region that is not the class (`neg_regions`
        [n,H,W]: a partial negative's image may show the class elsewhere, and that must not raise the floor), or
        in the gap between the folder's two groups of presence scores where it has them (learning.gap_floor), so
        images like the negatives come back empty; but never above what a quarter of the supports score when left
        out of the prototypes (the class must stay found)."""
        side = tuple(feats.shape[-2:])  # presence only: no upsampling needed
        negs = []
        if neg_feats is not None:
            regions = resize_mask(neg_regions, side) > 0.5
            negs = [self.match(f, side, region=r)[1] for f, r in zip(neg_feats, regions)]
        floor = max(negs) + 0.01 if negs and max(negs) > 0 else 0.0
        if folder:
            floor = max(floor, gap_floor([self.match(f, side)[1] for f in folder] + negs, self.learning.presence_gap))
        if floor <= 0:
            return 0.0
        cap = 0.95
        protos = self.learned.fg
        if len(protos) == len(feats) >= 2:  # one prototype per support: leave each out in turn (at most 16)
            left_out = []
            for i in evenly_spaced(range(len(feats)), 16):
                self.learned.fg = torch.cat([protos[:i], protos[i + 1 :]])
                left_out.append(self.match(feats[i], side)[1])
            self.learned.fg = protos
            cap = min(cap, float(np.quantile(left_out, 0.25)))
        return min(floor, cap)

    def encode(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Backbone features [N,C,h,w] (float16) of RGB uint8 images of any sizes."""
        pixels = torch.from_numpy(np.stack([resize_for_network(im, self.input_size) for im in images]))
        return self.encode_pixels(pixels)

    def encode_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """Features of network-sized uint8 pixels [N,s,s,3], in sub-batches; a CUDA out-of-memory error
        halves the batch and retries."""
        out: list[torch.Tensor] = []
        i = 0
        while i < len(pixels):
            chunk = pixels[i : i + self.batch_size]
            try:
                out.append(self._features(self.network_input(chunk)))
            except torch.OutOfMemoryError:
                if self.batch_size == 1:
                    raise
                torch.cuda.empty_cache()
                self.batch_size = max(1, self.batch_size // 2)
                continue
            i += len(chunk)
        return torch.cat(out)

    def cached_features(self, keys: Sequence[str], pixels: torch.Tensor) -> list[torch.Tensor]:
        """Features of each image, from the cache where its key is there, else computed (and cached)."""
        if self.cache is None:
            return list(self.encode_pixels(pixels)) if len(pixels) else []
        found = [self.cache.get(k, self.feature_layout) for k in keys]
        missing = [i for i, f in enumerate(found) if f is None]
        feats: list[torch.Tensor | None] = [f["features"].to(self.device) if f else None for f in found]
        if missing:
            new = self.encode_pixels(pixels[missing])
            for i, f in zip(missing, new):
                self.cache.put(keys[i], {"features": f})
                feats[i] = f
        return feats  # type: ignore[return-value]

    @torch.inference_mode()
    def match(
        self,
        feats: torch.Tensor,
        size: tuple[int, int],
        image: np.ndarray | None = None,
        region: torch.Tensor | None = None,
    ) -> tuple[np.ndarray, float]:
        """Foreground probability [H,W] of one image's features [C,h,w], upsampled to the image size, and
        the presence score, both from one matching pass. Its RGB uint8 `image`, when given, lets the supports'
        colours speak on a query of their scenes (annotator.inference.colour_model). `region` [h,w] (boolean, at
        the features' resolution): presence is scored on the foreground inside it only (a negative's region).

        Presence, in [0, 1], is the cosine between the prototype of the region the features match as
        foreground and the nearest foreground prototype of the supports (0 if none matches). On the DAVIS
        benchmark it separates images with and without the class at AUROC 0.88, against 0.69 for the mean
        foreground probability; it is the score proposals are ranked and exported by. Below the presence
        floor learned from the negatives, the image is judged free of the class (probability 0). Beyond the
        supports' count of parts, the weakest parts are dropped from the probability (not from presence).
        """
        if self.learned is None:
            raise RuntimeError("set_supports() must be called before predicting")
        with self.timings.stage("matching"):
            dtype = self.model.match_dtype if self.device.type != "mps" else torch.float32  # mps has no float64
            feats = feats.to(self.device, dtype)[None]
            fg_protos, bg_protos = self.learned.fg.to(dtype), self.learned.bg.to(dtype)
            # the features' inverse norms, for the scene test and PANet's cosines both (a pass over the features)
            inv = inverse_norms(feats) if self.model.learns_from_reviews else None
            scene = scene_descriptor(feats, inv)[0] if self.learned.scenes is not None else None  # only if used
            head, alone = self.learned.head_for(scene)
            offset = head(feats).to(dtype) if head is not None else None
            logits = self.model.segment(feats, bg_protos, fg_protos, offset, alone, inv)
            margin = logits[:, 1:] - logits[:, :1]  # [1,1,h,w]: softmax over (bg, fg) is its sigmoid
            fg = (margin[:, 0] > 0).to(dtype)
            if region is not None:  # presence of the foreground inside it only
                fg = fg * region.to(fg.device, dtype)
            if not fg.any():  # nothing matched: the supports' colours alone do not make an object
                return np.zeros(size, np.float32), 0.0
            found = F.normalize(masked_average_pool(self.model.embedding(feats), fg), dim=1)
            sim = (found @ F.normalize(fg_protos, dim=1).T).max()
            # Rounded: it ranks proposals, and its last float bits vary with the tensors' memory layout.
            presence = round(max(0.0, float(sim)), 4)
            if presence < self.learned.floor_for(alone):
                return np.zeros(size, np.float32), presence
            dropped = None
            if self.learned.parts:  # after presence: the dropped parts are still evidence that the class is there
                margin, dropped = self._strongest_parts(margin)
            own = self.learned.own_scenes(scene)
            if self.crf is not None and self.learning.own_scene_bias and (own is None or own.any()):
                margin = margin + self.learning.own_scene_bias  # fuller masks for the CRF to trim (learning.py)
            # bilinear upsampling is linear: the margin is upsampled instead of both logits
            margin = F.interpolate(margin, size=size, mode="bilinear", align_corners=False)
            colours = self.learned.colours
            colour = colours.logit(image, own) if image is not None and colours else None
            if colour is not None:
                colour = torch.from_numpy(colour).to(margin.device, margin.dtype)
                if dropped is not None:  # a dropped part stays dropped, however like the class its colours are
                    near = F.interpolate(dropped[None, None].to(margin.dtype), size=size, mode="bilinear") > 0
                    colour = colour.masked_fill(near[0, 0], 0.0)
                margin = margin + colour
            prob = torch.sigmoid(margin)[0, 0].float().cpu().numpy()
        return prob, presence

    def _strongest_parts(self, margin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The margin [1,1,h,w] with the foreground parts beyond the supports' count of parts (the weakest, by
        summed probability) pushed to background, and those parts' pixels [h,w] (None: none dropped)."""
        kept = strongest_parts(margin[0, 0].cpu().numpy(), self.learned.parts)
        if kept is None:
            return margin, None
        dropped = (margin[0, 0] > 0) & ~torch.from_numpy(kept).to(margin.device)
        return margin.masked_fill(dropped, -10.0), dropped

    def refine_async(self, image: np.ndarray | None, prob: np.ndarray) -> Future[np.ndarray]:
        """The final boolean mask of a probability map: CRF-refined when the CRF is on (in the worker
        processes when there are some, so the caller can go on with the next batch meanwhile)."""
        self.timings.images += 1
        if self.crf is not None and image is None:
            raise ValueError("the CRF needs the image's pixels")
        if self.crf is not None and self._crf_pool is not None:
            fut = self._crf_pool.submit(image, prob, self.crf)
            out: Future = Future()

            def done(f: Future) -> None:
                try:
                    q, seconds = f.result()
                except BaseException as exc:
                    out.set_exception(exc)
                    return
                self.timings.crf += seconds
                out.set_result(q > 0.5)

            fut.add_done_callback(done)
            return out
        out = Future()
        if self.crf is None:
            out.set_result(prob > 0.5)
        else:
            with self.timings.stage("crf"):
                out.set_result(refine(image, prob, self.crf) > 0.5)
        return out

    def decode(self, feats: torch.Tensor, images: Sequence[np.ndarray]) -> list[Proposal]:
        """Proposals from precomputed features (matching, then CRF when enabled)."""
        matched = [self.match(f, im.shape[:2], im) for f, im in zip(feats, images)]
        futures = [self.refine_async(im, prob) for im, (prob, _) in zip(images, matched)]
        masks = [f.result() for f in futures]
        return [Proposal(mask=m, score=pres if m.any() else None) for m, (_, pres) in zip(masks, matched)]

    def close(self, wait_s: float = 10.0) -> None:
        """Stop the CRF worker processes, if any, waiting at most `wait_s` for refinements in flight."""
        if self._crf_pool is not None:
            self._crf_pool.close(wait_s)
            self._crf_pool = None

    def predict(self, images: Sequence[np.ndarray]) -> list[Proposal]:
        """Proposals for RGB uint8 images of any sizes, in order."""
        if not images:
            return []
        return self.decode(self.encode(images), images)
