"""The offline VGG-16: conversion layout, the pickle guard, the recorded sha256 and torchvision drop-ins."""

from __future__ import annotations

import io
import os
import pickle

import numpy as np
import pytest
import torch
from torchvision.models import vgg16

from annotator.io.setup_weights import VGG16_CONV_INDICES, _NumpyOnlyUnpickler, jax_vgg16_to_torchvision
from annotator.io.weights import (
    VGG16_FILE,
    VGG16_SHA256,
    WEIGHTS_DIR,
    WeightsError,
    architecture_of,
    load_backbone_state,
    sha256_file,
)
from annotator.modeling.backbones import VGG16OS8, build_backbone


def test_jax_layout_maps_to_torchvision_conv_indices():
    rng = np.random.default_rng(0)
    chans = [3, 64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    ckpt = {
        "VGG16_0": {
            f"Conv_{i}": {
                "kernel": rng.standard_normal((3, 3, chans[i], chans[i + 1])).astype(np.float32),
                "bias": rng.standard_normal(chans[i + 1]).astype(np.float32),
            }
            for i in range(13)
        }
    }
    out = jax_vgg16_to_torchvision(ckpt)
    ref = vgg16(weights=None).features.state_dict()
    assert set(out) == {f"features.{k}" for k in ref}
    for i, idx in enumerate(VGG16_CONV_INDICES):
        k = ckpt["VGG16_0"][f"Conv_{i}"]["kernel"]
        w = out[f"features.{idx}.weight"]
        assert w.shape == tuple(ref[f"{idx}.weight"].shape)
        # torch weight[o, i, y, x] is flax kernel[y, x, i, o]: both are cross-correlations.
        assert w[5 % w.shape[0], 1, 2, 0] == k[2, 0, 1, 5 % w.shape[0]]


def test_unpickler_refuses_anything_but_numpy_arrays():
    evil = pickle.dumps(os.system)
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        _NumpyOnlyUnpickler(io.BytesIO(evil)).load()
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert (_NumpyOnlyUnpickler(io.BytesIO(pickle.dumps({"a": arr}))).load()["a"] == arr).all()


def test_prepared_vgg16_matches_recorded_sha_and_loads():
    path = WEIGHTS_DIR / VGG16_FILE
    assert path.exists(), "scripts/setup.sh prepares this file; the test command runs it first"
    assert sha256_file(path) == VGG16_SHA256
    state = load_backbone_state()
    assert architecture_of(state) == "vgg16"
    net = build_backbone("vgg16", state)
    assert torch.equal(net.features[0].weight, state["features.0.weight"])


def test_tampered_vgg16_is_refused(tmp_path):
    (tmp_path / VGG16_FILE).write_bytes((WEIGHTS_DIR / VGG16_FILE).read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(WeightsError, match="sha256"):
        load_backbone_state("vgg16_imagenet", tmp_path)


def test_missing_weights_name_lists_what_exists(tmp_path):
    (tmp_path / "mine.safetensors").write_bytes(b"")
    with pytest.raises(WeightsError, match="available: mine"):
        load_backbone_state("other", tmp_path)


def test_torchvision_pth_dropped_in_is_converted_once_and_picked_by_name(tmp_path):
    net = VGG16OS8()
    full = {f"features.{k}": v for k, v in vgg16(weights=None).features.state_dict().items()}
    full["classifier.0.weight"] = torch.zeros(2, 2)
    torch.save(full, tmp_path / "my_vgg.pth")
    state = load_backbone_state("my_vgg", tmp_path)
    assert (tmp_path / "my_vgg.safetensors").exists()
    net.load_torchvision(state)
    assert torch.equal(net.features[28].weight, full["features.28.weight"])


def test_unknown_architecture_is_refused(tmp_path):
    torch.save({"foo.weight": torch.zeros(1)}, tmp_path / "odd.pth")
    with pytest.raises(WeightsError, match="neither"):
        load_backbone_state("odd", tmp_path)
