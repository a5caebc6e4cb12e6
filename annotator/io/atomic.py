"""Atomic file writes: temp file in the same folder, fsync, rename, fsync the folder.

A crash at any moment leaves either the old file or the new one, never a torn one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_writer(path: Path | str) -> Iterator[IO[bytes]]:
    """A binary file that replaces `path` when the block ends without error (streamed writes of any size);
    on error (disk full, read-only) the old file stays and the temp file is removed."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; a written file gets the usual permissions
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    """Replace `path` with `data` atomically; raises OSError (disk full, read-only) leaving the old file."""
    with atomic_writer(path) as f:
        f.write(data)


def atomic_copy(source: Path | str, path: Path | str) -> None:
    """Replace `path` with a copy of the file `source` atomically (streamed); on error the old file stays and no
    temp file is left."""
    with open(source, "rb") as src, atomic_writer(path) as f:
        shutil.copyfileobj(src, f, 1 << 20)


def compact_json(obj: Any) -> str:
    """`obj` as compact JSON text (no spaces, non-ASCII kept): how every JSON file of a project is written."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def atomic_write_json(path: Path | str, obj: Any) -> None:
    """Serialise `obj` as compact UTF-8 JSON and write it atomically."""
    atomic_write_bytes(path, compact_json(obj).encode("utf-8"))


def unwritable_reason(path: Path | str) -> str | None:
    """Why a file cannot be written at `path` (checked before long work, not after it), or None."""
    path = Path(path)
    if path.is_dir():
        return "is a folder; give a file name"
    if not path.parent.is_dir():
        return f"folder {path.parent} does not exist"
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return "cannot be written (read-only)"
    return None
