"""Command line: `annotator` opens the app; `annotator COMMAND ...` runs headless, one module per command."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from annotator.cli import project, propagate, train
from annotator.cli.common import fail
from annotator.config import MAX_PIXELS, PIXEL_LIMIT_ENV

RUN = {
    "propagate": propagate.run,
    "train": train.run,
    "init": project.run,
    "export": project.run,
    "import": project.run,
}


def _parser() -> argparse.ArgumentParser:
    """Every command's parser, built from its module, each taking --max-pixels."""
    ap = argparse.ArgumentParser(prog="annotator", description="One mask in, a whole folder out.")
    sub = ap.add_subparsers(dest="command", required=True)
    propagate.add_parser(sub)
    train.add_parser(sub)
    project.add_parsers(sub)
    for command in sub.choices.values():
        command.add_argument(
            "--max-pixels",
            type=int,
            default=MAX_PIXELS,
            metavar="N",
            help=f"skip (by name) images of more pixels than this (default {MAX_PIXELS:,})",
        )
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `annotator` and `python -m annotator`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in (*RUN, "-h", "--help"):
        from annotator.app import run_app

        return run_app(argv)
    args = _parser().parse_args(argv)
    if args.max_pixels < 1:
        return fail(f"--max-pixels {args.max_pixels}: must be at least 1")
    os.environ[PIXEL_LIMIT_ENV] = str(args.max_pixels)  # worker processes inherit it
    return RUN[args.command](args)
