"""Backbone features cached by image content: in memory up to a byte bound, then on disk (safetensors).

A second propagation over the same folder (a support added, a class changed) then costs only the
matching. Keys come from the file's bytes and the network's settings, so a renamed file hits and an
edited one misses. Writes are atomic; a damaged or foreign cache file is treated as a miss.
"""
from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

Features = dict[str, torch.Tensor]


def content_key(data: bytes | memoryview, model_tag: str) -> str:
    """Cache key of an image file's bytes under one network configuration (backbone, layers, input size)."""
    h = hashlib.blake2b(digest_size=20)
    h.update(model_tag.encode("utf-8"))
    h.update(b"\0")
    h.update(data)
    return h.hexdigest()


def _nbytes(feats: Features) -> int:
    return sum(t.numel() * t.element_size() for t in feats.values())


class FeatureCache:
    """LRU of feature dicts (CPU tensors) bounded by `memory_bytes`; evicted entries live on in `folder`
    (bounded by `disk_bytes`, oldest files removed first) when a folder is given."""

    def __init__(self, folder: Path | str | None = None, memory_bytes: int = 256 << 20, disk_bytes: int = 20 << 30) -> None:
        self.folder = Path(folder) if folder else None
        self.memory_bytes, self.disk_bytes = memory_bytes, disk_bytes
        self._mem: OrderedDict[str, Features] = OrderedDict()
        self._mem_used = 0
        self._disk_used: int | None = None  # measured lazily, on the first write
        self.hits = self.misses = 0

    def _path(self, key: str) -> Path:
        assert self.folder is not None
        return self.folder / key[:2] / f"{key}.safetensors"

    def get(self, key: str) -> Features | None:
        """The cached features of `key`, or None."""
        feats = self._mem.get(key)
        if feats is not None:
            self._mem.move_to_end(key)
            self.hits += 1
            return feats
        if self.folder is not None:
            path = self._path(key)
            try:
                feats = load_file(str(path))
            except (FileNotFoundError, SafetensorError, OSError):
                feats = None
            if feats is not None:
                self.hits += 1
                self._remember(key, feats)
                return feats
        self.misses += 1
        return None

    def put(self, key: str, feats: Features) -> None:
        """Store features (moved to CPU); written to disk as well when the cache has a folder."""
        feats = {k: v.detach().to("cpu").contiguous() for k, v in feats.items()}
        self._remember(key, feats)
        if self.folder is not None:
            self._write(key, feats)

    def _remember(self, key: str, feats: Features) -> None:
        if key in self._mem:
            self._mem_used -= _nbytes(self._mem.pop(key))
        self._mem[key] = feats
        self._mem_used += _nbytes(feats)
        while self._mem_used > self.memory_bytes and len(self._mem) > 1:
            _, old = self._mem.popitem(last=False)
            self._mem_used -= _nbytes(old)

    def _write(self, key: str, feats: Features) -> None:
        path = self._path(key)
        if path.exists():
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            save_file(feats, str(tmp))
            os.replace(tmp, path)
        except OSError:  # a full or read-only disk only costs speed: the features stay in memory
            return
        if self._disk_used is None:
            self._disk_used = sum(p.stat().st_size for p in self.folder.glob("*/*.safetensors"))
        else:
            self._disk_used += path.stat().st_size
        if self._disk_used > self.disk_bytes:
            self._evict_disk()

    def _evict_disk(self) -> None:
        files = sorted(self.folder.glob("*/*.safetensors"), key=lambda p: p.stat().st_mtime)
        used = sum(p.stat().st_size for p in files)
        for p in files:
            if used <= 0.9 * self.disk_bytes:
                break
            used -= p.stat().st_size
            p.unlink(missing_ok=True)
        self._disk_used = used

    @property
    def memory_used(self) -> int:
        return self._mem_used


def default_cache_folder() -> Path:
    """$ANNOTATOR_CACHE_DIR, else the user's cache folder ($XDG_CACHE_HOME or ~/.cache) / annotator/features."""
    if os.environ.get("ANNOTATOR_CACHE_DIR"):
        return Path(os.environ["ANNOTATOR_CACHE_DIR"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "annotator" / "features"
