"""The app at scale: brush latency on a 4000x3000 photo, opening a 10,000-image folder, and memory while
propagating over 2,000 images.

- brush: one dab = the stroke segment drawn into the mask and overlay plus the partial repaint Qt
  then performs (the offscreen platform still rasterises); median and 95th percentile over a
  200-segment stroke, at fit-to-window zoom.
- open: a fresh 10,000-image folder (tiny PNGs) through MainWindow.open_path (the project is created,
  the strip model built, the first image shown), then opened again (the project exists).
- review: 200 proposals (640x480 photos, scored masks) reviewed with simulated keys, one by one on the canvas
  (R, then Enter or Backspace per image) against the review grid (Ctrl+G; Space marks every 10th to reject,
  Enter accepts each page of 24 once its thumbnails have arrived); the longest GUI frame is the longest key's
  handling plus the repaint it asks for.
- memory: propagation into a project through the same function the app's worker runs, RSS sampled
  every 100 images. `--input-size` keeps the network small so that 2,000 images take minutes on a CPU;
  what is measured is whether memory grows with the count, which does not depend on the input size.

Run: QT_QPA_PLATFORM=offscreen .venv/bin/python -m benchmarks.app_responsiveness
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from PySide6.QtCore import QSettings  # noqa: E402
from PySide6.QtGui import QColor  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def brush_latency(app: QApplication) -> tuple[float, float, float]:
    from annotator.app.canvas import Canvas

    canvas = Canvas()
    canvas.resize(1600, 1000)
    canvas.show()
    rng = np.random.default_rng(0)
    canvas.set_image(rng.integers(0, 255, (3000, 4000, 3), dtype=np.uint8), None, QColor("#e6194b"))
    canvas.set_brush(40)
    app.processEvents()
    canvas._begin()
    times = []
    x, y = 500, 500
    for i in range(200):
        nx, ny = x + 15, y + int(10 * np.sin(i / 5))
        t0 = time.perf_counter()
        canvas._dab((x, y), (nx, ny))  # what a mouse-move does; it schedules a repaint of the dab's rectangle
        app.processEvents()  # ...which Qt performs here
        times.append(1000 * (time.perf_counter() - t0))
        x, y = nx, ny
    t0 = time.perf_counter()
    canvas._commit()
    app.processEvents()
    commit_ms = 1000 * (time.perf_counter() - t0)
    canvas.close()
    times.sort()
    return statistics.median(times), times[int(0.95 * len(times))], commit_ms


def make_folder(root: Path, n: int, size=(48, 64)) -> Path:
    root.mkdir(parents=True)
    ok, png = cv2.imencode(".png", np.full((*size, 3), 90, np.uint8))
    for i in range(n):
        (root / f"{i:06d}.png").write_bytes(png.tobytes())
    return root


def open_folder(app: QApplication, root: Path, n: int) -> tuple[float, float]:
    from annotator.app.main_window import MainWindow

    folder = make_folder(root / "images", n)
    qs = QSettings(str(root / "s.ini"), QSettings.Format.IniFormat)
    out = []
    for _ in range(2):
        t0 = time.perf_counter()
        win = MainWindow(folder, settings=qs)
        win.show()
        app.processEvents()
        out.append(time.perf_counter() - t0)
        assert win.images.rowCount() == n
        win.close()
        app.processEvents()
    return out[0], out[1]


def review_folder(root: Path, n: int) -> tuple[Path, list[float]]:
    """n 640x480 photos, each with a proposed disc of its colour; returns the folder and the scores given."""
    from annotator.project.store import Project

    imgs = root / "images"
    imgs.mkdir(parents=True)
    rng = np.random.default_rng(2)
    for i in range(n):
        img = cv2.GaussianBlur(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8), (0, 0), 4)
        cv2.imwrite(str(imgs / f"{i:04d}.jpg"), img)
    proj = Project.create(root / "images.annotator", imgs)
    cid = proj.add_class("disc").id
    scores = rng.uniform(0.3, 1.0, n).round(3).tolist()
    for image_id, score in zip(sorted(proj.images), scores):
        mask = np.zeros((480, 640), np.uint8)
        cv2.circle(mask, (int(rng.integers(100, 540)), int(rng.integers(100, 380))), 80, 1, -1)
        proj.set_proposal(image_id, cid, mask.astype(bool), score, {})
    proj.save()
    proj.close()
    return imgs, scores


def review_once(app: QApplication, root: Path, n: int, way: str) -> tuple[float, float, int]:
    """Seconds to review n proposals `way` ("one by one" or "grid"), the longest frame (ms), the keys pressed."""
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    from annotator.app.main_window import MainWindow
    from annotator.config import State

    imgs, _ = review_folder(root / way.replace(" ", "_"), n)
    win = MainWindow(imgs, settings=QSettings(str(root / f"{way}.ini"), QSettings.Format.IniFormat))
    win.resize(1600, 1000)
    win.show()
    app.processEvents()
    frames: list[float] = []

    def press(key, mods=Qt.KeyboardModifier.NoModifier) -> None:
        t0 = time.perf_counter()
        QTest.keyClick(win, key, mods)
        app.processEvents()
        frames.append(time.perf_counter() - t0)

    start = time.perf_counter()
    if way == "one by one":
        press(Qt.Key.Key_R)
        for k in range(n):
            press(Qt.Key.Key_Backspace if k % 10 == 0 else Qt.Key.Key_Return)
    else:
        press(Qt.Key.Key_G, Qt.KeyboardModifier.ControlModifier)
        grid = win.grid
        while grid.model.ids:
            while not all(win.thumbnails.cached(i) for i in grid.model.ids):  # the reviewer looks at the page
                app.processEvents()
                time.sleep(0.002)
            for k, image_id in enumerate(list(grid.model.ids)):
                if image_id % 10 == 0:
                    grid.view.setCurrentIndex(grid.model.index(k))
                    press(Qt.Key.Key_Space)
            press(Qt.Key.Key_Return)
    took = time.perf_counter() - start
    win.session.flush()
    left = sum(win.project.record(i, win.class_id).state == State.PROPOSED for i in win.project.images)
    assert left == 0, f"{way}: {left} left unreviewed"
    win.close()
    app.processEvents()
    return took, 1000 * max(frames), len(frames)


def event_loop_gaps(app: QApplication, root: Path, n: int) -> tuple[float, float, str]:
    """Longest and 99th-percentile gap between 10 ms timer ticks of the GUI thread while the app's
    worker propagates (CRF on) over n 854x480 images."""
    from PySide6.QtCore import QElapsedTimer, QTimer

    from annotator.app.dialogs import ModelSettings
    from annotator.app.main_window import MainWindow

    imgs = root / "gaps"
    imgs.mkdir()
    rng = np.random.default_rng(1)
    for i in range(n):
        img = cv2.GaussianBlur(rng.integers(0, 255, (480, 854, 3), dtype=np.uint8), (0, 0), 3)
        cv2.circle(img, (int(rng.integers(200, 650)), int(rng.integers(150, 330))), 90, (30, 30, 220), -1)
        cv2.imwrite(str(imgs / f"{i:03d}.jpg"), img)
    qs = QSettings(str(root / "gaps.ini"), QSettings.Format.IniFormat)
    ModelSettings(crf=True, device="cpu").save(qs)
    win = MainWindow(imgs, settings=qs)
    win.show()
    app.processEvents()
    rgb = win.canvas.rgb
    win.canvas.replace_mask((rgb[..., 0] > 200) & (rgb[..., 1] < 60) & (rgb[..., 2] < 60))
    win.add_support()
    win.propagate("all")
    clock, gaps = QElapsedTimer(), []
    clock.start()
    timer = QTimer()
    timer.setInterval(10)

    def tick() -> None:
        gaps.append(clock.restart())

    timer.timeout.connect(tick)
    timer.start()
    while win.worker is not None:
        app.processEvents()
        time.sleep(0.002)
    timer.stop()
    device = win.device_label.text()
    win.close()
    gaps.sort()
    return float(gaps[-1]), float(gaps[int(0.99 * (len(gaps) - 1))]), device


def propagation_memory(root: Path, n: int, input_size: int) -> list[tuple[int, float]]:
    from annotator.build import build_model
    from annotator.inference.predictor import Predictor
    from annotator.project.store import Project
    from annotator.project.workflows import propagate_into_project

    imgs = root / "prop"
    imgs.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        img = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
        cv2.circle(img, (int(rng.integers(30, 130)), int(rng.integers(30, 90))), 20, (30, 30, 220), -1)
        cv2.imwrite(str(imgs / f"{i:05d}.jpg"), img)
    proj = Project.create(root / "prop.annotator", imgs)
    cid = proj.add_class("ball").id
    first = min(proj.images)
    from annotator.io.imageio import read_image

    sup = read_image(proj.image_path(first))
    mask = (sup[..., 0] > 200) & (sup[..., 1] < 60) & (sup[..., 2] < 60)  # the red ball
    proj.set_mask(first, cid, mask)
    proj.add_support(first, cid)
    predictor = Predictor(build_model(), device="cpu", input_size=input_size, crf=None, batch_size=1)
    samples: list[tuple[int, float]] = [(0, rss_mb())]

    count = 0

    def on_result(image_id, res, stored) -> None:
        nonlocal count
        count += 1
        if count % 100 == 0:
            samples.append((count, rss_mb()))
            proj.save()

    propagate_into_project(proj, cid, predictor, sorted(proj.images), on_result=on_result)
    proj.save()
    return samples


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--open-images", type=int, default=10000)
    ap.add_argument("--propagate-images", type=int, default=2000)
    ap.add_argument("--input-size", type=int, default=97)
    ap.add_argument("--gap-images", type=int, default=12)
    ap.add_argument("--review-images", type=int, default=200)
    ap.add_argument("--only-review", action="store_true", help="measure the review rows only")
    args = ap.parse_args()
    app = QApplication.instance() or QApplication([])
    with tempfile.TemporaryDirectory() as tmp:
        review = {way: review_once(app, Path(tmp), args.review_images, way) for way in ("one by one", "grid")}
    print("\n| review of proposals | seconds | longest frame | keys pressed |")
    print("|---|---|---|---|")
    for way, (took, longest, keys) in review.items():
        print(f"| {args.review_images} proposals, {way} | {took:.1f} s | {longest:.0f} ms | {keys} |")
    if args.only_review:
        return
    med, p95, commit = brush_latency(app)
    with tempfile.TemporaryDirectory() as tmp:
        first, again = open_folder(app, Path(tmp) / "open", args.open_images)
        longest, p99, device = event_loop_gaps(app, Path(tmp), args.gap_images)
        samples = propagation_memory(Path(tmp), args.propagate_images, args.input_size)
    print("\n| measurement | value | target |")
    print("|---|---|---|")
    print(f"| brush dab on 4000x3000, median | {med:.1f} ms | < 16 ms |")
    print(f"| brush dab on 4000x3000, 95th percentile | {p95:.1f} ms | < 16 ms |")
    print(f"| end of stroke (undo record + outline) | {commit:.1f} ms | |")
    print(f"| open a new {args.open_images}-image folder | {first:.2f} s | < 2 s |")
    print(f"| open it again | {again:.2f} s | < 2 s |")
    print(
        f"| longest GUI frame while propagating {args.gap_images} images, CRF on ({device}) | {longest:.0f} ms "
        f"| < 100 ms |"
    )
    print(f"| 99th-percentile GUI frame while propagating | {p99:.0f} ms | < 100 ms |")
    at = dict(samples)
    k1 = min(200, max(k for k, _ in samples))
    last = max(k for k, _ in samples)
    print(
        f"| RSS after {k1} / {last} images propagated | {at[k1]:.0f} / {at[last]:.0f} MB "
        f"(ratio {at[last] / at[k1]:.2f}) | flat |"
    )
    print(f"| peak RSS sample over the run | {max(v for _, v in samples):.0f} MB | |")


if __name__ == "__main__":
    main()
