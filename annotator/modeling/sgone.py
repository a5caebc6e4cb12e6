"""SG-One (Zhang et al., 2020): similarity guidance fused into a trained segmentation branch.

The shared VGG-16 trunk gives conv4_3 and conv5_3 at stride 8. Guidance branch: the support's
conv5_3 features are masked-average-pooled into prototypes, and their cosine similarity to every
query pixel's conv5_3 feature is the guidance map. Segmentation branch: conv layers over the query's
conv4_3, multiplied pixel-wise by the guidance map, then decoded into two-class logits. The trunk
(with conv5, the guidance branch's convolutions) stays frozen at its ImageNet weights, so its
features can be cached; only the segmentation branch is trained.

Two departures from the paper, both because the frozen conv5_3 is not trained for it: the raw cosine
to the foreground prototype is 0.7-0.98 over a whole image (a first head trained on it learned to
answer "background" everywhere), so the guidance is the softmax over scaled cosines to the background
and foreground prototypes (PANet's map); and the decoder also sees that map itself, beside the
guided features.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from annotator.config import Model
from annotator.modeling.prototypes import masked_average_pool

TRUNK_CHANNELS = 512  # conv4_3 and conv5_3 of VGG-16 both have 512


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True))


class SGOneHead(nn.Module):
    """The trainable part: the segmentation branch and its decoder."""

    def __init__(self, hidden: int = 128) -> None:
        super().__init__()
        self.hidden = hidden
        self.branch = nn.Sequential(_conv(TRUNK_CHANNELS, hidden), _conv(hidden, hidden), _conv(hidden, hidden))
        self.decoder = nn.Sequential(_conv(hidden + 1, hidden), _conv(hidden, hidden), nn.Conv2d(hidden, 2, 1))

    def forward(self, conv4: torch.Tensor, guidance: torch.Tensor) -> torch.Tensor:
        """Logits [N,2,h,w] from conv4_3 features [N,512,h,w] and guidance maps [N,1,h,w]."""
        return self.decoder(torch.cat([self.branch(conv4) * guidance, guidance], dim=1))


class SGOne(nn.Module):
    """One-way k-shot SG-One over a VGG16OS8 trunk. Features are conv4_3 and conv5_3 concatenated."""

    name = Model.SGONE
    learns_from_reviews = False  # its guidance takes one prototype pair, from the supports only
    match_dtype = torch.float32  # its trained head runs in float32
    weights_name = ""  # the backbone's weights, set by annotator.build

    def __init__(self, backbone: nn.Module, head: SGOneHead | None = None, scale: float = 20.0) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head or SGOneHead()
        self.scale = scale

    @property
    def tag(self) -> str:
        """What its features depend on besides the weights and the input: the feature cache's namespace."""
        return f"{self.name}-conv4_3+conv5_3"

    def settings(self) -> dict:
        """Its options, recorded beside each proposal."""
        return {"model": str(self.name)}

    def segment(
        self,
        feats: torch.Tensor,
        bg: torch.Tensor,
        fg: torch.Tensor,
        offset: torch.Tensor | None = None,
        head_alone: bool = False,
        inv_norms: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits [1,2,h,w] of one query's features from its (bg [1,C], fg [1,C]) prototype pair (SG-One fits no
        head and matches no cosine over these features: `offset`, `head_alone` and `inv_norms` are PANet's)."""
        return self.match(feats, torch.cat([bg, fg]))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """[N,1024,h,w]: conv4_3 then conv5_3 of normalised images [N,3,H,W]."""
        out = self.backbone(images)
        return torch.cat([out["conv4_3"], out["conv5_3"]], dim=1)

    @staticmethod
    def split(feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(conv4_3, conv5_3) halves of concatenated features."""
        return feats[:, :TRUNK_CHANNELS], feats[:, TRUNK_CHANNELS:]

    @classmethod
    def prototypes(cls, supp_feats: torch.Tensor, fg: torch.Tensor, bg: torch.Tensor) -> torch.Tensor:
        """[2,C] (background, foreground) prototypes of the conv5_3 features, averaged over the shots."""
        g = cls.split(supp_feats)[1]
        return torch.stack([masked_average_pool(g, bg).mean(0), masked_average_pool(g, fg).mean(0)])

    def guidance(self, qry_feats: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
        """Guidance [Q,1,h,w] in [0,1]: softmax of each query pixel's scaled cosines (conv5_3) to the
        background and foreground prototypes, [2,C] for all queries or [Q,2,C] one pair per query."""
        g = F.normalize(self.split(qry_feats)[1], dim=1)
        p = F.normalize(prototypes, dim=-1)
        if p.dim() == 2:
            p = p.expand(len(g), -1, -1)
        cos = torch.einsum("nchw,npc->nphw", g, p) * self.scale
        return cos.softmax(dim=1)[:, 1:2]

    def match(self, qry_feats: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
        """Logits [Q,2,h,w] (background, foreground) of query features given the supports' prototypes."""
        return self.head(self.split(qry_feats)[0], self.guidance(qry_feats, prototypes))

    def embedding(self, feats: torch.Tensor) -> torch.Tensor:
        """The features prototypes live in (conv5_3), for the presence score."""
        return self.split(feats)[1]

    def forward(self, supp_feats: torch.Tensor, supp_fg: torch.Tensor, qry_feats: torch.Tensor) -> torch.Tensor:
        """Logits of queries from precomputed support features and soft masks [S,H,W] (k shots, one class)."""
        return self.match(qry_feats, self.prototypes(supp_feats, supp_fg, 1.0 - supp_fg))
