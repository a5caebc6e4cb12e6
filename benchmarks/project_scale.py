"""Project scale: time to open a 10,000-image project, and memory against the number of masks.

Builds projects of N images (tiny real PNGs) with M masks each way, then opens each in a fresh
process and reports the open time and the peak RSS of that process. Masks live on disk and are
loaded on demand, so RSS should not grow with M beyond the small per-record index.

Run: .venv/bin/python -m benchmarks.project_scale [--images 10000] [--masks 1000 10000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from annotator.project.store import Project

OPEN = """
import json, resource, sys, time
t0 = time.perf_counter()
from annotator.project.store import Project
t1 = time.perf_counter()
p = Project.open(sys.argv[1])
t2 = time.perf_counter()
m = p.mask(sorted(p.images)[0], 1)
print(json.dumps({"import_s": t1 - t0, "open_s": t2 - t1, "images": len(p.images), "records": len(p.records),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def build(root: Path, n_images: int, n_masks: int) -> Path:
    imgs = root / "images"
    imgs.mkdir(parents=True)
    ok, png = cv2.imencode(".png", np.zeros((48, 64, 3), np.uint8))
    for i in range(n_images):
        (imgs / f"{i:06d}.png").write_bytes(png.tobytes())
    proj = Project.create(root / "proj", imgs)
    proj.add_class("thing")
    rng = np.random.default_rng(0)
    ids = sorted(proj.images)
    for k in range(n_masks):
        m = np.zeros((48, 64), np.uint8)
        y, x = rng.integers(0, 40), rng.integers(0, 56)
        m[y : y + 8, x : x + 8] = 1
        proj.set_proposal(ids[k % len(ids)], 1, m, float(rng.random()), {"model": "panet"})
    proj.save()
    return root / "proj"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=10000)
    ap.add_argument("--masks", type=int, nargs="+", default=[1000, 10000])
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n_masks in args.masks:
            t0 = time.perf_counter()
            proj = build(Path(tmp) / f"m{n_masks}", args.images, n_masks)
            build_s = time.perf_counter() - t0
            out = subprocess.run([sys.executable, "-c", OPEN, str(proj)], capture_output=True, text=True, check=True)
            r = json.loads(out.stdout)
            size_mb = (proj / "project.json").stat().st_size / 1e6
            rows.append((n_masks, build_s, r, size_mb))
    print(f"\nProject scale: {args.images} images\n")
    print("| masks | build s | open s | python+imports s | peak RSS MB | project.json MB |")
    print("|---|---|---|---|---|---|")
    for n_masks, build_s, r, size_mb in rows:
        print(
            f"| {n_masks} | {build_s:.1f} | {r['open_s']:.3f} | {r['import_s']:.2f} | {r['rss_mb']:.0f} "
            f"| {size_mb:.2f} |"
        )
    if len(rows) > 1:
        print(f"\nRSS ratio {rows[-1][0]} vs {rows[0][0]} masks: {rows[-1][2]['rss_mb'] / rows[0][2]['rss_mb']:.2f}")


if __name__ == "__main__":
    main()
