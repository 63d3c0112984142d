"""Frozen encoders from text, images and sounds to embeddings, and the factory that builds them.

``build_encoder`` is the one place where a family name from a preset's ``studio.json``
becomes an encoder object.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .base import MODALITIES, Encoder


def _sentence(spec: dict[str, Any], folder: Path) -> Encoder:
    from .text import SentenceTextEncoder

    return SentenceTextEncoder(spec.get("name_or_path"))


def _efficientnet(spec: dict[str, Any], folder: Path) -> Encoder:
    from .image import EfficientNetImageEncoder

    return EfficientNetImageEncoder()


def _sound_cnn(spec: dict[str, Any], folder: Path) -> Encoder:
    from .audio import SoundEncoder

    subfolder = folder / spec.get("subfolder", "sound_encoder")
    return load_or_init(SoundEncoder, subfolder, seed=spec.get("seed", 0))


def _open_clip(spec: dict[str, Any], folder: Path) -> Encoder:
    from . import hub

    encoder_class = {"text": hub.OpenClipTextEncoder, "image": hub.OpenClipImageEncoder}[spec["modality"]]
    return encoder_class(spec["name_or_path"])


def _clap(spec: dict[str, Any], folder: Path) -> Encoder:
    from . import hub

    encoder_class = {"text": hub.ClapTextEncoder, "audio": hub.ClapAudioEncoder}[spec["modality"]]
    return encoder_class(spec["name_or_path"])


FAMILIES: dict[str, Callable[[dict[str, Any], Path], Encoder]] = {
    "sentence-transformer": _sentence,
    "efficientnet-lite0": _efficientnet,
    "sound-cnn": _sound_cnn,
    "open-clip": _open_clip,  # {"modality": "text" | "image", "name_or_path": ...}
    "clap": _clap,  # {"modality": "text" | "audio", "name_or_path": ...}
}


def build_encoder(spec: dict[str, Any], folder: Path) -> Encoder:
    """Builds the encoder described by ``spec`` (``{"family": ..., ...}``) of a preset in ``folder``."""
    family = spec.get("family")
    if family not in FAMILIES:
        raise ValueError(f"Unknown encoder family {family!r}; known families: {sorted(FAMILIES)}.")
    return FAMILIES[family](spec, folder)


def has_weights(folder: Path) -> bool:
    """Whether a ``save_pretrained`` folder holds safetensors weights, not only a config."""
    return any(folder.glob("*.safetensors"))


def load_or_init(model_class, folder: Path, seed: int = 0):
    """``from_pretrained`` when ``folder`` holds weights; else the config's model, seeded and untrained.

    The returned model has ``is_trained`` set accordingly (a saved untrained model keeps only
    its config, so this stays true to what the weights are).
    """
    import torch

    if has_weights(folder):
        model = model_class.from_pretrained(str(folder))
        model.is_trained = True
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = model_class.from_config(model_class.load_config(str(folder)))
        model.is_trained = False
    return model.eval()


__all__ = ["FAMILIES", "MODALITIES", "Encoder", "build_encoder", "has_weights", "load_or_init"]
