"""The small interface every encoder shares: a modality, an embedding size, preprocessing, encode."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn

MODALITIES = ("text", "image", "audio")


class Encoder(nn.Module, ABC):
    """A frozen encoder from one modality's inputs to an embedding of size ``embed_dim``.

    ``encode`` takes one item or a list of items (raw user inputs: strings, PIL images or
    paths, ``(sample_rate, array)`` pairs or paths) and returns a ``[B, embed_dim]`` tensor;
    a single item gives ``B = 1``. ``preprocess`` turns items into model inputs and
    ``forward`` runs the network on them, so training code can batch preprocessed data.
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

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def freeze(self) -> Encoder:
        """Puts the encoder in eval mode with gradients off (pretrained encoders stay frozen)."""
        self.eval()
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        return self
