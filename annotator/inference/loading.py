"""Decoding a folder for the network: read, hash, decode and resize in DataLoader workers, ahead of the model.

Each image comes back with its content key (for the feature cache), its size, the network-sized pixels
and, only when the CRF needs them, the full-size pixels. Batches keep the order of the paths; an
unreadable file is an item with an error, never an exception.
"""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from annotator.config import InputSize, network_shape
from annotator.inference.feature_cache import content_key
from annotator.io.imageio import ImageReadError, decode_image, read_file_bytes

# Linux forks workers (fast start); elsewhere fork is unavailable or unsafe.
_CONTEXT = "fork" if sys.platform.startswith("linux") else "spawn"


def resize_for_network(image: np.ndarray, size: InputSize) -> np.ndarray:
    """RGB uint8 [h,w,3] (or a float map [h,w]) at the network input `size` (area interpolation): the squashed
    square by default; a (height, width) of the images' own aspect keeps thin and small things (issue 11)."""
    h, w = network_shape(size)
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)


@dataclass
class LoadedImage:
    """One decoded image: its cache key, (height, width) and full pixels (None unless asked for)."""

    path: Path
    key: str = ""
    size: tuple[int, int] = (0, 0)
    image: np.ndarray | None = None
    error: str | None = None


@dataclass
class Batch:
    """Loaded images in path order and the network-sized pixels [N,s,s,3] uint8 of those without error."""

    items: list[LoadedImage]
    pixels: torch.Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.uint8))

    def pin_memory(self) -> Batch:
        """Called by DataLoader(pin_memory=True): page-locked pixels copy to the GPU asynchronously."""
        self.pixels = self.pixels.pin_memory()
        return self


class FolderDataset(Dataset):
    """Images of `paths` for a network of input side `size`; keys depend on `model_tag` too."""

    def __init__(self, paths: Sequence[Path], size: InputSize, model_tag: str, keep_pixels: bool) -> None:
        self.paths, self.size, self.model_tag, self.keep_pixels = list(paths), size, model_tag, keep_pixels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[LoadedImage, np.ndarray | None]:
        path = self.paths[i]
        try:
            data = read_file_bytes(path)
            image = decode_image(data, path)
        except ImageReadError as exc:
            return LoadedImage(path, error=str(exc)), None
        item = LoadedImage(
            path, content_key(data.data, self.model_tag), image.shape[:2], image if self.keep_pixels else None
        )
        return item, resize_for_network(image, self.size)


def collate(samples: list[tuple[LoadedImage, np.ndarray | None]]) -> Batch:
    """Stack the network-sized pixels of the readable images of a batch."""
    smalls = [s for _, s in samples if s is not None]
    pixels = torch.from_numpy(np.stack(smalls)) if smalls else torch.empty(0, dtype=torch.uint8)
    return Batch([item for item, _ in samples], pixels)


def _worker_init(_: int) -> None:
    # One thread per worker: the cores are shared with the model. (cv2.setNumThreads must not be called
    # here: in a forked child it waits forever for the parent's OpenCV pool threads.)
    torch.set_num_threads(1)


def _prefetch(batches: Iterator[Batch], depth: int) -> Iterator[Batch]:
    """Run `batches` in a thread `depth` batches ahead (OpenCV decodes without holding the GIL)."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def fill() -> None:
        try:
            for b in batches:
                while not stop.is_set():
                    try:
                        q.put(b, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(done)
        except BaseException as exc:  # surfaced in the consumer
            q.put(exc)

    t = threading.Thread(target=fill, name="decode", daemon=True)
    t.start()
    try:
        while (b := q.get()) is not done:
            if isinstance(b, BaseException):
                raise b
            yield b
    finally:
        stop.set()


def load_batches(
    paths: Sequence[Path],
    size: InputSize,
    model_tag: str,
    batch_size: int,
    workers: int = 0,
    keep_pixels: bool = False,
    pin_memory: bool = False,
) -> Iterator[Batch]:
    """Batches of `paths` in order, decoded `workers` processes ahead (0: one thread ahead, which is what
    a GUI process uses, since forking it is unsafe)."""
    ds = FolderDataset(paths, size, model_tag, keep_pixels)
    if workers <= 0:
        loader = DataLoader(ds, batch_size=batch_size, collate_fn=collate)
        return _prefetch(iter(loader), depth=2)
    loader = DataLoader(
        ds,
        batch_size=batch_size,
        collate_fn=collate,
        num_workers=workers,
        pin_memory=pin_memory,
        worker_init_fn=_worker_init,
        prefetch_factor=2,
        multiprocessing_context=_CONTEXT,
    )
    return iter(loader)
