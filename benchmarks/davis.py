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


GROUPS_FLAT: tuple[str, ...] = tuple(s for seqs in GROUPS.values() for s in seqs) + EXTRA_NEGATIVES
