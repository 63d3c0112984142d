"""The early-fusion baseline: one VAE encoder over the concatenated embeddings.

Every modality's standardised embedding is concatenated, zeros standing in for a missing one,
together with one presence flag per modality; a single MLP maps that vector to ``q(z | x)``.
The decoders are those of the joint model (one MLP per modality). It is trained on the same
subsets as the joint model (all inputs, each one alone, random subsets), each reconstructing
every present embedding, so it too learns to fill in what is missing.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from ..fusion.joint import (
    DEFAULT_MODALITY_DIMS,
    FusedPosterior,
    JointLatentModel,
    StandardisedEmbeddings,
    WeightsInput,
    mlp,
)
from ..fusion.objectives import JointObjective, subset_elbo
from ..training.joint import train_joint_model
from ..training.loop import StageConfig, StageResult


class EarlyFusionVAE(StandardisedEmbeddings, ModelMixin, ConfigMixin):
    """Concatenation (zero-filled, with presence flags) → one Gaussian posterior; one decoder per modality."""

    @register_to_config
    def __init__(
        self,
        modality_dims: dict[str, int] | None = None,
        latent_dim: int = 64,
        hidden_dim: int = 512,
        num_layers: int = 2,
        logvar_min: float = -10.0,
        logvar_max: float = 6.0,
    ):
        super().__init__()
        dims = dict(sorted((modality_dims or DEFAULT_MODALITY_DIMS).items()))
        self.register_to_config(modality_dims=dims)
        self.encoder = mlp(sum(dims.values()) + len(dims), hidden_dim, 2 * latent_dim, num_layers)
        self.decoders = nn.ModuleDict({m: mlp(latent_dim, hidden_dim, d, num_layers) for m, d in dims.items()})
        self.register_embedding_stats(dims)

    def presence(self, embeddings: Mapping[str, torch.Tensor], weights: WeightsInput, batch: int) -> torch.Tensor:
        """``[M, B]`` 0/1: a modality counts as present where it is given with a positive weight."""
        rows = []
        for index, modality in enumerate(self.modalities):
            given = embeddings.get(modality) is not None
            if isinstance(weights, torch.Tensor):
                value = (weights[index] > 0).float() if given else torch.zeros(batch)
            else:
                value = torch.full((batch,), float(given and (weights or {}).get(modality, 1.0) > 0))
            rows.append(value.to(self.device, self.dtype))
        return torch.stack(rows)

    def forward(self, embeddings: Mapping[str, torch.Tensor], weights: WeightsInput = None) -> FusedPosterior:
        """Embeddings of any subset of modalities (``[B, D_m]`` each) → the posterior ``q(z | x)``.

        ``weights`` only marks presence here (a weight of 0 leaves an input out): concatenation
        has no way to weigh one input against another.
        """
        present_embeddings = {m: e for m, e in embeddings.items() if e is not None}
        unknown = set(present_embeddings) - set(self.modalities)
        if unknown or not present_embeddings:
            raise ValueError(f"Give embeddings of some of {list(self.modalities)}; got {sorted(embeddings)}.")
        batch = next(iter(present_embeddings.values())).shape[0]
        present = self.presence(present_embeddings, weights, batch)  # (M, B)
        parts = []
        for index, (modality, dim) in enumerate(self.config.modality_dims.items()):
            if modality in present_embeddings:
                value = self.standardise(modality, present_embeddings[modality].to(self.device, self.dtype))
                parts.append(value * present[index, :, None])  # a missing input is all zeros
            else:
                parts.append(torch.zeros(batch, dim, device=self.device, dtype=self.dtype))
        x = torch.cat([*parts, present.T], dim=-1)  # (B, sum D_m + M)
        mu, raw_logvar = self.encoder(x).chunk(2, dim=-1)
        low, high = self.config.logvar_min, self.config.logvar_max
        logvar = low + (high - low) * torch.sigmoid(raw_logvar)
        shares = {m: present[i] / present.sum(0).clamp(min=1) for i, m in enumerate(self.modalities)}
        return FusedPosterior(
            mu=mu, logvar=logvar, shares=shares, prior_share=torch.zeros(batch, device=mu.device),
            expert_mu=mu[None], expert_logvar=logvar[None], weights=present,
        )

    sample = staticmethod(JointLatentModel.sample)  # the same reparameterised draw


def early_fusion_loss(
    model: EarlyFusionVAE,
    embeddings: Mapping[str, torch.Tensor],
    present: torch.Tensor,
    objective: JointObjective | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """Negative ELBO averaged over the same input subsets the joint model trains on."""
    objective = objective or JointObjective()

    def posterior(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fused = model(embeddings, mask)
        return fused.mu, fused.logvar

    loss, reconstruction, kl = subset_elbo(model, posterior, embeddings, present, objective, generator)
    return {"loss": loss, "reconstruction": reconstruction, "kl": kl}


def train_early_fusion(
    model: EarlyFusionVAE,
    embeddings: Mapping[str, torch.Tensor],
    present: torch.Tensor,
    config: StageConfig,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    objective: JointObjective | None = None,
) -> StageResult:
    """Trains ``model`` exactly as ``train_joint_model`` trains the joint model (optimiser,
    clipping, resume), with the early-fusion loss."""
    return train_joint_model(model, embeddings, present, config, batch_size, learning_rate, objective, loss=early_fusion_loss)
