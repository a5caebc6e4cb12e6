"""kill -9 at 20 random points of a stream of saves, and of imports: the project still opens, with every
saved mask intact."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from annotator.project.store import Project
from tests.synthetic import scene, write_rgb

CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    from annotator.project.store import Project
    proj = Project.open(sys.argv[1])
    ids = sorted(proj.images)
    i = int(sys.argv[2])
    while True:
        image = ids[i % len(ids)]
        m = np.zeros((48, 64), np.uint8)
        m.flat[: i + 1] = 1  # mask i has i + 1 pixels: tells which save made it
        proj.set_mask(image, 1, m)
        proj.save()
        print(image, i, flush=True)
        i += 1
""")


IMPORTER = textwrap.dedent("""
    import contextlib, io, json, sys
    import numpy as np
    from annotator.cli import main
    from annotator.formats.coco import encode_rle
    from annotator.project.store import Project
    with Project.open(sys.argv[1], read_only=True) as p:
        files = [p.images[i].file for i in sorted(p.images)]
    i = int(sys.argv[2])
    while True:
        image = i % len(files)
        m = np.zeros((48, 64), bool)
        m.flat[: i + 1] = True  # import i has i + 1 pixels
        coco = {"images": [{"id": 1, "file_name": files[image], "height": 48, "width": 64}],
                "categories": [{"id": 1, "name": "x"}],
                "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": encode_rle(m)}]}
        path = sys.argv[3] + f"/{i}.json"
        with open(path, "w") as f:
            json.dump(coco, f)
        with contextlib.redirect_stdout(io.StringIO()):
            assert main(["import", sys.argv[1], path, "--overwrite"]) == 0
        print(image + 1, i, flush=True)
        i += 1
""")


def _pattern_count(mask: np.ndarray) -> int:
    n = int(mask.sum())
    assert mask.flat[:n].all(), "a torn mask: pixels are not the prefix a save wrote"
    return n


@pytest.mark.parametrize("writer", ["saves", "imports"])
def test_kill_minus_nine_mid_write_loses_nothing_saved(tmp_path, writer):
    imgs = tmp_path / "images"
    imgs.mkdir()
    for k in range(4):
        write_rgb(imgs / f"{k}.png", scene(48, 64, None, 0, seed=k)[0])
    proj = Project.create(tmp_path / "proj", imgs)
    proj.add_class("x")
    proj.save()
    proj.close()  # the child is the writer now
    rng = random.Random(0)
    repo = Path(__file__).resolve().parents[1]
    start = 0
    for _ in range(20):
        args = (
            [CHILD, str(proj.folder), str(start)]
            if writer == "saves"
            else [IMPORTER, str(proj.folder), str(start), str(tmp_path)]
        )
        child = subprocess.Popen(
            [sys.executable, "-c", *args],
            stdout=subprocess.PIPE,
            text=True,
            cwd=repo,
            env={**os.environ, "PYTHONPATH": str(repo)},
        )
        confirmed: dict[int, int] = {}
        deadline = time.time() + 60
        while len(confirmed) < 4:  # every image written at least once this round
            line = child.stdout.readline()
            assert line, "the child died by itself"
            image, i = map(int, line.split())
            confirmed[image] = i
            assert time.time() < deadline
        time.sleep(rng.uniform(0.0, 0.3))  # land somewhere inside a later write
        child.send_signal(signal.SIGKILL)
        rest = child.stdout.read()  # writes completed before the kill landed
        for line in rest.split("\n")[:-1]:  # whole lines only: the kill may tear the last one
            image, i = map(int, line.split())
            confirmed[image] = i
        child.wait()
        again = Project.open(proj.folder)
        if writer == "saves":  # (an importer holds the lock only while importing)
            assert "stale lock" in again.report.lock_note  # the killed writer's lock is broken, and said so
        for image, i in confirmed.items():
            assert again.record(image, 1).state == "accepted"
            n = _pattern_count(again.mask(image, 1))
            # the mask on disk is the confirmed one, or a later write that completed but was not yet printed
            assert n >= i + 1, (image, i, n)
        start = max(confirmed.values()) + 1
        again.close()
