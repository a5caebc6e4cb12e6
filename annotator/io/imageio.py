"""Reading images and masks from disk: EXIF orientation applied, any depth or channel count to RGB uint8.

Every failure is an `ImageReadError` whose message names the file and says what is wrong.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from annotator.config import MAX_PIXELS, PIXEL_LIMIT_ENV

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".jp2", ".pgm", ".ppm"})


class ImageReadError(OSError):
    """A file could not be read as an image (missing, unreadable, corrupt, unsupported, too large)."""


def read_file_bytes(path: Path) -> np.ndarray:
    """The file's bytes as a uint8 array, or ImageReadError saying why not."""
    try:
        data = np.fromfile(path, dtype=np.uint8)  # handles any unicode path, unlike cv2.imread on Windows
    except FileNotFoundError:
        raise ImageReadError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageReadError(f"{path}: is a folder, not an image") from None
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if data.size == 0:
        raise ImageReadError(f"{path}: empty file")
    return data


def _to_uint8(img: np.ndarray) -> np.ndarray:
    if img.dtype == np.uint8:
        return img
    if img.dtype == np.uint16:
        return (img.astype(np.float32) / 257.0).round().astype(np.uint8)
    if np.issubdtype(img.dtype, np.floating):
        img = np.nan_to_num(img)
        lo, hi = float(img.min()), float(img.max())
        if lo >= 0.0 and hi <= 1.0:
            return (img * 255.0).round().astype(np.uint8)
        return ((img - lo) * (255.0 / max(hi - lo, 1e-12))).round().astype(np.uint8)
    return img.clip(0, 255).astype(np.uint8)


def pixel_limit() -> int:
    """The most pixels an image may have to be decoded (a 20000x20000 JPEG would take 1.2 GB and more)."""
    try:
        return int(os.environ.get(PIXEL_LIMIT_ENV, MAX_PIXELS))
    except ValueError:
        return MAX_PIXELS


def _header(source: Path | io.BytesIO, name: Path | str) -> tuple[int, int, int] | None:
    """(height, width, EXIF orientation) as stored, from the header only; None where PIL cannot read it."""
    try:
        with Image.open(source) as im:
            w, h = im.size
            return h, w, int(im.getexif().get(0x0112, 1) or 1)
    except FileNotFoundError:
        raise ImageReadError(f"{name}: no such file") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, TypeError):
        return None


def _oriented(header: tuple[int, int, int], name: Path | str) -> tuple[int, int]:
    """The size after orientation (the one size every part of the program uses), within the pixel limit."""
    h, w, orientation = header
    if h * w > pixel_limit():
        raise ImageReadError(
            f"{name}: {w}x{h} is {h * w:,} pixels, over the limit of {pixel_limit():,} (--max-pixels raises it)"
        )
    return (w, h) if orientation in (5, 6, 7, 8) else (h, w)


# EXIF orientation -> the OpenCV operations that show the image upright (as PIL's exif_transpose does)
_UPRIGHT = {
    2: lambda a: cv2.flip(a, 1),
    3: lambda a: cv2.rotate(a, cv2.ROTATE_180),
    4: lambda a: cv2.flip(a, 0),
    5: cv2.transpose,
    6: lambda a: cv2.rotate(a, cv2.ROTATE_90_CLOCKWISE),
    7: lambda a: cv2.flip(cv2.transpose(a), -1),
    8: lambda a: cv2.rotate(a, cv2.ROTATE_90_COUNTERCLOCKWISE),
}


def read_image(path: Path | str) -> np.ndarray:
    """RGB uint8 [H,W,3] of the image at `path`, EXIF-rotated; grey, 16-bit and RGBA are converted."""
    path = Path(path)
    return decode_image(read_file_bytes(path), path)


def _decode_with_pil(data: bytes) -> np.ndarray | None:
    """RGB uint8 of a file PIL decodes, upright; None where it cannot. Used for TIFF, whose orientation
    OpenCV applies on its own (and fails on for 90-degree turns)."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                return cv2.cvtColor(_to_uint8(np.asarray(im)), cv2.COLOR_GRAY2RGB)
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, TypeError):
        return None


def decode_image(data: np.ndarray, path: Path | str) -> np.ndarray:
    """RGB uint8 image of a file's bytes (see read_image); `path` only names the file in errors. The size is
    checked against the pixel limit from the header before any pixel is decoded."""
    raw = data.tobytes()
    header = _header(io.BytesIO(raw), path)
    if header is not None:
        _oriented(header, path)
    if raw[:4] in (b"II*\x00", b"MM\x00*"):  # TIFF
        img = _decode_with_pil(raw)
        if img is not None:
            return img
    try:
        img = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH | cv2.IMREAD_IGNORE_ORIENTATION)
    except cv2.error as exc:
        raise ImageReadError(f"{path}: cannot decode ({str(exc).strip().splitlines()[-1]})") from None
    if img is None or img.size == 0:
        raise ImageReadError(f"{path}: not an image, or a corrupt or truncated one")
    img = cv2.cvtColor(_to_uint8(img), cv2.COLOR_BGR2RGB)
    upright = _UPRIGHT.get(header[2]) if header is not None else None
    return np.ascontiguousarray(upright(img)) if upright else img


def read_mask(path: Path | str) -> np.ndarray:
    """Boolean [H,W] mask from a PNG: any value > 127 is the class (colour masks use their maximum channel)."""
    path = Path(path)
    data = read_file_bytes(path)
    try:
        m = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except cv2.error:
        m = None
    if m is None or m.size == 0:
        raise ImageReadError(f"{path}: not a readable mask image")
    if m.ndim == 3:
        m = m[..., :3].max(axis=2)
    if m.dtype == np.uint16:
        return m > 127 * 257
    return m > 127


def list_image_files(folder: Path | str) -> list[str]:
    """Relative POSIX paths of the image files under `folder` (recursively, hidden entries skipped), sorted.
    A folder or subfolder that cannot be read is an ImageReadError naming it (it must not look empty)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageReadError(f"{folder}: no such folder")
    found: list[str] = []
    top = str(folder)

    def unreadable(exc: OSError) -> None:
        raise ImageReadError(f"{exc.filename}: cannot read this folder ({exc.strerror or exc})")

    for root, dirs, files in os.walk(top, onerror=unreadable):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        rel = os.path.relpath(root, top).replace(os.sep, "/")
        prefix = "" if rel == "." else rel + "/"
        found.extend(
            prefix + f for f in files if not f.startswith(".") and os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS
        )
    return sorted(found)


def list_images(folder: Path | str) -> list[Path]:
    """Image files under `folder` (recursively, hidden entries skipped), sorted by relative path."""
    folder = Path(folder)
    return [folder / f for f in list_image_files(folder)]


def image_size(path: Path | str) -> tuple[int, int]:
    """(height, width) after EXIF rotation, from the file's header only (no pixel decoding); the same size
    read_image gives. Over the pixel limit, an ImageReadError says so."""
    path = Path(path)
    header = _header(path, path)
    if header is None or path.suffix.lower() in (".tif", ".tiff"):  # PIL unsure of it, or of its orientation:
        return read_image(path).shape[:2]  # the decoded size is the size
    return _oriented(header, path)
