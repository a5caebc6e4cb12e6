"""The supports' colour model: it favours the class's colours on a query of their scene and says nothing elsewhere."""

from __future__ import annotations

import numpy as np
import torch

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


def test_the_class_colour_is_favoured_on_its_scene_only():
    im, m = _image()
    scene = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0, 0.0]]), dim=1)
    model = ColourModel.fit([im], [m], scene, same_scene=0.98, weight=0.5)
    query = np.roll(im, 7, axis=1)  # the square moved: colour, not place, decides
    logit = model.logit(query, scene[0])
    assert logit.dtype == np.float32 and logit.shape == m.shape
    assert logit[np.roll(m, 7, axis=1)].min() > 1.0 and logit[~np.roll(m, 7, axis=1)].max() < -1.0
    other = torch.tensor([0.0, 1.0, 0.0])  # another scene's lighting: colours would mislead
    assert model.logit(query, other) is None
