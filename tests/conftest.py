"""Shared fixtures: images the tests make, and the real DAVIS frames when the shared data is there."""

from __future__ import annotations

import os
import tempfile

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Commands the tests run cache backbone features here, not in the user's cache folder.
os.environ.setdefault("ANNOTATOR_CACHE_DIR", tempfile.mkdtemp(prefix="annotator-test-cache-"))


@pytest.fixture(scope="session")
def predictor():
    from annotator.build import build_model
    from annotator.inference.predictor import Predictor

    return Predictor(build_model(), device="cpu", crf=None)
