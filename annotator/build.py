"""The one factory of few-shot models: a ModelSpec -> a network with its backbone weights and, for SG-One,
its head (like segment-anything's build_sam). The Predictor takes what this builds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from annotator.config import DEFAULT_BACKBONE, Model
from annotator.io.sgone_weights import default_checkpoint, load_head
from annotator.io.weights import architecture_of, load_backbone_state
from annotator.modeling.backbones import build_backbone
from annotator.modeling.panet import PANet
from annotator.modeling.sgone import SGOne, SGOneHead


@dataclass(frozen=True)
class ModelSpec:
    """Which network, on which weights. PANet's options are on by default because benchmarks/fewshot_quality.py
    measured them together at 36.4 vs 26.2 cross-video mIoU 1-shot: `layers` (default: all of the backbone's,
    conv4_3 and conv5_3) match on several layers at once, and `self_refine` matches a second time with
    prototypes averaged with the query's own confident regions. SG-One's head: `checkpoint` (default: the
    shipped one)."""

    model: Model = Model.PANET
    backbone: str = DEFAULT_BACKBONE  # weights/NAME.safetensors
    layers: tuple[str, ...] | None = None
    self_refine: bool = True
    checkpoint: Path | None = None


def _panet(trunk: nn.Module, spec: ModelSpec, head: nn.Module | None) -> PANet:
    return PANet(trunk, layers=tuple(spec.layers) if spec.layers else tuple(trunk.layers), self_refine=spec.self_refine)


def _sgone(trunk: nn.Module, spec: ModelSpec, head: nn.Module | None) -> SGOne:
    return SGOne(trunk, head if head is not None else load_head(spec.checkpoint or default_checkpoint()))


MODEL_REGISTRY: dict[Model, Callable[[nn.Module, ModelSpec, nn.Module | None], nn.Module]] = {
    Model.PANET: _panet,
    Model.SGONE: _sgone,
}


def build_model(spec: ModelSpec = ModelSpec(), head: SGOneHead | None = None) -> PANet | SGOne:
    """The network of `spec` on CPU, in eval mode, its backbone loaded from weights/ (WeightsError if absent);
    an SG-One `head` given here is used instead of the checkpoint's (training builds its own)."""
    state = load_backbone_state(spec.backbone)
    model = MODEL_REGISTRY[Model(spec.model)](build_backbone(architecture_of(state), state), spec, head)
    model.weights_name = spec.backbone
    return model.eval()
