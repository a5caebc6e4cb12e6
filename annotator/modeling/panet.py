"""PANet (Wang et al., ICCV 2019): prototypes by masked average pooling, cosine matching, PAR loss.

The whole few-shot forward pass of one way: support features -> background and foreground
prototypes (averaged over the k shots) -> scaled cosine logits on the query features. The
prototype-alignment regulariser (PAR) segments the supports back from prototypes taken off the
query's own prediction; it is what training or test-time adaptation minimises.

At inference (`segment`), with the extras the annotator measured: several prototypes per side (each pixel
takes its best match: one per support, k-means of the background), a fitted head's logit offset (or, on
the supports' own scenes, the head's logit alone), and the self-prototype pass (match again with prototypes
averaged with the query's own confident regions).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from annotator.config import Model
from annotator.modeling.prototypes import best_match_logits, cosine_logits, inverse_norms, masked_average_pool

IGNORE = 255


def combine_layers(feats: list[torch.Tensor]) -> torch.Tensor:
    """One layer as is; several (same resolution) L2-normalised per pixel and concatenated, so a cosine
    on the result is the mean of the per-layer cosines."""
    if len(feats) == 1:
        return feats[0]
    return torch.cat([F.normalize(f.float(), dim=1) for f in feats], dim=1) / len(feats) ** 0.5


class PANet(nn.Module):
    """One-way, k-shot PANet over an output-stride-8 backbone; logits are at feature resolution."""

    name = Model.PANET
    learns_from_reviews = True  # supports, negatives and the folder teach it (annotator.inference.learning)
    # float32 matching: the predictor converts the cached float16 features into a new (aligned, contiguous) tensor on
    # every pass, so a first pass and a cached second one compute the same bits (tests/test_pipeline.py checks it).
    # float64 cost a 2,000-image round a third of its time.
    match_dtype = torch.float32
    weights_name = ""  # the backbone's weights, set by annotator.build

    def __init__(
        self, backbone: nn.Module, layers: tuple[str, ...] | None = None, scale: float = 20.0, self_refine: bool = True
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.layers = layers or (backbone.layers[-1],)
        self.scale = scale
        self.self_refine = self_refine

    @property
    def tag(self) -> str:
        """What its features depend on besides the weights and the input: the feature cache's namespace."""
        return f"{self.name}-{'+'.join(self.layers)}"

    def settings(self) -> dict:
        """Its options, recorded beside each proposal."""
        return {"model": str(self.name), "layers": list(self.layers), "self_refine": self.self_refine}

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Backbone features [N,C,h,w] of normalised images [N,3,H,W]; several layers are combined."""
        out = self.backbone(images)
        return combine_layers([out[name] for name in self.layers])

    @staticmethod
    def prototypes(supp_feats: torch.Tensor, fg: torch.Tensor, bg: torch.Tensor) -> torch.Tensor:
        """[2,C] (background, foreground) prototypes, each averaged over the k shots."""
        return torch.stack([masked_average_pool(supp_feats, bg).mean(0), masked_average_pool(supp_feats, fg).mean(0)])

    def match(self, qry_feats: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
        """Logits [Q,2,h,w] (background, foreground) of query features against the prototypes."""
        return cosine_logits(qry_feats, prototypes, self.scale)

    @staticmethod
    def embedding(feats: torch.Tensor) -> torch.Tensor:
        """The features prototypes live in (the backbone's own), for the presence score."""
        return feats

    def matcher(self, feats: torch.Tensor, offset: torch.Tensor | None = None, inv_norms: torch.Tensor | None = None):
        """(bg [B,C], fg [F,C] prototypes) -> logits [1,2,h,w] of features [1,C,h,w]: each side's best prototype,
        plus a fitted head's foreground `offset` [1,h,w]. What does not depend on the prototypes (the features'
        inverse norms, or `inv_norms` where the caller has them) is computed once, however often the prototypes
        change."""
        inv = inverse_norms(feats) if inv_norms is None else inv_norms

        def match(bg: torch.Tensor, fg: torch.Tensor) -> torch.Tensor:
            logits = best_match_logits(feats, bg, fg, self.scale, inv)
            if offset is not None:
                logits[:, 1] += offset
            return logits

        return match

    def segment(
        self,
        feats: torch.Tensor,
        bg: torch.Tensor,
        fg: torch.Tensor,
        offset: torch.Tensor | None = None,
        head_alone: bool = False,
        inv_norms: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits [1,2,h,w] of one query's features [1,C,h,w] against prototype sets bg [B,C] and fg [F,C]
        (`inv_norms`: the features' inverse_norms, where the caller has them already);
        `head_alone`: the fitted head's logit `offset` [1,h,w] alone decides (on the supports' own scenes a
        linear classifier separates better than their prototypes)."""
        if head_alone and offset is not None:
            return torch.stack([torch.zeros_like(offset), offset], dim=1)
        match = self.matcher(feats, offset, inv_norms)
        logits = match(bg, fg)
        if not self.self_refine:
            return logits
        p = logits.softmax(dim=1)[:, 1]
        if (p > 0.7).any():
            fg = (fg + masked_average_pool(feats, (p > 0.7).to(feats.dtype))) / 2
        if (p < 0.3).any():
            bg = (bg + masked_average_pool(feats, (p < 0.3).to(feats.dtype))) / 2
        return match(bg, fg)

    def forward(
        self,
        supp_imgs: torch.Tensor,
        supp_fg: torch.Tensor,
        qry_imgs: torch.Tensor,
        supp_bg: torch.Tensor | None = None,
        align: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Segment queries from supports. supp_fg/supp_bg are [S,H,W] in [0,1]; bg defaults to 1 - fg.

        Returns logits [Q,2,h,w] and, when `align`, the PAR loss (else None).
        """
        supp_bg = 1.0 - supp_fg if supp_bg is None else supp_bg
        feats = self.features(torch.cat([supp_imgs, qry_imgs]))
        supp_feats, qry_feats = feats[: len(supp_imgs)], feats[len(supp_imgs) :]
        logits = self.match(qry_feats, self.prototypes(supp_feats, supp_fg, supp_bg))
        loss = self.alignment_loss(qry_feats, logits, supp_feats, supp_fg, supp_bg) if align else None
        return logits, loss

    def alignment_loss(
        self,
        qry_feats: torch.Tensor,
        qry_logits: torch.Tensor,
        supp_feats: torch.Tensor,
        supp_fg: torch.Tensor,
        supp_bg: torch.Tensor,
    ) -> torch.Tensor:
        """PAR: prototypes from the query's predicted masks must segment every support shot back."""
        pred = qry_logits.argmax(dim=1)
        qry_fg, qry_bg = (pred == 1).float(), (pred == 0).float()
        protos = torch.stack(
            [masked_average_pool(qry_feats, qry_bg).mean(0), masked_average_pool(qry_feats, qry_fg).mean(0)]
        )
        supp_logits = self.match(supp_feats, protos)
        supp_logits = F.interpolate(supp_logits, size=supp_fg.shape[-2:], mode="bilinear", align_corners=False)
        label = torch.full(supp_fg.shape, IGNORE, dtype=torch.long, device=supp_fg.device)
        label[supp_bg > 0.5] = 0
        label[supp_fg > 0.5] = 1
        if not (label != IGNORE).any():
            return supp_logits.sum() * 0.0
        return F.cross_entropy(supp_logits, label, ignore_index=IGNORE)
