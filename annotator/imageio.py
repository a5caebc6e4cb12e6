"""Reading images and masks from disk: EXIF orientation applied, any depth or channel count to RGB uint8.

Every failure is an `ImageReadError` whose message names the file and says what is wrong.
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

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


def read_image(path: Path | str) -> np.ndarray:
    """RGB uint8 [H,W,3] of the image at `path`, EXIF-rotated; grey, 16-bit and RGBA are converted."""
    path = Path(path)
    return decode_image(read_file_bytes(path), path)


def decode_image(data: np.ndarray, path: Path | str) -> np.ndarray:
    """RGB uint8 image of a file's bytes (see read_image); `path` only names the file in errors."""
    try:
        img = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
    except cv2.error as exc:
        raise ImageReadError(f"{path}: cannot decode ({str(exc).strip().splitlines()[-1]})") from None
    if img is None or img.size == 0:
        raise ImageReadError(f"{path}: not an image, or a corrupt or truncated one")
    return cv2.cvtColor(_to_uint8(img), cv2.COLOR_BGR2RGB)


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
    """Relative POSIX paths of the image files under `folder` (recursively, hidden entries skipped), sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageReadError(f"{folder}: no such folder")
    found: list[str] = []
    top = str(folder)
    for root, dirs, files in os.walk(top):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        rel = os.path.relpath(root, top).replace(os.sep, "/")
        prefix = "" if rel == "." else rel + "/"
        found.extend(prefix + f for f in files
                     if not f.startswith(".") and os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS)
    return sorted(found)


def list_images(folder: Path | str) -> list[Path]:
    """Image files under `folder` (recursively, hidden entries skipped), sorted by relative path."""
    folder = Path(folder)
    return [folder / f for f in list_image_files(folder)]


def image_size(path: Path | str) -> tuple[int, int]:
    """(height, width) after EXIF rotation, from the file's header only (no pixel decoding)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as im:
            w, h = im.size
            orientation = im.getexif().get(0x0112, 1)
    except FileNotFoundError:
        raise ImageReadError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(f"{path}: not an image, or a corrupt one ({exc})") from None
    return (w, h) if orientation in (5, 6, 7, 8) else (h, w)
