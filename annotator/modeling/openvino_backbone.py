"""VGG-16 at output stride 8 in int8 through OpenVINO: `--precision int8-openvino` (issue 16).

OpenVINO runs the fake-quantised VGG-16 (annotator.modeling.quantized.FakeQuantizedVGG16OS8, converted at set-up by
annotator.io.openvino_ir) with int8 kernels: 12 of its 13 convs in u8 x s8, conv5_3 in float, the same quantisation
points and ranges as PyTorch's int8 backbone. On the 2-core AVX2 machine without VNNI it ran 1.17x PyTorch's int8,
with masks a little further from fp32's, so it is not the default (benchmarks/RESULTS.md). It returns the same
float conv4_3 and conv5_3 as VGG16OS8.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from annotator.modeling.backbones import VGG16OS8


class OpenVINOVGG16OS8(nn.Module):
    """An OpenVINO int8 VGG16OS8 (CPU only): normalised images [N,3,H,W] -> float conv4_3 and conv5_3."""

    out_channels = VGG16OS8.out_channels
    layers = VGG16OS8.layers

    def __init__(self, xml: Path, bits: int, threads: int) -> None:
        super().__init__()
        import openvino as ov

        config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
        self.compiled = ov.Core().compile_model(str(xml), "CPU", config)
        self.bits = bits  # of its activations (modeling.quantized.activation_bits)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.compiled(x.float().contiguous().numpy())
        conv4, conv5 = (torch.from_numpy(out[o]) for o in self.compiled.outputs)
        return {"conv4_3": conv4, "conv5_3": conv5}
