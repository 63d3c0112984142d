"""The small interface every encoder shares: a modality, an embedding size, preprocessing, encode."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from diffusers.configuration_utils import ConfigMixin
from diffusers.models.modeling_utils import ModelMixin

MODALITIES = ("text", "image", "audio")


class Encoder(ModelMixin, ConfigMixin, ABC):
    """A frozen encoder from one modality's inputs to an embedding of size ``embed_dim``.

    ``encode`` takes one item or a list of items (raw user inputs: strings, PIL images or
    paths, ``(sample_rate, array)`` pairs or paths) and returns a ``[B, embed_dim]`` tensor;
    a single item gives ``B = 1``. ``preprocess`` turns items into model inputs and
    ``forward`` runs the network on them, so training code can batch preprocessed data.
    Encoders are diffusers models: their constructor arguments are their config, and they
    save and load with ``save_pretrained`` / ``from_pretrained``.
    """

    modality: ClassVar[str]
    embed_dim: int

    @abstractmethod
    def is_single(self, item: Any) -> bool:
        """Whether ``item`` is one input (rather than a list of inputs)."""

    @abstractmethod
    def preprocess(self, items: Sequence[Any]) -> Any:
        """Turns a list of raw inputs into the network's inputs, on this encoder's device."""

    @abstractmethod
    def forward(self, inputs: Any) -> torch.Tensor:
        """Runs the network on preprocessed inputs: ``[B, embed_dim]``."""

    @torch.no_grad()
    def encode(self, batch: Any) -> torch.Tensor:
        """Embeds one input or a list of inputs: ``[B, embed_dim]`` float32."""
        if self.is_single(batch):
            items = [batch]
        elif isinstance(batch, (list, tuple)):
            items = list(batch)
        else:
            raise ValueError(f"Cannot encode a {type(batch).__name__} as {self.modality}; pass one input or a list.")
        if not items:
            raise ValueError(f"Nothing to encode: the {self.modality} batch is empty.")
        return self(self.preprocess(items)).float()

    def freeze(self) -> Encoder:
        """Puts the encoder in eval mode with gradients off (pretrained encoders stay frozen)."""
        self.eval()
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        return self


class PretrainedReference:
    """For encoders whose weights come from a package or the Hub by name (put it first in the bases).

    ``save_pretrained`` writes only ``config.json`` (the name to load from), and
    ``from_pretrained`` rebuilds the encoder from it: a preset refers to MiniLM or CLIP instead
    of copying hundreds of megabytes it did not train.
    """

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs: Any) -> None:
        os.makedirs(save_directory, exist_ok=True)
        self.save_config(save_directory)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any):
        dtype = kwargs.get("torch_dtype") or kwargs.get("dtype")
        encoder = cls.from_config(cls.load_config(pretrained_model_name_or_path))
        return encoder.to(dtype) if isinstance(dtype, torch.dtype) and dtype != encoder.dtype else encoder
