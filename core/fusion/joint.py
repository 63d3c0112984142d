"""The joint latent model: a multimodal VAE over frozen encoder embeddings.

Each modality has a posterior head ``e_m → (mu_m, logvar_m)`` and an embedding decoder
``z → e_m``. Experts are fused by the configured rule (weighted product of experts with the
prior by default), so any subset of inputs, each with a weight, gives one posterior over
``z``. Embeddings are standardised with per-modality statistics kept as buffers (set them
from training data with ``set_embedding_stats``), so modalities of different scales train
side by side and the statistics travel with the weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from torch import nn

from .experts import FUSIONS, expert_shares, subset_masks, valid_subsets

DEFAULT_MODALITY_DIMS = {"text": 384, "image": 1280, "audio": 384}
LATENT_STREAM = 2  # the stream of latent draws (see stream_generator)

def stream_generator(seed: int, stream: int) -> torch.Generator:
    """A generator for one call's ``seed`` on its own ``stream`` (1: the image prior's draws, 2:
    latent draws), apart from the decoders' generator seeded with ``seed`` itself. The CPU
    generator keeps only a seed's low 32 bits, so an offset such as ``seed + 2**32`` would give
    the decoders' very stream; numpy's SeedSequence mixes the pair into a 32-bit seed instead."""
    return torch.Generator().manual_seed(int(np.random.SeedSequence([int(seed), stream]).generate_state(1)[0]))


WeightsInput = Mapping[str, float | torch.Tensor] | torch.Tensor | None


@dataclass
class FusedPosterior(BaseOutput):
    """The fused posterior over the joint latent and how much each input pulled on it.

    Attributes:
        mu, logvar: ``[B, latent_dim]`` fused Gaussian.
        shares: modality → ``[B]`` share of the fused posterior (0 when missing).
        prior_share: ``[B]`` the prior's share; with the shares it sums to 1.
        expert_mu, expert_logvar: ``[M, B, latent_dim]`` each modality's own expert.
        weights: ``[M, B]`` the weights used (0 = missing), in ``modalities`` order.
    """

    mu: torch.Tensor
    logvar: torch.Tensor
    shares: dict[str, torch.Tensor]
    prior_share: torch.Tensor
    expert_mu: torch.Tensor
    expert_logvar: torch.Tensor
    weights: torch.Tensor


def mlp(in_dim: int, hidden_dim: int, out_dim: int, num_layers: int) -> nn.Sequential:
    """``num_layers`` hidden layers of Linear + LayerNorm + SiLU, then a Linear to ``out_dim``."""
    layers: list[nn.Module] = []
    for index in range(num_layers):
        layers += [nn.Linear(in_dim if index == 0 else hidden_dim, hidden_dim), nn.LayerNorm(hidden_dim), nn.SiLU()]
    layers.append(nn.Linear(hidden_dim if num_layers else in_dim, out_dim))
    return nn.Sequential(*layers)


class StandardisedEmbeddings:
    """Per-modality mean and std buffers (saved with the weights), the maps in and out of
    standardised units, and ``decode``; for models whose config holds ``modality_dims`` and
    whose ``decoders`` map a latent to each modality's standardised embedding."""

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.config.modality_dims)

    def register_embedding_stats(self, dims: dict[str, int]) -> None:
        for modality, dim in dims.items():
            self.register_buffer(f"{modality}_mean", torch.zeros(dim))
            self.register_buffer(f"{modality}_std", torch.ones(dim))

    @torch.no_grad()
    def set_embedding_stats(self, modality: str, embeddings: torch.Tensor) -> None:
        """Sets the standardisation of ``modality`` from a ``[N, D]`` sample of its embeddings."""
        getattr(self, f"{modality}_mean").copy_(embeddings.mean(0))
        getattr(self, f"{modality}_std").copy_(embeddings.std(0).clamp(min=1e-4))

    def standardise(self, modality: str, embedding: torch.Tensor) -> torch.Tensor:
        return (embedding - getattr(self, f"{modality}_mean")) / getattr(self, f"{modality}_std")

    def unstandardise(self, modality: str, standardised: torch.Tensor) -> torch.Tensor:
        return standardised * getattr(self, f"{modality}_std") + getattr(self, f"{modality}_mean")

    def decode(self, z: torch.Tensor, modality: str) -> torch.Tensor:
        """Latent ``[B, Z]`` → predicted embedding of ``modality`` ``[B, D_m]``."""
        return self.unstandardise(modality, self.decoders[modality](z))


class JointLatentModel(StandardisedEmbeddings, ModelMixin, ConfigMixin):
    """Multimodal VAE: posterior heads, embedding decoders and a fusion rule, for named modalities."""

    @register_to_config
    def __init__(
        self,
        modality_dims: dict[str, int] | None = None,
        latent_dim: int = 64,
        hidden_dim: int = 512,
        num_layers: int = 2,
        fusion: str = "poe",
        logvar_min: float = -10.0,
        logvar_max: float = 6.0,
    ):
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"Unknown fusion {fusion!r}; choose one of {sorted(FUSIONS)}.")
        dims = dict(sorted((modality_dims or DEFAULT_MODALITY_DIMS).items()))  # a stable order
        self.register_to_config(modality_dims=dims)
        self.heads = nn.ModuleDict({m: mlp(d, hidden_dim, 2 * latent_dim, num_layers) for m, d in dims.items()})
        self.decoders = nn.ModuleDict({m: mlp(latent_dim, hidden_dim, d, num_layers) for m, d in dims.items()})
        self.register_embedding_stats(dims)

    # --- posterior ------------------------------------------------------------------------

    def expert(self, modality: str, embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One modality's Gaussian expert ``q(z | e_m)``: ``(mu, logvar)`` of ``[B, latent_dim]``."""
        if modality not in self.heads:
            raise ValueError(f"Unknown modality {modality!r}; this model knows {list(self.modalities)}.")
        mu, raw_logvar = self.heads[modality](self.standardise(modality, embedding)).chunk(2, dim=-1)
        low, high = self.config.logvar_min, self.config.logvar_max
        return mu, low + (high - low) * torch.sigmoid(raw_logvar)  # soft bounds keep training stable

    def experts(
        self, embeddings: Mapping[str, torch.Tensor], weights: WeightsInput = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """All experts stacked in ``modalities`` order: ``mu, logvar [M, B, Z]`` and ``weights [M, B]``.

        Missing modalities get zeros and weight 0. ``weights`` is a mapping modality → float or
        ``[B]`` tensor (default 1 for each present modality), or an ``[M, B]`` tensor.
        """
        present = {m: e for m, e in embeddings.items() if e is not None}
        unknown = set(present) - set(self.modalities)
        if unknown:
            raise ValueError(f"Unknown modalities {sorted(unknown)}; this model knows {list(self.modalities)}.")
        if not present:
            raise ValueError("Give at least one embedding to fuse.")
        reference = next(iter(present.values()))
        batch, latent = reference.shape[0], self.config.latent_dim
        mus, logvars = [], []
        for modality in self.modalities:
            if modality in present:
                mu, logvar = self.expert(modality, present[modality].to(reference.device, self.dtype))
            else:
                mu = logvar = reference.new_zeros(batch, latent, dtype=self.dtype)
            mus.append(mu)
            logvars.append(logvar)
        return torch.stack(mus), torch.stack(logvars), self._weights(weights, present, batch, reference)

    def _weights(self, weights: WeightsInput, present: Mapping, batch: int, reference: torch.Tensor) -> torch.Tensor:
        if isinstance(weights, torch.Tensor):
            return weights.to(reference.device, self.dtype)
        weights = weights or {}
        rows = []
        for modality in self.modalities:
            value = weights.get(modality, 1.0) if modality in present else 0.0
            rows.append(torch.as_tensor(value, dtype=self.dtype, device=reference.device).expand(batch))
        stacked = torch.stack(rows)  # (M, B)
        if not torch.isfinite(stacked).all() or (stacked < 0).any():
            raise ValueError(f"Weights must be finite and non-negative, got {dict(weights)}.")
        return stacked

    def fuse(self, mu: torch.Tensor, logvar: torch.Tensor, weights: torch.Tensor) -> FusedPosterior:
        """Fuses stacked experts ``[M, B, Z]`` with weights ``[M, B]`` by the configured rule."""
        fused_mu, fused_logvar = FUSIONS[self.config.fusion](mu, logvar, weights)
        shares, prior_share = self._shares(logvar, weights)
        return FusedPosterior(
            mu=fused_mu,
            logvar=fused_logvar,
            shares={m: shares[i] for i, m in enumerate(self.modalities)},
            prior_share=prior_share,
            expert_mu=mu,
            expert_logvar=logvar,
            weights=weights,
        )

    def _shares(self, logvar: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.config.fusion == "poe":
            return expert_shares(logvar, weights)
        if self.config.fusion == "moe":  # the mixture weights; the prior only where nothing is present
            total = weights.sum(0)
            return weights / total.clamp(min=1e-30), (total == 0).to(weights.dtype)
        # mopoe: the product-of-experts shares, averaged over the valid subsets
        masks = subset_masks(logvar.shape[0]).to(logvar)  # (S, M)
        valid = valid_subsets(masks, weights)  # (S, B)
        shares, priors = zip(*[expert_shares(logvar, weights * mask.unsqueeze(-1)) for mask in masks], strict=True)
        pi = valid.to(logvar.dtype) / valid.sum(0).clamp(min=1)  # (S, B)
        prior = (pi * torch.stack(priors)).sum(0) + (valid.sum(0) == 0).to(logvar.dtype)
        return torch.einsum("sb,smb->mb", pi, torch.stack(shares)), prior

    def forward(self, embeddings: Mapping[str, torch.Tensor], weights: WeightsInput = None) -> FusedPosterior:
        """Embeddings of any subset of modalities (``[B, D_m]`` each) → the fused posterior."""
        return self.fuse(*self.experts(embeddings, weights))

    # --- decoding -------------------------------------------------------------------------

    @staticmethod
    def draw(mu: torch.Tensor, logvar: torch.Tensor, temperature: float, seeds: list[int]) -> torch.Tensor:
        """Latents ``[N, Z]`` drawn from posteriors ``[N, Z]`` (or one ``[1, Z]``, for N seeds) at
        ``temperature``: ``mu + temperature * sigma * eps``, row i's noise from ``seeds[i]`` on a
        stream apart from the decoders' and the prior's; temperature 0 gives the means."""
        mu, logvar = mu.expand(len(seeds), -1), logvar.expand(len(seeds), -1)
        if temperature == 0:
            return mu
        noise = torch.stack([torch.randn(mu.shape[1], generator=stream_generator(s, LATENT_STREAM)) for s in seeds])
        return mu + temperature * (0.5 * logvar).exp() * noise.to(mu.device, mu.dtype)

    @staticmethod
    def sample(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A reparameterised sample ``mu + sigma * eps``."""
        noise = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + (0.5 * logvar).exp() * noise
