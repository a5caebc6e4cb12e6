"""One person's editing session on a project, without Qt: the current image and class, the review queue,
and the one writer thread every change of the project goes through (the GUI thread never waits on a
disk write, and no change overtakes another). The window shows a Session; tests drive it directly."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

from annotator.config import State
from annotator.project.review import review_queue
from annotator.project.store import AutoSaver, MaskRecord, Project, ProjectError


def project_dir_for(folder: Path, data_dir: Path) -> Path:
    """Where the project of an image folder lives: `FOLDER.annotator` beside it, or under the user's `data_dir`
    (the app's data location) when that place is not writable. The image folder itself is never written to."""
    folder = folder.resolve()
    beside = folder.parent / f"{folder.name}.annotator"
    if beside.exists() or os.access(folder.parent, os.W_OK):
        return beside
    return data_dir / "projects" / f"{folder.name}-{hashlib.sha1(str(folder).encode()).hexdigest()[:8]}"


def open_or_create(path: Path, data_dir: Path, read_only: bool = False) -> Project:
    """A project folder opens as it is (from its last good copy if the index is gone); an image folder opens
    its project at `project_dir_for(folder, data_dir)`, which is created on first use. The image folder is never
    written. ProjectLockedError when another process writes it (then `read_only` opens it all the same)."""
    if Project.exists(path):
        return Project.open(path, read_only=read_only)
    pdir = project_dir_for(path, data_dir)
    if Project.exists(pdir) or read_only:
        return Project.open(pdir, read_only=read_only)
    return Project.create(pdir, path)


class Session:
    """The project being edited, what is shown of it, and its writer; `on_error(message)` hears of a write or
    autosave that failed (from the writer's or the saver's thread)."""

    def __init__(
        self, project: Project, on_error: Callable[[str], None] = lambda _: None, autosave_delay: float = 0.5
    ) -> None:
        self.project = project
        self.image_id: int | None = None
        self.class_id: int | None = None
        self.review: list[int] | None = None  # the review queue, when reviewing
        self._before: MaskRecord | None = None  # the current record before the first edit shown (for undo)
        self._reviews: list[list[tuple[int, int, MaskRecord]]] = []  # batches of review decisions, to undo
        self.on_error = on_error
        self.saver = AutoSaver(project, delay=autosave_delay, on_error=on_error)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="project-writer")

    # ---- the writer -----------------------------------------------------------------------
    def submit(self, change: Callable[[], None]) -> None:
        """Run a change of the project on the writer thread, after every change submitted before it."""

        def run() -> None:
            try:
                change()
            except ProjectError as exc:
                self.on_error(str(exc))

        self._writer.submit(run)

    def flush(self) -> None:
        """Wait until every submitted change is done (before reading the project, or handing it to a job)."""
        self._writer.submit(lambda: None).result()

    def save(self) -> bool:
        """Write every change now; False (and on_error told) if it could not be saved."""
        self.flush()
        return self.saver.flush()

    def close(self) -> bool:
        """Finish the writes and save; the session is not used after this."""
        ok = self.save()  # a read-only project is never written, and counts as saved
        self._writer.shutdown()
        self.project.close()
        return ok

    # ---- what is current ------------------------------------------------------------------
    def choose_class(self, class_id: int | None) -> None:
        self.flush()
        self.class_id, self._before = class_id, None

    def choose_image(self, image_id: int) -> None:
        self.flush()
        self.image_id, self._before = image_id, None

    def ready(self) -> bool:
        """Whether an image and a class are chosen (what every edit of the current record needs)."""
        return self.image_id is not None and self.class_id is not None

    def paint(self, mask: np.ndarray, all_undone: bool = False) -> MaskRecord:
        """The user's own mask of the current image and class, written in order; returns the record as it will be,
        for the view to show: accepted and marked edited; emptied, unlabelled (clearing a mask does not accept
        it); `all_undone` (every edit since the image was shown, or its state last set, was undone): the record
        as it was then (a proposal stays a proposal)."""
        proj, image_id, class_id, mask = self.project, self.image_id, self.class_id, mask.copy()
        if all_undone and self._before is not None:
            before = self._before
            self.submit(lambda: proj.restore_record(image_id, class_id, before))
            return before
        if self._before is None:
            self.flush()
            self._before = proj.record(image_id, class_id)
        if mask.any():
            self.submit(lambda: proj.set_mask(image_id, class_id, mask))
            return MaskRecord(state=State.ACCEPTED, edited=True)
        self.submit(lambda: proj.clear_mask(image_id, class_id))
        return MaskRecord()

    def set_state(self, state: State) -> None:
        """Accept, reject or reset the current record, keeping its pixels (undoing earlier strokes no longer
        goes back before this)."""
        self.flush()
        self.project.set_state(self.image_id, self.class_id, state)
        self._before = None

    def decide(self, states: dict[int, State]) -> int:
        """Set the current class's state of many images at once (a page of the review grid, a bulk accept or reject),
        keeping their pixels; one step of `undo_decision`. Returns how many records changed."""
        self.flush()
        class_id, batch = self.class_id, []
        for image_id, state in states.items():
            before = self.project.record(image_id, class_id)
            if before.state != state:
                batch.append((image_id, class_id, replace(before)))
                self.project.set_state(image_id, class_id, state)
        if batch:
            self._reviews.append(batch)
        if self.image_id in states:
            self._before = None
        return len(batch)

    def undo_decision(self) -> list[int]:
        """Put back the records the last `decide` changed (their states, scores and pixels); the images changed."""
        self.flush()
        if not self._reviews:
            return []
        batch = self._reviews.pop()
        for image_id, class_id, before in batch:
            self.project.restore_record(image_id, class_id, before)
        return [image_id for image_id, _, _ in batch]

    def add_support(self) -> str:
        """Make the current mask a support of the current class (accepting it if it was a proposal); says so."""
        self.flush()
        self._before = None
        if self.project.record(self.image_id, self.class_id).state != State.ACCEPTED:
            self.project.set_state(self.image_id, self.class_id, State.ACCEPTED)
        self.project.add_support(self.image_id, self.class_id)
        n = len(self.project.support_ids(self.class_id))
        return (
            f"{self.project.images[self.image_id].file} is now support {n} of "
            f"'{self.project.classes[self.class_id].name}'"
        )

    def remove_support(self) -> str:
        """ "Not a support": propagation stops learning from the current mask (which stays); says so."""
        self.flush()
        self.project.remove_support(self.image_id, self.class_id)
        return (
            f"{self.project.images[self.image_id].file} is no longer a support of "
            f"'{self.project.classes[self.class_id].name}'"
        )

    def delete_class(self) -> None:
        self.flush()
        class_id, self.class_id = self.class_id, None  # no class is current when the views hear of it
        self.project.delete_class(class_id)

    # ---- review ---------------------------------------------------------------------------
    def start_review(self) -> bool:
        """Queue the current class's proposals, least confident first; False when there are none."""
        self.flush()
        self.review = review_queue(self.project, self.class_id) or None
        return self.review is not None

    def stop_review(self) -> None:
        self.review = None

    def requeue(self) -> None:
        """Rebuild the review queue (new proposals arrived), if reviewing."""
        if self.review is not None:
            self.review = review_queue(self.project, self.class_id)

    def where(self) -> str:
        """ "review 3/40 · " when the current image is in the review queue, else ""."""
        if self.review and self.image_id in self.review:
            return f"review {self.review.index(self.image_id) + 1}/{len(self.review)} · "
        return ""

    def step(self, delta: int) -> int | None:
        """The image `delta` steps away: through the review queue when reviewing, else through the folder;
        None past either end."""
        order = self.review if self.review else sorted(self.project.images)
        if self.image_id in order:
            i = order.index(self.image_id) + delta
        else:
            i = 0 if delta > 0 else len(order) - 1
        return order[i] if 0 <= i < len(order) else None
