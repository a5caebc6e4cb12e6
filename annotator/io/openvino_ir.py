"""The OpenVINO int8 backbone's model files: made at set-up from the safetensors weights and the shipped int8 ranges,
checked by sha256 at every load (issue 16; benchmarks/throughput.py measures it).

`python -m annotator.io.openvino_ir` (scripts/setup.sh runs it) converts the fake-quantised VGG-16
(annotator.modeling.quantized.FakeQuantizedVGG16OS8, at this CPU's activation bits) with OpenVINO into
weights/vgg16_imagenet.openvino-int8-7bit.xml and .bin (openvino-int8 on a CPU with VNNI), and records beside
them, in a .json, their sha256 and what they were made from: the weights' and the ranges' sha256 and OpenVINO's
version. Nothing is unpickled: OpenVINO reads its own XML and a raw weights file.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import torch

from annotator.config import DEFAULT_BACKBONE, INPUT_SIZE
from annotator.io.atomic import atomic_write_bytes
from annotator.io.int8_ranges import RANGES_SHA256, load_ranges
from annotator.io.weights import VGG16_SHA256, WEIGHTS_DIR, WeightsError, load_backbone_state, sha256_file
from annotator.modeling.backbones import build_backbone
from annotator.modeling.quantized import FakeQuantizedVGG16OS8, activation_bits

CONVERSION = 2  # raised whenever FakeQuantizedVGG16OS8 or the export changes: set-up then converts again


def openvino_version() -> str | None:
    """OpenVINO's version, or None where it is not installed (or does not load)."""
    try:
        import openvino
    except (ImportError, OSError):  # not installed, or its libraries do not load here
        return None
    return openvino.get_version()


def ir_stem(bits: int) -> str:
    """The files' name without extension: vgg16_imagenet.openvino-int8 (8-bit activations) or ...-int8-7bit."""
    return f"{DEFAULT_BACKBONE}.openvino-int8" + ("" if bits == 8 else f"-{bits}bit")


def _record(bits: int) -> dict:
    """What the files must have been made from, as their .json records it."""
    made_from = {"weights_sha256": VGG16_SHA256, "ranges_sha256": RANGES_SHA256}
    return {**made_from, "bits": bits, "openvino": openvino_version(), "conversion": CONVERSION}


def export(weights_dir: Path = WEIGHTS_DIR, bits: int | None = None) -> Path:
    """Convert the fake-quantised backbone with OpenVINO into weights_dir (any batch and image size) and record the
    files' sha256; returns the .xml. Each file is written atomically, the record last."""
    import openvino as ov

    bits = bits or activation_bits()
    backbone = build_backbone("vgg16", load_backbone_state(DEFAULT_BACKBONE, weights_dir))
    net = FakeQuantizedVGG16OS8(backbone, load_ranges(DEFAULT_BACKBONE, weights_dir), bits)
    example = torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE)
    model = ov.convert_model(net.eval(), example_input=example, input=[ov.PartialShape([-1, 3, -1, -1])])
    stem = ir_stem(bits)
    record = _record(bits)
    with tempfile.TemporaryDirectory() as tmp:
        ov.save_model(model, str(Path(tmp) / f"{stem}.xml"), compress_to_fp16=False)
        for ext in ("bin", "xml"):
            made = Path(tmp) / f"{stem}.{ext}"
            record[f"{ext}_sha256"] = sha256_file(made)
            atomic_write_bytes(weights_dir / made.name, made.read_bytes())
    atomic_write_bytes(weights_dir / f"{stem}.json", (json.dumps(record, indent=1) + "\n").encode())
    return weights_dir / f"{stem}.xml"


def checked_ir(bits: int, weights_dir: Path = WEIGHTS_DIR) -> Path:
    """The .xml of the OpenVINO int8 backbone in `bits`, once its files match their record and the record matches
    today's weights, ranges and OpenVINO; else WeightsError saying what to run."""
    stem = ir_stem(bits)
    redo = "run scripts/setup.sh (python -m annotator.io.openvino_ir) to make it again"
    if openvino_version() is None:
        raise WeightsError("OpenVINO is not installed")
    try:
        record = json.loads((weights_dir / f"{stem}.json").read_text())
    except (OSError, ValueError) as exc:
        raise WeightsError(f"{weights_dir / stem}.json cannot be read ({exc.__class__.__name__}); {redo}") from None
    if not isinstance(record, dict) or any(record.get(k) != v for k, v in _record(bits).items()):
        raise WeightsError(f"{weights_dir / stem}.json was made by another conversion or OpenVINO; {redo}")
    for ext in ("bin", "xml"):
        path = weights_dir / f"{stem}.{ext}"
        if not path.is_file() or sha256_file(path) != record.get(f"{ext}_sha256"):
            raise WeightsError(f"{path} is missing or does not match its recorded sha256; {redo}")
    return weights_dir / f"{stem}.xml"


def ensure(weights_dir: Path = WEIGHTS_DIR) -> Path | None:
    """Set-up: the checked .xml for this CPU's activation bits, made when missing or stale; None where OpenVINO is
    not installed (the CPU then keeps PyTorch's int8)."""
    bits = activation_bits()
    if openvino_version() is None:
        return None
    try:
        return checked_ir(bits, weights_dir)
    except WeightsError:
        pass
    print(f"[setup] converting the int8 backbone for OpenVINO into {weights_dir / ir_stem(bits)}.xml", file=sys.stderr)
    export(weights_dir, bits)
    return checked_ir(bits, weights_dir)


if __name__ == "__main__":
    try:
        ensure()
    except (RuntimeError, OSError) as exc:  # optional: set-up goes on, and int8-openvino will say what is missing
        print(f"[setup] OpenVINO's int8 backbone was not made: {exc}", file=sys.stderr)
