"""The rules every import follows, whatever the format: image names are matched onto the project's images, class
names onto its classes (new ones are added), and an accepted or edited mask is kept unless overwriting."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from annotator.config import State
from annotator.io.imageio import ImageReadError
from annotator.project.store import Project, encode_labels
from annotator.utils.progress import NO_STEPS, Steps

MAX_INSTANCES = 65535  # instances of one class on one image (the label maps are 16-bit)


class ImportFormatError(ValueError):
    """The file or folder cannot be imported; the message names the offending entry."""


def image_matcher(project: Project) -> Callable[[str], int | None]:
    """A function giving the project image a peer tool's file name means: by its path relative to the image
    folder (written as `x.jpg`, `./x.jpg`, `images/x.jpg`, or absolute), else by a base name no other image
    shares; None if none. The base names are indexed once, not searched per name."""
    root = project.image_root.as_posix().rstrip("/") + "/"
    by_base: dict[str, list[int]] = {}
    for i, e in project.images.items():
        by_base.setdefault(e.file.rsplit("/", 1)[-1], []).append(i)

    def match(name: str) -> int | None:
        name = name.replace("\\", "/")
        if name.startswith(root):
            name = name[len(root) :]
        parts = [p for p in name.split("/") if p not in ("", ".")]
        for k in range(len(parts)):  # the longest tail of the path that is an image of the folder
            found = project.image_id("/".join(parts[k:]))
            if found is not None:
                return found
        same = by_base.get(parts[-1], []) if parts else []
        return same[0] if len(same) == 1 else None

    return match


def image_by_stem(project: Project) -> Callable[[str], int | None]:
    """A function giving the one project image whose relative path without its extension is the name asked for
    (`sub/a` for `sub/a.jpg`), as VOC ids and mask PNG folders name them; None if none or several (`a.jpg` and
    `a.png`). The stems are indexed once."""
    by_stem: dict[str, list[int]] = {}
    for i, e in project.images.items():
        by_stem.setdefault(e.file.rsplit(".", 1)[0], []).append(i)

    def match(stem: str) -> int | None:
        found = by_stem.get(stem, [])
        return found[0] if len(found) == 1 else None

    return match


def image_size(project: Project, image: int, where: str) -> tuple[int, int]:
    """(height, width) of a matched project image, or ImportFormatError naming `where` (the file and the image
    name in it) when the image cannot be read: an import is checked whole before anything is stored."""
    try:
        return project.size_of(image)
    except ImageReadError as exc:
        raise ImportFormatError(f"{where}: {exc}") from None


@dataclass
class Planned:
    """One (image, class) mask an import will store: an instance label map (0 = background), or a function that
    makes it when it is stored, and its score. A map given as pixels is kept as PNG bytes until then, so an
    import, checked whole before it stores anything, holds its masks compressed (a large one: one map at a time)."""

    image: int
    name: str
    labels: Callable[[], np.ndarray]  # given as a map [H,W] too, which is then kept as PNG bytes
    score: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.labels, np.ndarray):
            self.labels = partial(_decode_labels, encode_labels(self.labels))


def _decode_labels(png: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)


def label_map(masks: Iterable[np.ndarray], count: int, shape: tuple[int, int]) -> np.ndarray:
    """Instance masks of one class on one image, taken one at a time (memory holds one beside the map), as a label
    map: 0 = background, k = the k-th mask with pixels (a later one takes the pixels it shares with an earlier
    one). `count` bounds their number: 8-bit up to 254, else 16-bit."""
    labels = np.zeros(shape, np.uint16 if count > 254 else np.uint8)
    k = 0
    for m in masks:
        if m.any():
            k += 1
            labels[m] = k
    return labels


def is_kept(project: Project, image: int, name: str, overwrite: bool) -> bool:
    """Whether the project's mask of (image, class named `name`) stays as it is: accepted or edited, and not
    overwriting."""
    class_id = project.class_named(name)
    if overwrite or class_id is None:
        return False
    rec = project.record(image, class_id)
    return rec.state == State.ACCEPTED or rec.edited


def store(
    project: Project, planned: list[Planned], state: State, overwrite: bool, source: str, steps: Steps = NO_STEPS
) -> None:
    """Add the classes the planned masks name (in name order) and store the masks: as the user's own (`state`
    accepted) or as proposals marked as imported from `source`. Called once everything was read and checked;
    `steps` is called per mask (Cancelled stops it: the masks stored until then stay)."""
    steps(0, len(planned))  # cancelled while the source was read: nothing is stored, not even a class
    by_name = {c.name: c.id for c in project.classes.values()}
    for name in sorted({p.name for p in planned} - set(by_name)):
        by_name[name] = project.add_class(name).id
    for k, p in enumerate(planned):
        if k:
            steps(k, len(planned))
        labels = p.labels()
        if state == State.PROPOSED:
            project.set_proposal(p.image, by_name[p.name], labels, p.score, {"imported": source}, force=overwrite)
        else:
            project.set_mask(p.image, by_name[p.name], labels, state=state)


def read_index_png(path: Path, colours: Mapping[tuple[int, int, int], int], known: str) -> np.ndarray:
    """The values of a palette or grey PNG mask, or of an RGB one through `colours` (RGB -> value), as datumaro
    writes them; ImportFormatError for another mode, or for a colour `colours` (read from `known`) lacks."""
    try:
        with Image.open(path) as img:
            if img.mode in ("P", "L"):
                return np.asarray(img)
            if img.mode != "RGB":
                raise ImportFormatError(f"{path}: a mask PNG must be palette, grey or RGB, not {img.mode}")
            rgb = np.asarray(img).astype(np.int32)
    except OSError as exc:
        raise ImportFormatError(f"{path}: not a readable PNG ({exc})") from None
    codes, inverse = np.unique((rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2], return_inverse=True)
    index = np.empty(len(codes), np.uint8)
    for j, code in enumerate(codes.tolist()):
        colour = (code >> 16, (code >> 8) & 255, code & 255)
        if colour not in colours:
            raise ImportFormatError(f"{path}: the colour {colour} is not in {known}")
        index[j] = colours[colour]
    return index[inverse].reshape(rgb.shape[:2])
