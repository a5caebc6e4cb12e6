"""The fitted head: a 1x1-conv foreground classifier over frozen, cached backbone features.

It adds a per-pixel correction to PANet's prototype logits, or (fitted closely to the supports, on their own
scenes) its logit alone decides foreground. `annotator.inference.learning` fits it on the supports, the
negatives (and the folder's pixels, for Tent) without touching the backbone.
"""

from __future__ import annotations

import torch
from torch import nn


class PixelHead(nn.Module):
    """Foreground logit offset [N,h,w] of features [N,C,h,w]; starts at zero (PANet unchanged)."""

    def __init__(self, channels: int, scale: float = 10.0) -> None:
        super().__init__()
        self.scale = scale  # the combined features are unit-norm per pixel: scaled so weights stay small
        self.conv = nn.Conv2d(channels, 1, kernel_size=1)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """In the features' own dtype (no copy of them): the scale is folded into the weights."""
        w = self.conv.weight[0, :, 0, 0].to(feats.dtype) * self.scale
        return torch.einsum("nchw,c->nhw", feats, w) + self.conv.bias[0].to(feats.dtype)

    def pixels(self, x: torch.Tensor) -> torch.Tensor:
        """The same logit for float32 feature vectors [M,C] (fitting works on sampled pixels; no scaled copy)."""
        return x @ (self.conv.weight[0, :, 0, 0] * self.scale) + self.conv.bias[0]
