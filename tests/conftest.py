"""Shared fixtures: images the tests make, and the real DAVIS frames when the shared data is there."""
from __future__ import annotations

import os
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(scope="session")
def predictor():
    from annotator.predictor import Predictor

    return Predictor(device="cpu", crf=None)
