"""The annotation project on disk: classes, supports, and per image and class a mask and its state.

A project is a folder the user can see and back up (`project.json` plus `masks/*.png`) beside an
image folder that is never modified. Masks are PNG label maps (0 = background, 1..N = instances)
named by content, written atomically and loaded on demand, so memory holds no pixels. The index
is replaced atomically; earlier generations are kept (project_history). One process writes a project at a
time (a lock file); others may open it read-only.
"""

from __future__ import annotations

import colorsys
import hashlib
import json
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from annotator.config import PROJECT_INDEX as INDEX
from annotator.config import State
from annotator.io.atomic import atomic_write_bytes, compact_json
from annotator.io.imageio import ImageReadError, image_size, list_image_files
from annotator.project import history as project_history
from annotator.project import lock as writer_lock
from annotator.project.events import Event, ProjectEvents

LOCK = "project.lock"
MASK_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*\.png")  # a plain file name under masks/, nothing else

FORMAT = "annotator-project"
VERSION = 1
PALETTE = (
    "#e6194b",
    "#3cb44b",
    "#4363d8",
    "#f58231",
    "#911eb4",
    "#46f0f0",
    "#f032e6",
    "#bcf60c",
    "#fabebe",
    "#008080",
    "#e6beff",
    "#9a6324",
    "#fffac8",
    "#800000",
    "#aaffc3",
    "#808000",
    "#ffd8b1",
    "#000075",
)


class ProjectError(RuntimeError):
    """A project cannot be opened or changed as asked; the message says why."""


class ProjectSaveError(ProjectError):
    """Saving failed (disk full, read-only, folder gone); the work is still in memory and unsaved."""


class ProjectLockedError(ProjectError):
    """Another live process writes this project; it may still be opened read-only."""


@dataclass
class ClassInfo:
    id: int
    name: str
    color: str


@dataclass(slots=True)
class ImageEntry:
    id: int
    file: str  # path relative to the image root, with forward slashes
    height: int | None = None  # EXIF-corrected, filled in when first known
    width: int | None = None


@dataclass(slots=True)
class MaskRecord:
    """State of one (image, class). `mask` is a file under masks/; `edited` marks the user's own pixels."""

    state: State = State.UNLABELLED
    mask: str | None = None
    score: float | None = None
    settings: dict | None = None
    edited: bool = False


@dataclass
class OpenReport:
    """What opening found: images missing from disk, new images added, any recovery done, entries of the
    index that were ignored (each named), and leftovers of a killed process that were cleaned."""

    missing: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    recovered: str | None = None
    problems: list[str] = field(default_factory=list)
    cleaned: int = 0
    lock_note: str | None = None

    def notes(self) -> list[str]:
        """One line per thing the user should hear about (shown by the CLI as warnings, by the app)."""
        out = [n for n in (self.lock_note, self.recovered) if n]
        out += [f"ignored in {INDEX}: {p}" for p in self.problems[:5]]
        if len(self.problems) > 5:
            out.append(f"... and {len(self.problems) - 5} more entries of {INDEX} ignored")
        if self.missing:
            out.append(f"{len(self.missing)} images are missing from the image folder, e.g. {self.missing[0]}")
        return out


def class_color(class_id: int) -> str:
    """A class's default colour: the 18 distinct colours of PALETTE, then hues a golden angle apart, so that no
    two of the first thousands of classes share one."""
    if class_id <= len(PALETTE):
        return PALETTE[class_id - 1]
    hue = (class_id * 0.618033988749895) % 1.0
    level = 0.55 + 0.3 * ((class_id // 7) % 2)  # alternate brightness too
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, level)
    return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"


def _inside(file: str) -> bool:
    """Whether an image path of the index stays inside the image folder (relative, no '..', no drive)."""
    parts = file.replace("\\", "/").split("/")
    return bool(file) and not os.path.isabs(file) and ":" not in parts[0] and ".." not in parts and "" not in parts


def _record_problem(r: object, images: dict, classes: dict) -> str | None:
    """Why a record of the index cannot be used, or None."""
    if not isinstance(r, dict):
        return "not a record"
    if (
        not all(isinstance(r.get(k), int) for k in ("image", "class"))
        or r["image"] not in images
        or r["class"] not in classes
    ):
        return "no such image or class"
    mask = r.get("mask")
    if mask is not None and not (isinstance(mask, str) and MASK_NAME.fullmatch(mask)):
        return "the mask is not a plain file name under masks/"
    score = r.get("score")
    if score is not None and not (isinstance(score, (int, float)) and math.isfinite(score)):
        return "the score is not a number"
    if r.get("settings") is not None and not isinstance(r.get("settings"), dict):
        return "the settings are not an object"
    return None


def encode_labels(labels: np.ndarray) -> bytes:
    """A label map as PNG bytes (8-bit, or 16-bit beyond 255 instances): how masks are kept, on disk and elsewhere."""
    dtype = np.uint8 if labels.max(initial=0) < 256 else np.uint16
    ok, buf = cv2.imencode(".png", labels.astype(dtype))
    if not ok:
        raise ProjectError("could not encode a mask as PNG")
    return buf.tobytes()


class Project:
    """An annotation project; every change marks it dirty, `save()` (or an AutoSaver) persists it."""

    def __init__(self, folder: Path, image_root: Path, read_only: bool = False) -> None:
        self.folder = Path(folder)
        self.image_root = Path(image_root)
        self.read_only = read_only
        self.classes: dict[int, ClassInfo] = {}
        self.images: dict[int, ImageEntry] = {}
        self.supports: dict[int, list[int]] = {}  # marked with S, in the order they were marked
        self.not_supports: dict[int, list[int]] = {}  # accepted masks the user took out of the supports
        self.records: dict[tuple[int, int], MaskRecord] = {}
        self.report = OpenReport()
        self._by_file: dict[str, int] = {}
        self._next_image_id = 1
        self._lock = threading.RLock()
        self.events = ProjectEvents()
        self._holds_lock = False
        self.dirty = False

    # ---- creating, opening, closing ---------------------------------------------------------
    @classmethod
    def create(cls, folder: Path | str, image_root: Path | str) -> Project:
        """A new project in `folder` (created) over the images of `image_root`. A folder left with only earlier
        copies of its index (a kill mid-save) is opened from the newest instead, and `report.recovered` says so."""
        folder, image_root = Path(folder), Path(image_root).resolve()
        if (folder / INDEX).exists():
            raise ProjectError(f"{folder} already holds a project; open it instead")
        if project_history.generations(folder):
            return cls.open(folder)
        files = list_image_files(image_root)
        (folder / "masks").mkdir(parents=True, exist_ok=True)
        proj = cls(folder, image_root)
        proj._take_lock()
        try:
            for f in files:
                proj._add_image(f)
            proj.save()
        except BaseException:
            proj.close()
            raise
        return proj

    @staticmethod
    def exists(folder: Path | str) -> bool:
        """Whether `folder` holds a project (its index, or only earlier copies of it)."""
        return (Path(folder) / INDEX).exists() or bool(project_history.generations(Path(folder)))

    @classmethod
    def open(cls, folder: Path | str, rescan: bool = True, read_only: bool = False) -> Project:
        """Open a project for writing (one process at a time: ProjectLockedError otherwise) or `read_only`.
        An unusable index falls back to the newest good earlier copy and says so in `report`."""
        folder = Path(folder)
        if not cls.exists(folder):
            raise ProjectError(f"{folder} is not an annotator project (no {INDEX})")
        proj = cls(folder, folder, read_only)
        if not read_only:
            proj._take_lock()
        try:
            data, recovered = cls._read_index(folder, read_only)
            root = Path(data["image_root"])
            rel = data.get("image_root_rel")
            if not root.is_dir() and isinstance(rel, str) and (folder / rel).is_dir():
                root = (folder / rel).resolve()  # project and images were moved together
            proj.image_root = root
            proj._load(data)
            proj.report.recovered = recovered
            if recovered or proj.report.problems:
                proj.dirty = True
            if not read_only:
                (folder / "masks").mkdir(exist_ok=True)
                proj.report.cleaned = proj.sweep_orphans()
            proj._check_images(rescan)
        except BaseException:
            proj.close()
            raise
        return proj

    def _take_lock(self) -> None:
        try:
            self.report.lock_note = writer_lock.acquire(self.folder / LOCK)
        except writer_lock.LockHeld as exc:
            raise ProjectLockedError(f"{self.folder}: the project is open in {exc}") from None
        except OSError as exc:
            raise ProjectError(f"cannot open {self.folder} for writing: {exc.strerror or exc}") from None
        self._holds_lock = True

    def close(self) -> None:
        """Give up writing the project (its lock goes); unsaved changes are not saved here."""
        if self._holds_lock:
            self._holds_lock = False
            writer_lock.release(self.folder / LOCK)

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @staticmethod
    def _parse(path: Path) -> dict:
        """A copy of the index, checked for the shape every later step relies on; ValueError says what is wrong."""
        data = json.loads(path.read_text("utf-8"))
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError("not an annotator project file")
        for key, kind in (("image_root", str), ("classes", list), ("images", list), ("records", list)):
            if not isinstance(data.get(key), kind):
                raise ValueError(f"'{key}' is missing or not a {kind.__name__}")
        for key in ("supports", "not_supports"):
            if not isinstance(data.get(key, {}), dict):
                raise ValueError(f"'{key}' is not an object")
        return data

    @classmethod
    def _read_index(cls, folder: Path, read_only: bool) -> tuple[dict, str | None]:
        main = folder / INDEX
        try:
            return cls._parse(main), None
        except FileNotFoundError:
            problem = f"{INDEX} was missing"
        except (ValueError, UnicodeDecodeError, OSError) as exc:
            problem = f"{INDEX} is damaged ({exc})"
        tried = []
        for copy in project_history.generations(folder):
            try:
                data = cls._parse(copy)
            except (ValueError, UnicodeDecodeError, OSError) as exc:
                tried.append(f"{copy.relative_to(folder)}: {exc}")
                continue
            if main.exists() and not read_only:
                kept = main.with_name(f"{INDEX}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
                os.replace(main, kept)
                problem += f"; it was kept as {kept.name}"
            return data, f"{problem}; opened the last good copy {copy.relative_to(folder)}"
        detail = "; ".join(tried) or "there is none"
        raise ProjectError(f"{folder}: {problem}, and no earlier copy of it can be read ({detail})")

    def _load(self, data: dict) -> None:
        """Fill the project from a parsed index; an entry that is malformed, duplicated, refers to nothing, or
        names a file outside the project is named in `report.problems` and ignored (never read or deleted)."""
        version = data.get("version", 0)
        if not isinstance(version, int) or isinstance(version, bool):
            raise ProjectError(f"project format version {json.dumps(version)[:40]} is not a number")  # one line
        if version > VERSION:
            raise ProjectError(f"project format {version} is newer than this annotator ({VERSION}); update it")
        bad = self.report.problems.append
        for c in data["classes"]:
            try:
                info = ClassInfo(int(c["id"]), str(c["name"]), str(c["color"]))
            except (TypeError, KeyError, ValueError):
                bad(f"class {c!r:.80}: not a class entry")
                continue
            if info.id in self.classes:
                bad(f"class {info.id}: a second class with this id")
                continue
            self.classes[info.id] = info
        for im in data["images"]:
            file = im.get("file") if isinstance(im, dict) else None
            image_id = im.get("id") if isinstance(im, dict) else None
            if not isinstance(image_id, int) or not isinstance(file, str):
                bad(f"image {im!r:.80}: not an image entry")
            elif image_id in self.images or file in self._by_file:
                bad(f"image {image_id} ({file}): a second entry with this id or file")
            elif not _inside(file):
                bad(f"image {image_id}: path {file!r} leads outside the image folder")
            else:
                h, w = im.get("height"), im.get("width")
                sized = isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0
                self._add_image(file, image_id, h if sized else None, w if sized else None)
        for key in ("supports", "not_supports"):
            table = {}
            for k, v in data.get(key, {}).items():
                if k.isdigit() and int(k) in self.classes and isinstance(v, list):
                    table[int(k)] = [i for i in v if isinstance(i, int) and i in self.images]
                else:
                    bad(f"{key} of class {k!r}: no such class, or not a list of images")
            setattr(self, key, table)
        shared: dict[str, dict] = {}  # proposals of one run share one settings dict in memory
        for r in data["records"]:
            problem = _record_problem(r, self.images, self.classes)
            key = (r.get("image"), r.get("class")) if isinstance(r, dict) else None
            if problem is None and key in self.records:
                problem = "a second record for this image and class"
            if problem:
                bad(f"record {r!r:.120}: {problem}")
                continue
            settings = r.get("settings")
            if settings is not None:
                settings = shared.setdefault(json.dumps(settings, sort_keys=True), settings)
            state = r.get("state", State.UNLABELLED)
            if state not in State.values():  # the pixels are kept, for the reviewer to judge again
                state = State.PROPOSED if r.get("mask") else State.UNLABELLED
                bad(
                    f"record of image {key[0]}, class {key[1]}: unknown state {r.get('state')!r} (one of "
                    f"{', '.join(State.values())}); kept as {state}"
                )
            self.records[key] = MaskRecord(
                State(state), r.get("mask"), r.get("score"), settings, bool(r.get("edited", False))
            )

    def _check_images(self, rescan: bool) -> None:
        try:
            on_disk = set(list_image_files(self.image_root))
        except ImageReadError:
            on_disk = set()
        self.report.missing = sorted(f for f in self._by_file if f not in on_disk)
        if rescan:
            for f in sorted(on_disk - self._by_file.keys()):
                self._add_image(f)
                self.report.added.append(f)
            if self.report.added:
                self._changed()

    def _add_image(self, file: str, image_id: int | None = None, h: int | None = None, w: int | None = None) -> int:
        image_id = image_id if image_id is not None else self._next_image_id
        self._next_image_id = max(self._next_image_id, image_id + 1)
        self.images[image_id] = ImageEntry(image_id, file, h, w)
        self._by_file[file] = image_id
        return image_id

    # ---- observers and saving -------------------------------------------------------------
    def _changed(self) -> None:
        self.dirty = True
        self.events.changed.emit()

    def to_dict(self) -> dict:
        with self._lock:
            try:
                rel = os.path.relpath(self.image_root, self.folder.resolve())
            except ValueError:  # another drive on Windows
                rel = None
            return {
                "format": FORMAT,
                "version": VERSION,
                "image_root": str(self.image_root),
                "image_root_rel": rel,
                "classes": [asdict(c) for c in self.classes.values()],
                "supports": {str(k): v for k, v in self.supports.items()},
                "not_supports": {str(k): v for k, v in self.not_supports.items() if v},
                "images": [
                    {"id": e.id, "file": e.file, "height": e.height, "width": e.width} for e in self.images.values()
                ],
                "records": [
                    {"image": i, "class": c, **asdict(r)}
                    for (i, c), r in self.records.items()
                    if r.state != State.UNLABELLED or r.mask
                ],
            }

    def _writable(self) -> None:
        if self.read_only:
            raise ProjectError(f"{self.folder} is open read-only (another process writes it); nothing was changed")

    @contextmanager
    def _editing(self, event: Event | None = None, *args: int) -> Iterator[None]:
        """Every change of the index goes through here: refused on a read-only project (where it could never
        be saved), made under the lock, then announced: `event` (one of self.events) with `args`, and `changed`."""
        self._writable()
        with self._lock:
            yield
        if event is not None:
            event.emit(*args)
        self._changed()

    def save(self) -> None:
        """Replace the index atomically (it is never absent), keeping earlier generations; raise ProjectSaveError."""
        with self._lock:
            self._writable()
            data = compact_json(self.to_dict()).encode("utf-8")
            try:
                project_history.keep_previous(self.folder)
                atomic_write_bytes(self.folder / INDEX, data)
            except OSError as exc:
                raise ProjectSaveError(f"cannot save the project in {self.folder}: {exc.strerror or exc}") from exc
            self.dirty = False

    # ---- classes --------------------------------------------------------------------------
    def class_named(self, name: str) -> int | None:
        """The id of the class named `name`, or None (names are unique)."""
        return next((c.id for c in self.classes.values() if c.name == name), None)

    def add_class(self, name: str, color: str | None = None) -> ClassInfo:
        name = name.strip()
        if not name:
            raise ProjectError("a class needs a name")
        if self.class_named(name) is not None:
            raise ProjectError(f"there is already a class named '{name}'")
        with self._editing(self.events.classes):
            cid = max(self.classes, default=0) + 1
            info = ClassInfo(cid, name, color or class_color(cid))
            self.classes[cid] = info
        return info

    def rename_class(self, class_id: int, name: str) -> None:
        with self._editing(self.events.classes):
            if self.class_named(name) not in (None, class_id):
                raise ProjectError(f"there is already a class named '{name}'")
            self.classes[class_id].name = name

    def recolor_class(self, class_id: int, color: str) -> None:
        with self._editing(self.events.classes):
            self.classes[class_id].color = color

    def delete_class(self, class_id: int) -> None:
        """Remove a class with its masks and supports."""
        with self._editing(self.events.classes):
            del self.classes[class_id]
            self.supports.pop(class_id, None)
            self.not_supports.pop(class_id, None)
            for key in [k for k in self.records if k[1] == class_id]:
                del self.records[key]

    # ---- images and masks -----------------------------------------------------------------
    def image_id(self, file: str) -> int | None:
        return self._by_file.get(file)

    def image_path(self, image_id: int) -> Path:
        return self.image_root / self.images[image_id].file

    def size_of(self, image_id: int) -> tuple[int, int]:
        """(height, width) after EXIF rotation, read from the file's header once and remembered."""
        e = self.images[image_id]
        if e.height is None or e.width is None:
            h, w = image_size(self.image_path(image_id))  # outside the lock: a file read
            with self._lock:
                e.height, e.width = h, w
            self._changed()
        return e.height, e.width

    def record(self, image_id: int, class_id: int) -> MaskRecord:
        return self.records.get((image_id, class_id), MaskRecord())

    def labels(self, image_id: int, class_id: int) -> np.ndarray | None:
        """The (image, class) label map (0 = background, 1..N = instances), read from disk; None if none.
        A missing, damaged, linked or wrong-size mask file is a ProjectError naming it."""
        rec = self.records.get((image_id, class_id))
        if rec is None or rec.mask is None:
            return None
        path = self.folder / "masks" / rec.mask
        if path.is_symlink():
            raise ProjectError(f"mask file {path} is a link; links are not followed")
        data = np.fromfile(path, np.uint8) if path.is_file() else None
        out = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data is not None and data.size else None
        if out is None or out.ndim != 2:
            raise ProjectError(f"mask file {path} is missing or damaged")
        e = self.images[image_id]
        if e.height is not None and out.shape != (e.height, e.width):
            raise ProjectError(
                f"mask file {path} is {out.shape[1]}x{out.shape[0]}, its image {e.file} is {e.width}x{e.height}"
            )
        return out

    def mask(self, image_id: int, class_id: int) -> np.ndarray | None:
        """Boolean union of the instances of (image, class), or None."""
        lab = self.labels(image_id, class_id)
        return None if lab is None else lab > 0

    def _write_mask(self, image_id: int, class_id: int, labels: np.ndarray) -> str:
        data = encode_labels(labels)
        name = f"{image_id}-{class_id}-{hashlib.sha1(data).hexdigest()[:16]}.png"
        path = self.folder / "masks" / name
        if not path.exists():
            try:
                atomic_write_bytes(path, data)
            except OSError as exc:
                raise ProjectSaveError(
                    f"cannot write mask {name}: {exc.strerror or exc}; the edit was not kept"
                ) from exc
        return name

    def _put(self, image_id: int, class_id: int, labels: np.ndarray | None, **fields) -> None:
        self._writable()  # before the mask file is written, too
        if image_id not in self.images or class_id not in self.classes:
            raise ProjectError(f"no image {image_id} or class {class_id} in this project")
        if labels is not None:
            labels = np.asarray(labels)
            if labels.dtype == bool:
                labels = labels.astype(np.uint8)
            self._check_size(image_id, labels.shape)
        name = self._write_mask(image_id, class_id, labels) if labels is not None and labels.any() else None
        with self._editing(self.events.record, image_id, class_id):
            old = self.records.get((image_id, class_id), MaskRecord())
            self.records[(image_id, class_id)] = MaskRecord(
                **{**asdict(old), **fields, "mask": name if labels is not None else old.mask}
            )

    def _check_size(self, image_id: int, shape: tuple[int, ...]) -> None:
        e = self.images[image_id]
        if e.height is None:
            try:
                self.size_of(image_id)
            except ImageReadError:  # the image is gone: trust the mask
                e.height, e.width = int(shape[0]), int(shape[1])
        if (e.height, e.width) != tuple(shape[:2]):
            raise ProjectError(f"mask {shape[1]}x{shape[0]} does not fit {e.file} ({e.width}x{e.height})")

    def set_mask(self, image_id: int, class_id: int, labels: np.ndarray, state: State = State.ACCEPTED) -> None:
        """The user's own mask (bool, or an instance label map): marked edited, never overwritten by propagation."""
        self._put(image_id, class_id, labels, state=State(state), edited=True, score=None, settings=None)

    def set_proposal(
        self, image_id: int, class_id: int, mask: np.ndarray, score: float | None, settings: dict, force: bool = False
    ) -> bool:
        """Store a proposal unless the user accepted or edited this (image, class) (or `force`); True if stored."""
        rec = self.record(image_id, class_id)
        if (rec.state == State.ACCEPTED or rec.edited) and not force:
            return False
        self._put(image_id, class_id, mask, state=State.PROPOSED, score=score, settings=settings, edited=False)
        return True

    def clear_mask(self, image_id: int, class_id: int) -> None:
        """The user emptied the mask: no pixels, unlabelled (not accepted), and propagation may propose again."""
        self._writable()
        with self._editing(self.events.record, image_id, class_id):
            self.records[(image_id, class_id)] = MaskRecord()

    def restore_record(self, image_id: int, class_id: int, before: MaskRecord) -> None:
        """Put a record back as it was (the user undid every edit since): its state, score and mask file."""
        self._writable()
        if before.mask is not None and not (self.folder / "masks" / before.mask).is_file():
            raise ProjectError(f"mask file {before.mask} is gone; the edit stays")
        with self._editing(self.events.record, image_id, class_id):
            self.records[(image_id, class_id)] = replace(before)

    def set_state(self, image_id: int, class_id: int, state: State | str) -> None:
        """Accept, reject or reset a record without touching its pixels."""
        if state not in State.values():
            raise ProjectError(f"unknown state '{state}'; one of {', '.join(State.values())}")
        state = State(state)
        self._put(image_id, class_id, None, state=state)

    # ---- supports and negatives: what propagation learns from -----------------------------
    def add_support(self, image_id: int, class_id: int) -> None:
        """Mark the (accepted or edited) mask of this image as a support of the class."""
        with self._editing(self.events.supports, image_id, class_id):
            if self.mask(image_id, class_id) is None:
                raise ProjectError(
                    f"{self.images[image_id].file} has no mask of '{self.classes[class_id].name}' to use"
                )
            ids = self.supports.setdefault(class_id, [])
            if image_id not in ids:
                ids.append(image_id)
            if image_id in self.not_supports.get(class_id, []):
                self.not_supports[class_id].remove(image_id)

    def remove_support(self, image_id: int, class_id: int) -> None:
        """ "Not a support": propagation no longer learns from this image's mask (which stays as it is)."""
        with self._editing(self.events.supports, image_id, class_id):
            if image_id in self.supports.get(class_id, []):
                self.supports[class_id].remove(image_id)
            ids = self.not_supports.setdefault(class_id, [])
            if image_id not in ids:
                ids.append(image_id)

    def support_ids(self, class_id: int) -> list[int]:
        """The images propagation learns the class from: those marked as supports, then every other accepted or
        edited mask of it, less those the user took out."""
        with self._lock:
            out = [i for i in self.supports.get(class_id, []) if self.record(i, class_id).mask]
            marked = set(out)
            out += [i for (i, c) in sorted(self.records) if c == class_id and i not in marked and self.is_support(i, c)]
        return out

    def is_support(self, image_id: int, class_id: int) -> bool:
        """Whether propagation learns the class from this image's mask (the rule of `support_ids`, for one image)."""
        r = self.record(image_id, class_id)
        if not r.mask:
            return False
        if image_id in self.supports.get(class_id, []):
            return True
        return (r.state == State.ACCEPTED or r.edited) and image_id not in self.not_supports.get(class_id, [])

    def negative_ids(self, class_id: int) -> list[int]:
        """Images that teach propagation what the class is not: rejected proposals, and images accepted as
        free of the class (accepted with no mask)."""
        with self._lock:
            return [
                i
                for (i, c), r in sorted(self.records.items())
                if c == class_id and (r.state == State.REJECTED or (r.state == State.ACCEPTED and not r.mask))
            ]

    def sweep_orphans(self) -> int:
        """Delete what a killed process left: mask files that neither the index nor any kept earlier copy of it
        refers to, and unfinished temporary files. Links and other non-files are left alone."""
        used = {r.mask for r in self.records.values() if r.mask}
        masks = self.folder / "masks"
        leftovers = [p for p in masks.glob(".*.tmp")] + [p for p in self.folder.glob(".*.tmp")]
        unused = [p for p in masks.glob("*.png") if p.name not in used]
        if unused:
            kept = project_history.referenced_masks(self.folder)
            leftovers += [p for p in unused if p.name not in kept]
        n = 0
        for p in leftovers:
            if p.is_file() and not p.is_symlink():
                p.unlink(missing_ok=True)
                n += 1
        return n


class AutoSaver:
    """Saves a project at most `delay` seconds after a change, on a background timer thread.

    Errors do not escape the thread: they go to `on_error` (the UI shows them) and the project stays
    dirty, so the next change or `flush()` tries again.
    """

    def __init__(self, project: Project, delay: float = 0.5, on_error: Callable[[str], None] | None = None) -> None:
        self.project = project
        self.delay = delay
        self.on_error = on_error
        self.last_error: str | None = None
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        project.events.changed.connect(self.schedule)

    def schedule(self) -> None:
        with self._lock:
            if self._timer is None:
                self._timer = threading.Timer(self.delay, self.flush)
                self._timer.daemon = True
                self._timer.start()

    def flush(self) -> bool:
        """Save now if dirty; True when the project is saved."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        if not self.project.dirty or self.project.read_only:  # a read-only project is never written
            return True
        try:
            self.project.save()
        except ProjectSaveError as exc:
            self.last_error = f"{exc}; your work is kept in memory and will be saved as soon as the disk allows"
            if self.on_error:
                self.on_error(self.last_error)
            return False
        self.last_error = None
        return True
