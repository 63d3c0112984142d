"""Turning one embedding into the cross-attention tokens that condition a diffusion UNet.

The projector also holds the learned *null* tokens used when the condition is dropped: in
training (so the UNet learns the unconditional score) and at sampling time for
classifier-free guidance (Ho & Salimans 2022).
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn


class EmbeddingProjector(ModelMixin, ConfigMixin):
    """Embedding ``[B, embed_dim]`` → ``num_tokens`` tokens ``[B, num_tokens, token_dim]``."""

    @register_to_config
    def __init__(self, embed_dim: int = 1280, num_tokens: int = 4, token_dim: int = 256, normalize_input: bool = True):
        super().__init__()
        self.norm = nn.LayerNorm(embed_dim) if normalize_input else nn.Identity()
        self.project = nn.Sequential(
            nn.Linear(embed_dim, token_dim * 2), nn.SiLU(), nn.Linear(token_dim * 2, num_tokens * token_dim)
        )
        self.null_tokens = nn.Parameter(torch.randn(num_tokens, token_dim) * 0.02)
        self.position = nn.Parameter(torch.randn(num_tokens, token_dim) * 0.02)

    def forward(self, embedding: torch.Tensor, drop: torch.Tensor | None = None) -> torch.Tensor:
        """Tokens for each embedding; rows where ``drop`` ``[B]`` is true get the null tokens."""
        if embedding.shape[-1] != self.config.embed_dim:
            raise ValueError(f"Expected {self.config.embed_dim}-d embeddings, got {embedding.shape[-1]}-d.")
        batch = embedding.shape[0]
        tokens = self.project(self.norm(embedding)).view(batch, self.config.num_tokens, -1) + self.position  # (B, K, C)
        if drop is not None:
            tokens = torch.where(drop.view(batch, 1, 1), self.null_tokens.expand_as(tokens), tokens)
        return tokens

    def null(self, batch: int) -> torch.Tensor:
        """The unconditional tokens ``[B, num_tokens, token_dim]``."""
        return self.null_tokens.unsqueeze(0).expand(batch, -1, -1)
