"""Adapters for larger hub models: open_clip (text and image) and transformers CLAP (text and sound).

Each adapter loads from a Hugging Face Hub repo id or a local folder, with no download when
``HF_HUB_OFFLINE`` is set or the source is a folder. A text and a media adapter of the same
family can share one loaded model: call ``load_open_clip`` / ``load_clap`` once and pass the
result to both constructors. Embeddings are L2-normalised, as the models were trained.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.configuration_utils import register_to_config
from PIL import Image
from torch import nn
from transformers import AutoTokenizer, ClapFeatureExtractor, ClapModel, PreTrainedTokenizerBase

from ..audio import prepare_waveform
from ..media import load_image
from .base import Encoder, PretrainedReference
from .text import hub_offline

# What an open_clip hub repo needs: its config, safetensors weights (never pickles) and,
# for towers with a Hugging Face tokenizer, that tokenizer's files.
OPEN_CLIP_FILES = (
    "open_clip_config.json",
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.safetensors",
    "tokenizer*",
    "special_tokens_map.json",
    "vocab*",
    "merges.txt",
    "spiece.model",
)


def resolve_local_files_only(name_or_path: str, local_files_only: bool | None) -> bool:
    """``local_files_only`` as given, else true offline (``HF_HUB_OFFLINE``) or for a local folder."""
    if local_files_only is not None:
        return local_files_only
    return hub_offline() or Path(name_or_path).is_dir()


def _is_text(item: Any) -> bool:
    return isinstance(item, str)


def _check_texts(items: Sequence[Any]) -> list[str]:
    for text in items:
        if not isinstance(text, str):
            raise ValueError(f"Text inputs must be strings, got {type(text).__name__}.")
    return list(items)


# --- open_clip -------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenClipParts:
    """One loaded open_clip model with the transform and tokenizer saved beside it."""

    model: nn.Module
    transform: Callable[[Image.Image], torch.Tensor]
    tokenizer: Callable[[list[str]], torch.Tensor]
    embed_dim: int
    source: str = ""  # the name or folder it was loaded from


def open_clip_folder(name_or_path: str, local_files_only: bool | None = None) -> Path:
    """The local folder of an open_clip model: ``name_or_path`` itself, or a Hub snapshot of it."""
    if Path(name_or_path).is_dir():
        folder = Path(name_or_path)
    else:
        folder = _open_clip_snapshot(name_or_path, resolve_local_files_only(name_or_path, local_files_only))
    if not (folder / "open_clip_config.json").is_file():
        raise ValueError(
            f"{str(folder)!r} has no open_clip_config.json; pass a folder saved in open_clip's hub "
            "layout (open_clip_config.json + open_clip_model.safetensors) or such a Hub repo id."
        )
    if not any(folder.glob("*.safetensors")):
        raise ValueError(
            f"{str(folder)!r} has no .safetensors weights; convert the checkpoint to "
            "open_clip_model.safetensors (pickled .bin/.pth files are not loaded)."
        )
    return folder


def _open_clip_snapshot(name_or_path: str, local_files_only: bool) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    repo_id = name_or_path.removeprefix("hf-hub:")
    try:
        return Path(
            snapshot_download(repo_id, allow_patterns=list(OPEN_CLIP_FILES), local_files_only=local_files_only)
        )
    except HFValidationError as error:
        raise ValueError(
            f"{name_or_path!r} is neither an existing folder nor a Hub repo id ('org/name')."
        ) from error
    except LocalEntryNotFoundError as error:
        raise ValueError(
            f"{repo_id!r} is not in the local Hub cache and downloads are off (HF_HUB_OFFLINE or "
            "local_files_only); download it once online or pass a local folder."
        ) from error


def load_open_clip(name_or_path: str, local_files_only: bool | None = None) -> OpenClipParts:
    """Loads an open_clip model, its eval transform and its tokenizer from a folder or Hub repo id."""
    import open_clip

    folder = open_clip_folder(name_or_path, local_files_only)
    model_name = f"local-dir:{folder}"  # open_clip's own schema: config and weights from the folder
    model, transform = open_clip.create_model_from_pretrained(model_name)
    tokenizer = open_clip.get_tokenizer(model_name)
    embed_dim = int(open_clip.get_model_config(model_name)["embed_dim"])
    return OpenClipParts(model.eval(), transform, tokenizer, embed_dim, name_or_path)


def _open_clip_parts(source: str | OpenClipParts, local_files_only: bool | None) -> OpenClipParts:
    return source if isinstance(source, OpenClipParts) else load_open_clip(source, local_files_only)


class OpenClipTextEncoder(PretrainedReference, Encoder):
    """Text → open_clip text embedding ``[B, embed_dim]``, normalised.

    ``name_or_path`` is a folder, a Hub repo id (``org/name`` or ``hf-hub:org/name``) or parts
    already loaded by ``load_open_clip`` (to share one model with ``OpenClipImageEncoder``).
    """

    modality = "text"

    @register_to_config
    @register_to_config
    def __init__(self, name_or_path: str | OpenClipParts, local_files_only: bool | None = None):
        super().__init__()
        parts = _open_clip_parts(name_or_path, local_files_only)
        self.register_to_config(name_or_path=parts.source)  # a name, never the loaded parts
        self.register_to_config(name_or_path=parts.source)  # a name, never the loaded parts
        self.model = parts.model
        self.tokenizer = parts.tokenizer
        self.embed_dim = parts.embed_dim
        self.freeze()

    def is_single(self, item) -> bool:
        return _is_text(item)

    def preprocess(self, items: Sequence[str]) -> torch.Tensor:
        tokens = self.tokenizer(_check_texts(items))  # (B, context_length)
        return tokens.to(self.device)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model.encode_text(tokens, normalize=True)  # (B, D)


class OpenClipImageEncoder(PretrainedReference, Encoder):
    """Image → open_clip image embedding ``[B, embed_dim]``, normalised, with the model's own transform.

    ``name_or_path`` is as for ``OpenClipTextEncoder``. Images are PIL images, paths or encoded
    bytes, converted to RGB by ``load_image`` first.
    """

    modality = "image"

    def __init__(self, name_or_path: str | OpenClipParts, local_files_only: bool | None = None):
        super().__init__()
        parts = _open_clip_parts(name_or_path, local_files_only)
        self.model = parts.model
        self.transform = parts.transform
        self.embed_dim = parts.embed_dim
        self.freeze()

    def is_single(self, item) -> bool:
        return isinstance(item, (Image.Image, str, Path, bytes))

    def preprocess(self, items: Sequence[Any]) -> torch.Tensor:
        for item in items:
            if not isinstance(item, (Image.Image, str, os.PathLike, bytes)):
                raise ValueError(f"Images must be PIL images, paths or bytes, got {type(item).__name__}.")
        pixels = torch.stack([self.transform(load_image(item)) for item in items])  # (B, 3, H, W)
        return pixels.to(self.device)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(pixels, normalize=True)  # (B, D)


# --- transformers CLAP -------------------------------------------------------------------


@dataclass(frozen=True)
class ClapParts:
    """One loaded CLAP model with the tokenizer and feature extractor saved beside it."""

    model: ClapModel
    tokenizer: PreTrainedTokenizerBase
    feature_extractor: ClapFeatureExtractor
    source: str = ""  # the name or folder it was loaded from


def load_clap(name_or_path: str, local_files_only: bool | None = None) -> ClapParts:
    """Loads a transformers CLAP model, tokenizer and feature extractor from a folder or Hub repo id."""
    local = resolve_local_files_only(name_or_path, local_files_only)
    model = ClapModel.from_pretrained(name_or_path, local_files_only=local)
    tokenizer = AutoTokenizer.from_pretrained(name_or_path, local_files_only=local)
    feature_extractor = ClapFeatureExtractor.from_pretrained(name_or_path, local_files_only=local)
    return ClapParts(model.eval(), tokenizer, feature_extractor, name_or_path)


def _clap_parts(source: str | ClapParts, local_files_only: bool | None) -> ClapParts:
    return source if isinstance(source, ClapParts) else load_clap(source, local_files_only)


def _features(output: Any) -> torch.Tensor:
    # transformers 5 returns a model output whose pooler_output holds the projected features;
    # 4.x returned the tensor itself.
    return output if isinstance(output, torch.Tensor) else output.pooler_output


class ClapTextEncoder(PretrainedReference, Encoder):
    """Text → CLAP text embedding ``[B, projection_dim]``, normalised.

    ``name_or_path`` is a folder, a Hub repo id or parts loaded by ``load_clap`` (to share one
    model with ``ClapAudioEncoder``).
    """

    modality = "text"

    @register_to_config
    @register_to_config
    def __init__(self, name_or_path: str | ClapParts, local_files_only: bool | None = None):
        super().__init__()
        parts = _clap_parts(name_or_path, local_files_only)
        self.register_to_config(name_or_path=parts.source)  # a name, never the loaded parts
        self.register_to_config(name_or_path=parts.source)  # a name, never the loaded parts
        self.model = parts.model
        self.tokenizer = parts.tokenizer
        text_config = self.model.config.text_config
        # Roberta-style positions start after the padding index, so the longest text is shorter
        # than the position table.
        self.max_length = min(
            self.tokenizer.model_max_length, text_config.max_position_embeddings - text_config.pad_token_id - 1
        )
        self.embed_dim = int(self.model.config.projection_dim)
        self.freeze()

    def is_single(self, item) -> bool:
        return _is_text(item)

    def preprocess(self, items: Sequence[str]) -> dict[str, torch.Tensor]:
        tokens = self.tokenizer(
            _check_texts(items), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        # CLAP's text tower has one token type: pass only ids and mask.
        return {key: tokens[key].to(self.device) for key in ("input_ids", "attention_mask")}  # (B, T) each

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        features = _features(self.model.get_text_features(**inputs))  # (B, D)
        return F.normalize(features, dim=-1)


class ClapAudioEncoder(PretrainedReference, Encoder):
    """Sound → CLAP audio embedding ``[B, projection_dim]``, normalised.

    Sounds are ``(sample_rate, array)`` pairs or paths, checked by ``load_audio`` and resampled
    with librosa to the feature extractor's rate (48 kHz). Sounds longer than the extractor's
    window (``max_length_s``, 10 s) keep their first window and ``is_longer`` is always false:
    the extractor's random crops and random fusion flag would make embeddings change from call
    to call and depend on the rest of the batch.
    """

    modality = "audio"

    def __init__(self, name_or_path: str | ClapParts, local_files_only: bool | None = None):
        super().__init__()
        parts = _clap_parts(name_or_path, local_files_only)
        self.model = parts.model
        self.feature_extractor = parts.feature_extractor
        self.embed_dim = int(self.model.config.projection_dim)
        self.freeze()

    def is_single(self, item) -> bool:
        if isinstance(item, (str, os.PathLike)):
            return True
        return isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], (int, np.integer))

    def preprocess(self, items: Sequence[Any]) -> dict[str, torch.Tensor]:
        extractor = self.feature_extractor
        waveforms = [
            prepare_waveform(item, extractor.sampling_rate)[: extractor.nb_max_samples] for item in items
        ]
        features = extractor(waveforms, sampling_rate=extractor.sampling_rate, return_tensors="pt")
        input_features = features["input_features"].to(self.device, self.model.dtype)  # (B, C, frames, mels)
        is_longer = torch.zeros(len(waveforms), 1, dtype=torch.bool, device=self.device)  # (B, 1)
        return {"input_features": input_features, "is_longer": is_longer}

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        features = _features(self.model.get_audio_features(**inputs))  # (B, D)
        return F.normalize(features, dim=-1)
