"""Shared fixtures: the real packaged encoders and the embedded studio, each loaded once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Everything the tests load ships inside pip packages; never reach for the Hugging Face Hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def text_encoder():
    from core.encoders.text import SentenceTextEncoder

    return SentenceTextEncoder()


@pytest.fixture(scope="session")
def image_encoder():
    from core.encoders.image import EfficientNetImageEncoder

    return EfficientNetImageEncoder()


@pytest.fixture(scope="session")
def studio():
    import core

    return core.load_studio()


@pytest.fixture(scope="session")
def sklearn_images() -> Path:
    """The folder holding scikit-learn's bundled ``china.jpg`` and ``flower.jpg``."""
    import sklearn.datasets

    return Path(sklearn.datasets.__file__).parent / "images"


@pytest.fixture(scope="session")
def tiny_studio(text_encoder, image_encoder):
    """A studio of tiny untrained decoders around the real packaged encoders (seconds per call)."""
    from core import Studio
    from core.pipelines.build import build_studio_pipeline

    return Studio(build_studio_pipeline("tiny", text_encoder, image_encoder, preset="tiny"))
