"""Which images to review, and in what order: the least confident proposals first."""

from __future__ import annotations

from annotator.config import State
from annotator.project import Project


def review_queue(project: Project, class_id: int) -> list[int]:
    """Image ids whose record of the class is a proposal, least confident first (empty ones last)."""
    props = [
        (image_id, rec)
        for (image_id, cid), rec in project.records.items()
        if cid == class_id and rec.state == State.PROPOSED
    ]
    return [i for i, rec in sorted(props, key=lambda t: (t[1].mask is None, t[1].score or 0.0, t[0]))]


def unreviewed(project: Project, class_id: int, include_rejected: bool = False) -> list[int]:
    """What "propagate again" redoes: images whose record of the class is neither accepted nor edited, nor
    rejected (unless `include_rejected`)."""
    skip = {State.ACCEPTED} if include_rejected else {State.ACCEPTED, State.REJECTED}
    return [i for i in sorted(project.images) if (r := project.record(i, class_id)).state not in skip and not r.edited]
