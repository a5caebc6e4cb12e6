"""The supports' colour model: it favours the class's colours on a query of their scene and says nothing elsewhere."""

from __future__ import annotations

import numpy as np

from annotator.inference.colour_model import ColourModel, colour_bins


def _image() -> tuple[np.ndarray, np.ndarray]:
    """A red square on green grass, and its mask."""
    im = np.zeros((40, 60, 3), np.uint8)
    im[...] = (40, 160, 40)
    im[10:30, 20:40] = (200, 30, 30)
    m = np.zeros((40, 60), bool)
    m[10:30, 20:40] = True
    return im, m


def test_colour_bins_tell_colours_apart():
    im, m = _image()
    bins = colour_bins(im)
    assert bins.shape == m.shape and len(np.unique(bins[m])) == 1 and bins[m][0] != bins[~m][0]


def test_the_class_colour_is_favoured_from_the_supports_of_the_querys_scene_only():
    im, m = _image()
    model = ColourModel.fit([im], [m], weight=0.5)
    query = np.roll(im, 7, axis=1)  # the square moved: colour, not place, decides
    for own in (np.array([True]), None):  # the support's scene; no scenes at all (every query is of it)
        logit = model.logit(query, own)
        assert logit.dtype == np.float32 and logit.shape == m.shape
        assert logit[np.roll(m, 7, axis=1)].min() > 1.0 and logit[~np.roll(m, 7, axis=1)].max() < -1.0
    assert model.logit(query, np.array([False])) is None  # another scene's lighting: colours would mislead
