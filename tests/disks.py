"""A disk that is really full, for the reliability tests and benchmark: a small tmpfs filled to the last byte."""

from __future__ import annotations

import errno
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class NoSmallDisk(RuntimeError):
    """A tmpfs cannot be mounted here (it needs root); the message says why."""


@contextmanager
def small_disk(where: Path, kib: int = 512) -> Iterator[Path]:
    """A `kib` KiB tmpfs mounted at the empty folder `where` (made if missing) while the block runs."""
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={kib}k,mode=0755", "tmpfs", str(where)], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise NoSmallDisk(f"cannot mount a small tmpfs here ({done.stderr.strip() or 'mount failed'}); needs root")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(disk: Path) -> Path:
    """Write a file until the kernel says the disk is full; returns it (delete it to free the space)."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
    return filler


def leftovers(folder: Path) -> list[Path]:
    """Temporary files an interrupted write would leave behind."""
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp") or ".part" in p.name]
