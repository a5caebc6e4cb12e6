"""The propagation pipeline: feature cache, decoding workers, streamed COCO, and torchrun sharding."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from annotator.formats.coco import CocoBuilder, CocoSpool, write_coco
from annotator.inference.feature_cache import FeatureCache, content_key
from annotator.inference.propagate import propagate
from tests.synthetic import scene, write_mask, write_rgb

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Seven images with a ball at different places, one without, one corrupt; a support and its mask."""
    root = tmp_path_factory.mktemp("pipe")
    imgs = root / "images"
    imgs.mkdir()
    sup, sup_mask = scene(120, 160, (60, 70), 28, seed=10)
    write_rgb(imgs / "a_support.png", sup)
    write_mask(root / "support_mask.png", sup_mask)
    for i in range(6):
        write_rgb(imgs / f"q{i}.png", scene(110 + 5 * i, 150, (40 + 12 * i, 55), 20 + i, seed=50 + i)[0])
    write_rgb(imgs / "z_empty.png", scene(120, 160, None, 0, seed=30)[0])
    (imgs / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    return root


def _paths(root: Path) -> list[Path]:
    return sorted((root / "images").iterdir())


def test_feature_cache_bounds_memory_spills_to_disk_and_survives_a_damaged_file(tmp_path):
    one = {"features": torch.zeros(4, 8, 8, dtype=torch.float16)}  # 512 bytes
    cache = FeatureCache(tmp_path, memory_bytes=1200, disk_bytes=1 << 20)
    for i in range(4):
        cache.put(f"k{i:02d}", {"features": one["features"] + i})
    assert cache.memory_used <= 1200  # only the two newest stay in memory
    again = FeatureCache(tmp_path, memory_bytes=1200)  # a new session: everything comes from disk
    assert float(again.get("k00")["features"][0, 0, 0]) == 0.0 and float(again.get("k03")["features"][0, 0, 0]) == 3.0
    (tmp_path / "k0" / "k01.safetensors").write_bytes(b"not a safetensors file")
    assert again.get("k01") is None and again.misses == 1
    small = FeatureCache(tmp_path / "bounded", memory_bytes=1 << 20, disk_bytes=2000)
    for i in range(10):
        small.put(f"b{i:02d}", one)
    on_disk = sum(p.stat().st_size for p in (tmp_path / "bounded").glob("*/*.safetensors"))
    assert 0 < on_disk <= 2000


def test_keys_follow_content_and_settings_not_names():
    assert content_key(b"pixels", "panet-vgg16-417") == content_key(b"pixels", "panet-vgg16-417")
    assert content_key(b"pixels", "panet-vgg16-417") != content_key(b"pixelz", "panet-vgg16-417")
    assert content_key(b"pixels", "panet-vgg16-417") != content_key(b"pixels", "panet-vgg16-321")


def _run(predictor, root: Path, workers: int = 0, batch: int = 2) -> list:
    sup = root / "images" / "a_support.png"
    from annotator.io.imageio import read_mask

    return list(propagate(predictor, _paths(root), {sup: read_mask(root / "support_mask.png")}, batch, workers))


def test_second_pass_reads_the_cache_and_gives_the_same_masks(folder, tmp_path):
    from annotator.build import build_model
    from annotator.inference.predictor import Predictor
    from annotator.io.imageio import read_image, read_mask

    pred = Predictor(build_model(), device="cpu", crf=None, cache=FeatureCache(tmp_path))
    pred.set_supports([(read_image(folder / "images" / "a_support.png"), read_mask(folder / "support_mask.png"))])
    first = _run(pred, folder)
    images_encoded = pred.cache.misses
    assert images_encoded == 7  # six queries + the empty one; the support and the broken file are not encoded
    second = _run(pred, folder)
    assert pred.cache.misses == images_encoded and pred.cache.hits == 7  # no backbone work the second time
    assert [r.path for r in first] == [r.path for r in second] == _paths(folder)  # stable order
    for a, b in zip(first, second):
        assert a.error == b.error
        if a.mask is not None:
            assert np.array_equal(a.mask, b.mask) and a.score == b.score
    # A renamed copy hits the cache; the same name with other pixels misses it.
    moved = tmp_path / "moved"
    shutil.copytree(folder, moved)
    (moved / "images" / "q0.png").rename(moved / "images" / "renamed.png")
    write_rgb(moved / "images" / "q1.png", scene(110, 150, (90, 40), 25, seed=99)[0])
    _run(pred, moved)
    assert pred.cache.misses == images_encoded + 1


def test_decoding_workers_give_the_same_results_in_the_same_order(folder, predictor):
    from annotator.io.imageio import read_image, read_mask

    predictor.set_supports([(read_image(folder / "images" / "a_support.png"), read_mask(folder / "support_mask.png"))])
    threaded = _run(predictor, folder, workers=0, batch=3)
    forked = _run(predictor, folder, workers=2, batch=3)
    assert [r.path for r in forked] == [r.path for r in threaded]
    assert "broken.jpg" in (forked[[r.path.name for r in forked].index("broken.jpg")].error or "")
    for a, b in zip(threaded, forked):
        assert (a.mask is None) == (b.mask is None)
        if a.mask is not None:
            assert np.array_equal(a.mask, b.mask)


def test_streamed_coco_equals_the_in_memory_builder(tmp_path):
    rng = np.random.default_rng(0)
    masks = [rng.random((30, 40)) > 0.6, np.zeros((20, 20), bool), rng.random((25, 25)) > 0.3]
    builder = CocoBuilder(categories=[{"id": 1, "name": "x", "supercategory": ""}])
    spools = [tmp_path / "p0.jsonl", tmp_path / "p1.jsonl"]
    a, b = CocoSpool(spools[0]), CocoSpool(spools[1])
    for i, m in enumerate(masks):
        image_id = builder.add_image(f"im{i}.png", *m.shape)
        builder.add_mask(image_id, 1, m, 0.5 + i / 10)
        (a if i < 2 else b).add(f"im{i}.png", *m.shape, m, 0.5 + i / 10)
    a.close(), b.close()
    assert write_coco(tmp_path / "out.json", spools, {"id": 1, "name": "x", "supercategory": ""}, {"v": 1}) == (3, 2)
    got = json.loads((tmp_path / "out.json").read_text())
    assert got == builder.to_dict({"v": 1})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_with_two_gloo_processes_writes_the_single_process_coco(folder, tmp_path):
    args = [
        "propagate",
        "--images",
        str(folder / "images"),
        "--label",
        "ball",
        "--no-crf",
        "--device",
        "cpu",
        "--support",
        f"{folder / 'images' / 'a_support.png'}:{folder / 'support_mask.png'}",
        "--batch-size",
        "2",
        "--no-feature-cache",
        "--workers",
        "1",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = subprocess.run(
        [sys.executable, "-m", "annotator", *args, "--out", str(tmp_path / "one.json")],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=600,
    )
    assert single.returncode == 0, single.stderr
    multi = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            f"--master_port={_free_port()}",
            "-m",
            "annotator",
            *args,
            "--out",
            str(tmp_path / "two.json"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=600,
    )
    assert multi.returncode == 0, multi.stderr
    assert "2 processes" in multi.stdout
    one, two = (json.loads((tmp_path / f).read_text()) for f in ("one.json", "two.json"))
    assert len(one["images"]) == 8 and len(one["annotations"]) >= 6
    assert one == two
    assert not list(tmp_path.glob(".*.jsonl"))  # the per-process spools are removed
