"""VGG-16 at output stride 8 in int8: the CPU backbone (issue 16; benchmarks/throughput.py measures it).

PyTorch's eager static quantisation on its x86 engine (fbgemm and oneDNN kernels, which use AVX-512 VNNI where
the CPU has it): each conv is fused with its ReLU, weights are quantised per output channel, activations per
tensor over ranges calibrated once on real photos (annotator.io.int8_ranges stores them). Without VNNI (AVX2 only,
e.g. AMD Zen 3) the kernels sum pairs of products in 16 bits, which saturate on 8-bit activations (masks at IoU 0.92
against fp32's): there activations take 7 bits over the same ranges (IoU 0.99). The last conv
(conv5_3, signed, with a wide lopsided range) stays float: its int8 version cost mask agreement for little speed.
It returns the same float conv4_3 and conv5_3 as VGG16OS8, so everything after the backbone (prototypes, the
fitted head, the cache layout) is unchanged.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable

import torch
import torch.ao.quantization as tq
from torch import nn

from annotator.modeling.backbones import VGG16OS8

Ranges = dict[str, tuple[float, float]]  # quantisation point -> (min, max) of its float activations
CONV4_3_POOL, CONV5_3 = 22, 28  # indices in VGG16OS8.features: after pool4 (stride 1), and the last conv


def int8_supported() -> bool:
    """Whether this PyTorch build has the x86 int8 engine (x86-64 CPUs; not ARM Macs)."""
    return "x86" in torch.backends.quantized.supported_engines


def activation_bits() -> int:
    """8 where the CPU has VNNI (int8 products summed in 32 bits), else 7: the AVX2 kernels sum pairs of u8 x s8
    products in 16 bits, which 8-bit activations overflow."""
    vnni = getattr(torch.cpu, "_is_vnni_supported", lambda: False)
    return 8 if vnni() else 7


class _Stack(nn.Module):
    """VGG16OS8's layers between a quantise point and two dequantise points (the unit quantisation works on)."""

    def __init__(self, features: nn.Sequential) -> None:
        super().__init__()
        self.quant = tq.QuantStub()
        self.features = features
        self.dequant4 = tq.DeQuantStub()
        self.dequant5 = tq.DeQuantStub()

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.quant(x)
        for idx, layer in enumerate(self.features):
            if idx == CONV5_3:
                x = self.dequant5(x)
            x = layer(x)
            if idx == CONV4_3_POOL:
                conv4 = self.dequant4(x)
        return {"conv4_3": conv4, "conv5_3": x}


def _prepared(backbone: VGG16OS8, bits: int = 8) -> _Stack:
    """A fused copy of the backbone's layers with a min/max observer at every quantisation point; activations in
    `bits` (8, or 7: the same range at half the resolution)."""
    stack = _Stack(copy.deepcopy(backbone.features)).eval()
    layers = stack.features
    pairs = [
        [f"features.{i}", f"features.{i + 1}"]
        for i in range(len(layers) - 1)
        if isinstance(layers[i], nn.Conv2d) and isinstance(layers[i + 1], nn.ReLU)
    ]
    tq.fuse_modules(stack, pairs, inplace=True)  # in place: no copy beyond the one above (memory)
    stack.qconfig = tq.QConfig(
        activation=tq.MinMaxObserver.with_args(dtype=torch.quint8, reduce_range=bits == 7),
        weight=tq.default_per_channel_weight_observer,
    )
    stack.features[CONV5_3].qconfig = None
    with warnings.catch_warnings():  # eager quantisation is marked deprecated in favour of torchao
        warnings.simplefilter("ignore")
        return tq.prepare(stack, inplace=True)


def _observers(stack: nn.Module) -> dict[str, tq.ObserverBase]:
    suffix = ".activation_post_process"
    return {name.removesuffix(suffix): m for name, m in stack.named_modules() if name.endswith(suffix)}


def calibrate(backbone: VGG16OS8, batches: Iterable[torch.Tensor]) -> Ranges:
    """The activation ranges (min, max seen) at each quantisation point over normalised image batches [N,3,H,W]:
    what `quantize` takes. (A histogram observer, which clips outliers, agreed less with fp32's masks.)"""
    stack = _prepared(backbone)
    with torch.inference_mode():
        for x in batches:
            stack(x)
    return {name: (float(obs.min_val), float(obs.max_val)) for name, obs in _observers(stack).items()}


class QuantizedVGG16OS8(nn.Module):
    """An int8 VGG16OS8 (CPU only): normalised images [N,3,H,W] -> float conv4_3 and conv5_3."""

    out_channels = VGG16OS8.out_channels
    layers = VGG16OS8.layers

    def __init__(self, stack: nn.Module, bits: int) -> None:
        super().__init__()
        self.stack = stack
        self.bits = bits  # of its activations (activation_bits)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.stack(x.float().contiguous())


def quantize(backbone: VGG16OS8, ranges: Ranges, bits: int | None = None) -> QuantizedVGG16OS8:
    """The int8 backbone of a float one over calibrated `ranges` (KeyError naming a point that has none), its
    activations in `bits` (default: what this CPU sums without overflow, activation_bits())."""
    torch.backends.quantized.engine = "x86"
    bits = bits or activation_bits()
    stack = _prepared(backbone, bits)
    for name, obs in _observers(stack).items():
        lo, hi = ranges[name]
        obs.min_val.fill_(lo)
        obs.max_val.fill_(hi)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return QuantizedVGG16OS8(tq.convert(stack, inplace=True), bits).eval()


def _fake_quantize_activation(x: torch.Tensor, lo: float, hi: float, bits: int) -> torch.Tensor:
    """x through u8 quantisation over [lo, hi] in `bits` (7: the same range on codes 0-127, which leaves the u8
    codes above unused: OpenVINO runs 256-level FakeQuantize in int8, and 7-bit codes keep AVX2's 16-bit pair sums
    from saturating)."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = max(hi - lo, 1e-8) / (2**bits - 1)
    return torch.fake_quantize_per_tensor_affine(x, scale, int(round(-lo / scale)), 0, 255)


def _fake_quantize_weight(w: torch.Tensor) -> torch.Tensor:
    """Symmetric s8 per output channel, as PyTorch's default per-channel weight observer makes it (max |w| / 127.5)."""
    scale = w.abs().amax(dim=(1, 2, 3)).clamp_min(1e-8) / 127.5
    return torch.fake_quantize_per_channel_affine(w, scale, torch.zeros_like(scale, dtype=torch.int32), 0, -128, 127)


class FakeQuantizedVGG16OS8(nn.Module):
    """VGG16OS8 in float with the int8 backbone's quantisation made explicit (FakeQuantize at the calibrated ranges,
    conv5_3 in float, as in `quantize`): normalised images [N,3,H,W] -> (conv4_3, conv5_3). What OpenVINO converts
    into its int8 backbone (annotator.io.openvino_ir); in PyTorch itself it runs at fp32's speed."""

    def __init__(self, backbone: VGG16OS8, ranges: Ranges, bits: int) -> None:
        super().__init__()
        self.features = copy.deepcopy(backbone.features).requires_grad_(False)
        self.ranges, self.bits = ranges, bits

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = _fake_quantize_activation(x, *self.ranges["quant"], self.bits)
        for idx, layer in enumerate(self.features):
            if isinstance(layer, nn.Conv2d):
                w = layer.weight if idx == CONV5_3 else _fake_quantize_weight(layer.weight)
                x = nn.functional.conv2d(x, w, layer.bias, layer.stride, layer.padding, layer.dilation)
            else:
                x = layer(x)
                if isinstance(layer, nn.ReLU):  # a fused conv + ReLU's output: its quantisation point
                    x = _fake_quantize_activation(x, *self.ranges[f"features.{idx - 1}"], self.bits)
            if idx == CONV4_3_POOL:
                conv4 = x
        return conv4, x
