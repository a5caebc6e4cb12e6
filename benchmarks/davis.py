"""The shared DAVIS 2016 development data: where it is, its sequences and the README's class groups."""

from __future__ import annotations

import os
from pathlib import Path

DAVIS = Path(os.environ.get("ANNOTATOR_DAVIS", Path(__file__).resolve().parents[2] / "shared" / "data" / "davis2016"))
ABSENT = f"DAVIS development data not found at {DAVIS} (set ANNOTATOR_DAVIS to its folder)"

# From the data's README: one class per group; the other sequences are compound objects (negatives only).
GROUPS: dict[str, tuple[str, ...]] = {
    "car": ("car-roundabout", "car-shadow", "drift-chicane", "drift-straight"),
    "dog": ("dog", "libby"),
    "person": ("breakdance", "dance-twirl", "parkour"),
    "blackswan": ("blackswan",),
    "camel": ("camel",),
    "cows": ("cows",),
    "goat": ("goat",),
}
EXTRA_NEGATIVES = (
    "bmx-trees",
    "horsejump-high",
    "kite-surf",
    "motocross-jump",
    "paragliding-launch",
    "scooter-black",
    "soapbox",
)


def available() -> bool:
    """True when the data folder is there."""
    return (DAVIS / "JPEGImages").is_dir() and (DAVIS / "Annotations").is_dir()


def frames(sequence: str) -> list[tuple[Path, Path]]:
    """(image, mask) paths of one sequence, in frame order."""
    jpgs = sorted((DAVIS / "JPEGImages" / sequence).glob("*.jpg"))
    return [(j, DAVIS / "Annotations" / sequence / f"{j.stem}.png") for j in jpgs]


def group_of(sequence: str) -> str | None:
    """The class group a sequence belongs to, or None for the compound (negative-only) ones."""
    return next((g for g, seqs in GROUPS.items() if sequence in seqs), None)


# Classes of the groups that a sequence shows besides its annotated object, seen by looking at its frames
# (2026-12-06): riders, spectators and passers-by are people, and scooter-black's street has parked cars.
# Its frames are not free of those classes: no folder of such a class takes them as class-free frames.
ALSO_SHOWS: dict[str, frozenset[str]] = {
    **{s: frozenset({"person"}) for s in EXTRA_NEGATIVES + GROUPS["car"]},
    "scooter-black": frozenset({"person", "car"}),
}


def free_of(sequence: str, cls: str) -> bool:
    """Whether no frame of the sequence shows the class: neither its annotated object nor anything in ALSO_SHOWS."""
    return group_of(sequence) != cls and cls not in ALSO_SHOWS.get(sequence, frozenset())


GROUPS_FLAT: tuple[str, ...] = tuple(s for seqs in GROUPS.values() for s in seqs) + EXTRA_NEGATIVES
