"""PANet's pieces: masked average pooling, scaled cosine, k-shot prototypes, output stride, PAR loss."""

from __future__ import annotations

import torch

from annotator.modeling.backbones import VGG16OS8, ResNet50OS8
from annotator.modeling.panet import PANet
from annotator.modeling.prototypes import cosine_logits, masked_average_pool


def test_masked_average_pool_averages_only_inside_the_mask():
    feats = torch.zeros(1, 2, 4, 4)
    feats[0, 0, :2] = 3.0  # top half, channel 0
    feats[0, 1, 2:] = 5.0  # bottom half, channel 1
    mask = torch.zeros(1, 8, 8)
    mask[0, :4] = 1.0  # top half at twice the resolution
    proto = masked_average_pool(feats, mask)
    assert torch.allclose(proto, torch.tensor([[3.0, 0.0]]), atol=1e-4)


def test_cosine_logits_are_scaled_cosines():
    feats = torch.tensor([[1.0, 0.0], [0.0, 2.0]]).T.reshape(1, 2, 1, 2)  # pixel 0 = (1,0), pixel 1 = (0,2)
    protos = torch.tensor([[3.0, 0.0], [1.0, 1.0]])
    out = cosine_logits(feats, protos, scale=20.0)
    expected = torch.tensor([[[20.0, 0.0]], [[20 / 2**0.5, 20 / 2**0.5]]])
    assert torch.allclose(out[0], expected, atol=1e-4)


def test_k_shot_prototypes_are_the_mean_of_each_shot():
    f1, f2 = torch.full((1, 3, 2, 2), 1.0), torch.full((1, 3, 2, 2), 3.0)
    fg = torch.ones(2, 2, 2)
    protos = PANet.prototypes(torch.cat([f1, f2]), fg, 1 - fg + 1e-9)
    assert torch.allclose(protos[1], torch.full((3,), 2.0), atol=1e-3)


def test_vgg16_is_output_stride_8_and_resnet50_too():
    x = torch.zeros(1, 3, 64, 96)
    out = VGG16OS8()(x)
    assert out["conv5_3"].shape == (1, 512, 8, 12)
    assert out["conv4_3"].shape == (1, 512, 8, 12)
    assert ResNet50OS8().eval()(x)["layer4"].shape == (1, 2048, 8, 12)


def _toy_episode():
    g = torch.Generator().manual_seed(0)
    imgs = torch.randn(2, 3, 32, 32, generator=g) * 0.1
    fg = torch.zeros(2, 32, 32)
    fg[:, 8:24, 8:24] = 1
    imgs[:, 0] += fg * 2.0  # the object is bright in channel 0
    return imgs, fg


class _TinyBackbone(torch.nn.Module):
    layers = ("out",)

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, x):
        return {"out": self.conv(x)}


def test_forward_segments_a_toy_object_and_par_loss_trains():
    torch.manual_seed(0)
    imgs, fg = _toy_episode()
    model = PANet(_TinyBackbone())
    logits, loss = model(imgs[:1], fg[:1], imgs[1:], align=True)
    assert logits.shape == (1, 2, 32, 32) and loss is not None and loss.requires_grad
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    first = None
    for _ in range(30):
        logits, loss = model(imgs[:1], fg[:1], imgs[1:], align=True)
        ce = torch.nn.functional.cross_entropy(logits, fg[1:].long())
        opt.zero_grad()
        (ce + loss).backward()
        opt.step()
        first = first if first is not None else (ce + loss).item()
    assert (ce + loss).item() < 0.5 * first
    pred = logits.argmax(1)[0].bool()
    iou = (pred & fg[1].bool()).sum() / (pred | fg[1].bool()).sum()
    assert iou > 0.9


def test_par_loss_ignores_unlabelled_support_pixels():
    imgs, fg = _toy_episode()
    model = PANet(_TinyBackbone())
    none = torch.zeros_like(fg[:1])
    _, loss = model(imgs[:1], fg[:1], imgs[1:], supp_bg=none, align=True)
    assert torch.isfinite(loss)
