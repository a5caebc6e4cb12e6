"""Which images to review, and in what order: the least confident proposals first."""

from __future__ import annotations

from annotator.config import State
from annotator.project.store import Project


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


def proposals_by_score(
    project: Project, class_id: int, at_least: float | None = None, at_most: float | None = None
) -> list[int]:
    """The class's proposals with a mask whose score is >= `at_least` (or <= `at_most`): what a bulk "accept all
    above" / "reject all below" would change, for its preview count and then for the change itself."""
    out = []
    for (image_id, cid), rec in project.records.items():
        if cid != class_id or rec.state != State.PROPOSED or rec.mask is None or rec.score is None:
            continue
        if (at_least is None or rec.score >= at_least) and (at_most is None or rec.score <= at_most):
            out.append(image_id)
    return sorted(out)  # the matches only: sorting every record of every class cost more than the scan


def state_counts(project: Project, class_id: int | None) -> dict[str, int]:
    """How many images are accepted / proposed / rejected / unlabelled for the class, and how many are its
    supports: the counts the image list keeps in view."""
    counts = {s.value: 0 for s in State}
    if class_id is not None:
        for (_, cid), rec in project.records.items():
            if cid == class_id:
                counts[rec.state.value] += 1
    counts[State.UNLABELLED.value] = len(project.images) - sum(v for k, v in counts.items() if k != State.UNLABELLED)
    counts["supports"] = len(project.support_ids(class_id)) if class_id is not None else 0
    return counts
