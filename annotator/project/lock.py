"""One writer per folder: a lock file holding the writer's pid, host and start time, created atomically.

A lock left by a process that died on this host is broken (and the caller told), as is one whose pid now
belongs to a process started later (a reused pid); a live one, or one from another host (whose process
cannot be checked), refuses the second writer. Within one process the lock is
re-entrant, so a tool may open the folder it already holds.
"""

from __future__ import annotations

import atexit
import json
import os
import socket
import threading
from pathlib import Path

_HELD: dict[Path, int] = {}  # lock path -> how many holders in this process
_GUARD = threading.Lock()


class LockHeld(RuntimeError):
    """Another live process (or one on another host) holds the lock."""

    def __init__(self, path: Path, pid: int | None, host: str | None) -> None:
        self.path, self.pid, self.host = path, pid, host
        where = f"process {pid}" + ("" if host == socket.gethostname() else f" on {host}")
        super().__init__(f"{where} (if it is not running, delete {path})")


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def started(pid: int) -> str | None:
    """When the process started (clock ticks since boot, from /proc on Linux; None elsewhere or if gone): a pid
    reused by a later process has another start time."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _owner(path: Path) -> tuple[int | None, str | None, str | None]:
    """(pid, host, start time) of the lock's holder; Nones when the file is torn or unreadable."""
    try:
        info = json.loads(path.read_text("utf-8"))
        return int(info["pid"]), str(info["host"]), info.get("started")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None, None, None  # torn or unreadable: written by a process killed while creating it


def _running(pid: int, since: str | None) -> bool:
    """Whether the holder `pid` (started at `since`, where known) still runs on this host."""
    if not pid_alive(pid):
        return False
    now = started(pid)
    return since is None or now is None or now == since


def _create(tmp: Path, path: Path, content: str) -> None:
    """Create `path` holding `content`, failing with FileExistsError if it exists."""
    try:
        os.link(tmp, path)  # creation and content in one step
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(content)


def acquire(path: Path) -> str | None:
    """Take the lock at `path`; returns a note when a dead writer's lock was broken. Raises LockHeld."""
    path = Path(path).absolute()
    with _GUARD:
        if path in _HELD:
            _HELD[path] += 1
            return None
        note = None
        me = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": started(os.getpid())})
        tmp = path.with_name(f".{path.name}.{os.getpid()}.new")
        tmp.write_text(me, "utf-8")
        try:
            for _ in range(3):
                try:
                    _create(tmp, path, me)
                    break
                except FileExistsError:
                    pid, host, since = _owner(path)
                    if (pid, host) == (os.getpid(), socket.gethostname()):
                        break  # this process's own lock, under another name (the folder was moved)
                    if pid is not None and (host != socket.gethostname() or _running(pid, since)):
                        raise LockHeld(path, pid, host) from None
                    who = f"process {pid}" if pid else "a process killed while taking it"
                    note = f"broke the stale lock of {who}, which is no longer running"
                    path.unlink(missing_ok=True)
            else:
                raise LockHeld(path, *_owner(path)[:2])
        finally:
            tmp.unlink(missing_ok=True)
        _HELD[path] = 1
        return note


def release(path: Path) -> None:
    """Give back one hold of the lock; the file goes when the last holder in this process releases it."""
    path = Path(path).absolute()
    with _GUARD:
        if path not in _HELD:
            return
        _HELD[path] -= 1
        if _HELD[path] == 0:
            del _HELD[path]
            if _owner(path)[0] == os.getpid():
                path.unlink(missing_ok=True)


@atexit.register
def _release_all() -> None:
    for path in list(_HELD):
        _HELD[path] = 1
        release(path)
