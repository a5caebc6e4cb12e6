"""Locate and load backbone weights from weights/; run time reads safetensors only.

A standard torchvision VGG-16 or ResNet-50 `.pth` dropped into weights/ is converted once, with
torch's weights-only loader, into a safetensors file beside it; only that file is loaded afterwards.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from annotator.config import DEFAULT_BACKBONE

WEIGHTS_DIR = Path(os.environ.get("ANNOTATOR_WEIGHTS", Path(__file__).resolve().parents[2] / "weights"))
VGG16_FILE = "vgg16_imagenet.safetensors"
VGG16_SHA256 = "2744f9877ff4b654a6f47fc9e470d3f0ec0d2e82de75fac7ede628c69b790d7a"


class WeightsError(RuntimeError):
    """A weights file is missing, corrupt or of an unknown architecture."""


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def available_backbones(weights_dir: Path = WEIGHTS_DIR) -> list[str]:
    """Names that `load_backbone_state` accepts: every .safetensors or .pth stem in weights/."""
    if not weights_dir.is_dir():
        return []
    stems = {p.stem for p in weights_dir.iterdir() if p.suffix in (".safetensors", ".pth")}
    return sorted(stems)


def architecture_of(state: dict[str, torch.Tensor]) -> str:
    """'vgg16' or 'resnet50', told from a torchvision state dict's keys."""
    if "features.28.weight" in state and "features.0.weight" in state:
        return "vgg16"
    if "layer4.2.conv3.weight" in state and "conv1.weight" in state:
        return "resnet50"
    raise WeightsError("weights are neither a torchvision VGG-16 nor a ResNet-50 state dict")


def _convert_pth(pth: Path, out: Path) -> None:
    try:
        state = torch.load(pth, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types; its text advises unsafe loading, which we never do
        raise WeightsError(
            f"{pth.name}: not a plain state dict of tensors ({type(exc).__name__}); it was not "
            "loaded, since loading anything else would run code from the file"
        ) from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsError(f"{pth.name}: not a state dict")
    state = {k.removeprefix("module."): v.contiguous() for k, v in state.items() if isinstance(v, torch.Tensor)}
    architecture_of(state)
    save_file(state, str(out), metadata={"converted_from": pth.name})


def load_backbone_state(name: str = DEFAULT_BACKBONE, weights_dir: Path = WEIGHTS_DIR) -> dict[str, torch.Tensor]:
    """Load weights/NAME.safetensors (converting NAME.pth once if that is all there is)."""
    st = weights_dir / f"{name}.safetensors"
    pth = weights_dir / f"{name}.pth"
    if not st.exists() and pth.exists():
        _convert_pth(pth, st)
    if not st.exists():
        have = ", ".join(available_backbones(weights_dir)) or "none"
        hint = " (run scripts/setup.sh to prepare it)" if name == DEFAULT_BACKBONE else ""
        raise WeightsError(f"no weights named '{name}' in {weights_dir}{hint}; available: {have}")
    if st.name == VGG16_FILE and sha256_file(st) != VGG16_SHA256:
        raise WeightsError(f"{st} does not match its recorded sha256; delete it and run scripts/setup.sh")
    try:
        return load_file(str(st))
    except Exception as exc:  # safetensors raises several types for a corrupt header
        raise WeightsError(f"{st.name}: unreadable safetensors ({exc})") from exc
