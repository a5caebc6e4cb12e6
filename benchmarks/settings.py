"""`--vary FIELD=VALUE`: a benchmark row of the default learning loop with one LearningConfig field changed, so that a
sweep of a setting is rerun from the command line rather than from scratch rows."""

from __future__ import annotations

import argparse
from dataclasses import fields

from annotator.inference.learning import LearningConfig

TYPES = {f.name: type(getattr(LearningConfig(), f.name)) for f in fields(LearningConfig)}


def vary(spec: str) -> tuple[str, LearningConfig]:
    """(row name, config) of 'FIELD=VALUE', e.g. 'other_scene_l2=3e-3'; argparse's error names a bad field or value."""
    name, sep, text = spec.partition("=")
    kind = TYPES.get(name)
    if not sep or kind is None:
        raise argparse.ArgumentTypeError(f"'{spec}': expected FIELD=VALUE with FIELD one of {', '.join(TYPES)}")
    if kind is bool:
        if text not in ("True", "False"):
            raise argparse.ArgumentTypeError(f"'{spec}': {name} is True or False")
        value = text == "True"
    else:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{spec}': {name} takes a {kind.__name__}") from None
    return f"default with {name}={text}", LearningConfig().changed(**{name: value})


def add_vary(ap: argparse.ArgumentParser) -> None:
    """The `--vary FIELD=VALUE ...` option, the same in every benchmark that takes it: args.vary is [(name, config)]."""
    ap.add_argument(
        "--vary",
        nargs="+",
        type=vary,
        default=[],
        metavar="FIELD=VALUE",
        help="also a row of the default with this LearningConfig field changed (e.g. other_scene_l2=3e-3)",
    )
