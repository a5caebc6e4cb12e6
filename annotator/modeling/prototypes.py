"""Pure tensor functions of prototype matching: masked average pooling and scaled cosine logits."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def resize_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize [N,H,W] soft masks to `size` by area averaging (keeps fractional coverage)."""
    return F.interpolate(mask[:, None].float(), size=size, mode="area")[:, 0]


def masked_average_pool(features: torch.Tensor, mask: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Average of [N,C,h,w] features weighted by [N,H,W] masks, one [C] vector per image -> [N,C]."""
    m = resize_mask(mask, features.shape[-2:])
    return (features * m[:, None]).sum(dim=(2, 3)) / (m.sum(dim=(1, 2))[:, None] + eps)


def cosine_logits(features: torch.Tensor, prototypes: torch.Tensor, scale: float = 20.0) -> torch.Tensor:
    """Cosine similarity of every pixel of [N,C,h,w] to each of [P,C] prototypes, times `scale` -> [N,P,h,w]."""
    f = F.normalize(features, dim=1)
    p = F.normalize(prototypes, dim=1)
    return scale * torch.einsum("nchw,pc->nphw", f, p)
