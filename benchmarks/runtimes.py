"""Other runtimes for the VGG-16 backbone, for `benchmarks.throughput --runtimes` (issue 16): the fp32 backbone
exported to ONNX and run by ONNX Runtime and by OpenVINO, in fp32 and in int8 (ONNX Runtime's static quantiser,
QDQ, 7-bit activations, per-channel weights, calibrated on frames given). Neither runtime is a dependency of the
app: this module imports them only when asked, from wherever they are installed (`--runtimes-path`)."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

Run = Callable[[np.ndarray], Sequence[np.ndarray]]  # normalised float32 [N,3,H,W] -> (conv4_3, conv5_3)


class RuntimeBackbone(nn.Module):
    """A backbone whose forward pass is another runtime's session: what a Predictor's model can carry in place of
    the torch backbone (same layers and outputs)."""

    layers = ("conv4_3", "conv5_3")
    out_channels = 512

    def __init__(self, run: Run) -> None:
        super().__init__()
        self.run = run

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        c4, c5 = self.run(x.float().contiguous().cpu().numpy())
        return {"conv4_3": torch.from_numpy(np.asarray(c4)), "conv5_3": torch.from_numpy(np.asarray(c5))}


class _Outputs(nn.Module):
    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.backbone(x)
        return out["conv4_3"], out["conv5_3"]


def export_onnx(backbone: nn.Module, shape: tuple[int, int], folder: Path) -> Path:
    """The fp32 backbone as folder/backbone.onnx, batch dynamic."""
    path = folder / "backbone.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _Outputs(backbone).eval(),
            torch.zeros(1, 3, *shape),
            str(path),
            input_names=["x"],
            output_names=["conv4_3", "conv5_3"],
            dynamic_axes={"x": {0: "n"}},
            opset_version=17,
            dynamo=False,
        )
    return path


def quantize_onnx(model: Path, calibration: Sequence[np.ndarray]) -> Path:
    """ONNX Runtime's static int8 quantisation of `model` (QDQ; activations u8 over 7 bits, which AVX2 CPUs without
    VNNI need; weights s8 per channel), calibrated on the normalised images `calibration` ([1,3,H,W] each)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{"x": c} for c in calibration])

        def get_next(self) -> dict | None:
            return next(self.items, None)

    pre, out = model.with_name("backbone.pre.onnx"), model.with_name("backbone.int8.onnx")
    quant_pre_process(str(model), str(pre))
    quantize_static(
        str(pre),
        str(out),
        Reader(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
        reduce_range=True,
    )
    return out


def onnxruntime_run(model: Path, threads: int) -> Run:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"x": x})


def openvino_run(model: Path, threads: int) -> Run:
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(
        core.read_model(str(model)), "CPU", {"INFERENCE_NUM_THREADS": str(threads), "PERFORMANCE_HINT": "LATENCY"}
    )
    return lambda x: list(compiled(x).values())


def runtime_backbones(
    backbone: nn.Module, shape: tuple[int, int], calibration: Sequence[np.ndarray], folder: Path, threads: int
) -> dict[str, Run]:
    """Name -> run of each runtime and precision that imports here (ONNX Runtime, OpenVINO; fp32, int8)."""
    fp32 = export_onnx(backbone, shape, folder)
    out: dict[str, Run] = {}
    try:
        int8 = quantize_onnx(fp32, calibration)
        out["onnxruntime fp32"] = onnxruntime_run(fp32, threads)
        out["onnxruntime int8 (static QDQ, 7-bit activations)"] = onnxruntime_run(int8, threads)
    except ImportError as exc:
        print(f"no ONNX Runtime rows: {exc}")
        return out
    try:
        out["openvino fp32"] = openvino_run(fp32, threads)
        out["openvino int8 (the same QDQ model)"] = openvino_run(int8, threads)
    except ImportError as exc:
        print(f"no OpenVINO rows: {exc}")
    return out
