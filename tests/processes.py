"""Other processes the tests and the reliability benchmark need: a second writer holding a project open."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HOLDER = (
    "import sys, time\nfrom annotator.project.store import Project\np = Project.open(sys.argv[1])\n"
    "print('open', flush=True)\ntime.sleep(60)\n"
)


@contextmanager
def held_open(project: Path) -> Iterator[subprocess.Popen]:
    """Another process that has opened `project` for writing (and so holds its lock) until the block ends,
    when it is killed, as a crash would end it."""
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(project)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert child.stdout.readline().strip() == "open", "the holder could not open the project"
        yield child
    finally:
        child.kill()
        child.wait()
