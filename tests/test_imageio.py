"""Reading what users really have: EXIF rotation, 16-bit, grey, RGBA, unicode names, and broken files."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from annotator.io.imageio import ImageReadError, list_images, read_image, read_mask


def test_exif_rotated_jpeg_comes_upright(tmp_path):
    arr = np.zeros((40, 80, 3), np.uint8)  # stored 80 wide, 40 high
    arr[:, :10] = 255  # a white stripe on the stored left edge
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    Image.fromarray(arr).save(tmp_path / "r.jpg", exif=exif, quality=95)
    img = read_image(tmp_path / "r.jpg")
    assert img.shape == (80, 40, 3)
    assert img[:10].mean() > 200 and img[-10:].mean() < 50  # the stripe is now on top


@pytest.mark.parametrize("kind", ["grey", "grey16", "rgb16", "rgba"])
def test_any_depth_and_channels_become_rgb_uint8(tmp_path, kind):
    base = np.linspace(0, 1, 30 * 20).reshape(20, 30)
    data = {
        "grey": (base * 255).astype(np.uint8),
        "grey16": (base * 65535).astype(np.uint16),
        "rgb16": np.dstack([(base * 65535).astype(np.uint16)] * 3),
        "rgba": np.dstack([(base * 255).astype(np.uint8)] * 3 + [np.full((20, 30), 128, np.uint8)]),
    }[kind]
    cv2.imwrite(str(tmp_path / "x.png"), data)
    img = read_image(tmp_path / "x.png")
    assert img.shape == (20, 30, 3) and img.dtype == np.uint8
    assert abs(int(img[-1, -1, 0]) - 255) <= 1 and img[0, 0, 0] == 0


def test_unicode_path(tmp_path):
    folder = tmp_path / "données 写真"
    folder.mkdir()
    ok, buf = cv2.imencode(".png", np.full((5, 6, 3), 7, np.uint8))
    buf.tofile(folder / "é.png")
    assert read_image(folder / "é.png").shape == (5, 6, 3)
    assert list_images(tmp_path) == [folder / "é.png"]


def test_broken_files_say_what_is_wrong(tmp_path):
    ok, buf = cv2.imencode(".jpg", np.full((64, 64, 3), 100, np.uint8))
    (tmp_path / "trunc.jpg").write_bytes(buf.tobytes()[:40])
    (tmp_path / "text.png").write_text("not an image")
    (tmp_path / "empty.jpg").write_bytes(b"")
    for name, words in [
        ("trunc.jpg", "corrupt"),
        ("text.png", "not an image"),
        ("empty.jpg", "empty"),
        ("missing.jpg", "no such file"),
    ]:
        with pytest.raises(ImageReadError, match=words) as err:
            read_image(tmp_path / name)
        assert name in str(err.value)


def test_mask_threshold_is_above_127(tmp_path):
    m = np.array([[0, 127, 128, 255]], np.uint8)
    cv2.imwrite(str(tmp_path / "m.png"), m)
    assert read_mask(tmp_path / "m.png").tolist() == [[False, False, True, True]]


def test_list_images_recurses_sorted_and_skips_hidden_and_non_images(tmp_path):
    for rel in ["b.jpg", "a/c.PNG", ".hidden/d.jpg", "notes.txt", "a/.e.jpg"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    assert [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)] == ["a/c.PNG", "b.jpg"]
    with pytest.raises(ImageReadError, match="no such folder"):
        list_images(tmp_path / "gone")
