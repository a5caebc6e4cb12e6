"""Earlier generations of a project's index, so that a recovery never rolls back to nothing: the previous
save (`project.json.bak`), the two saves before it, and the newest earlier save of each of the last 14
days (under `backups/`). The index itself is only ever replaced atomically, never moved away. Copies are
hard links to index files already replaced, so keeping them costs no writes, and no copy shares its file
with the live index (which a person might edit in place)."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from annotator.config import PROJECT_BACKUP, PROJECT_INDEX

HISTORY = "backups"
OLDER = 2  # generations kept besides project.json.bak
DAYS = 14


def _older(folder: Path, k: int) -> Path:
    return folder / HISTORY / f"{PROJECT_INDEX}.{k}"


def _link(src: Path, dst: Path) -> None:
    """Make `dst` hold `src`'s current content (a hard link where the file system has them), atomically."""
    tmp = dst.with_name(f".{dst.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def keep_previous(folder: Path) -> None:
    """Before the index is replaced: shift the generations back by one, keep the index as the previous save
    and as today's copy, and drop the days beyond the last DAYS."""
    main, hist = folder / PROJECT_INDEX, folder / HISTORY
    if not main.exists():
        return
    hist.mkdir(exist_ok=True)
    for k in range(OLDER + 1, 2, -1):
        if _older(folder, k - 1).exists():
            os.replace(_older(folder, k - 1), _older(folder, k))
    if (folder / PROJECT_BACKUP).exists():
        os.replace(folder / PROJECT_BACKUP, _older(folder, 2))
    _link(main, folder / PROJECT_BACKUP)
    _link(main, hist / f"{time.strftime('%Y-%m-%d')}.json")
    for old in sorted(hist.glob("????-??-??.json"), reverse=True)[DAYS:]:
        old.unlink(missing_ok=True)


def generations(folder: Path) -> list[Path]:
    """The kept copies of the index that exist, newest first."""
    copies = [folder / PROJECT_BACKUP] + [_older(folder, k) for k in range(2, OLDER + 2)]
    copies += sorted((folder / HISTORY).glob("????-??-??.json"), reverse=True)
    return [p for p in copies if p.is_file()]


def referenced_masks(folder: Path) -> set[str]:
    """Every mask file name a kept copy of the index refers to (those files must not be collected)."""
    names: set[str] = set()
    for copy in generations(folder):
        try:
            records = json.loads(copy.read_text("utf-8")).get("records", [])
            names.update(r["mask"] for r in records if isinstance(r, dict) and isinstance(r.get("mask"), str))
        except (OSError, ValueError, AttributeError):
            continue  # a damaged copy refers to nothing usable
    return names
