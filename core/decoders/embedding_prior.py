"""A diffusion prior from the joint latent to an output's embedding, the role of unCLIP's prior.

The joint model's embedding decoder predicts the *mean* embedding given ``z``. For a text
prompt that mean is an average over every image the text could describe, which lies between
real embeddings: the diffusion decoder, trained on real embeddings only, gets a condition it
has never seen. The prior instead *samples* an embedding ``e ~ p(e | z)`` by denoising
(DDPM, Ho et al. 2020; predicting the clean sample, as the prior of Ramesh et al. 2022,
"Hierarchical Text-Conditional Image Generation with CLIP Latents", does), so the decoder
gets an embedding from the manifold it was trained on.

It denoises in the leading principal components of the training embeddings (whitened), which
keeps it small: a 1280-d EfficientNet embedding is mostly described by its first hundred or so
components. The condition is dropped in training with probability ``drop_probability``, so the
same network gives the unconditional prediction that classifier-free guidance needs.
"""

from __future__ import annotations

import math

import torch
from diffusers import DDIMScheduler, DDPMScheduler
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from ..fusion.joint import stream_generator

PRIOR_STREAM = 1  # the prior's noise comes from its own stream of each call's seed (see stream_generator)


def prior_generators(seeds: list[int]) -> list[torch.Generator]:
    """One generator per seed for the prior's draws, apart from the decoders' streams of the same seeds."""
    return [stream_generator(seed, PRIOR_STREAM) for seed in seeds]


def timestep_features(timesteps: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features ``[B, dim]`` of integer timesteps ``[B]`` (as in the Transformer)."""
    half = dim // 2
    frequencies = torch.exp(-math.log(10000.0) * torch.arange(half, device=timesteps.device) / half)
    angles = timesteps.float()[:, None] * frequencies[None]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class PriorBlock(nn.Module):
    """A residual MLP block whose hidden layer is shifted and scaled by the condition."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.modulation = nn.Linear(dim, 2 * dim)
        self.inner = nn.Linear(dim, dim)
        self.outer = nn.Linear(dim, dim)
        nn.init.zeros_(self.outer.weight)  # each block starts as the identity
        nn.init.zeros_(self.outer.bias)

    def forward(self, hidden: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        scale, shift = self.modulation(condition).chunk(2, dim=-1)
        inner = torch.nn.functional.silu(self.inner(self.norm(hidden)) * (1 + scale) + shift)
        return hidden + self.outer(inner)


def valid_temperature(value) -> bool:
    """Whether ``value`` can scale the prior's starting noise: above 0 (0 would draw every
    prompt's one point), at most 2."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= 2


class EmbeddingPrior(ModelMixin, ConfigMixin):
    """``p(e | z)``: a denoiser over the whitened leading principal components of an embedding.

    Call ``fit_basis`` on training embeddings before training; the basis, mean and scales are
    buffers saved with the weights.
    """

    @register_to_config
    def __init__(
        self,
        embed_dim: int = 1280,
        condition_dim: int = 64,
        components: int = 128,
        hidden_dim: int = 256,
        num_layers: int = 4,
        num_train_timesteps: int = 1000,
    ):
        super().__init__()
        if components > embed_dim:
            raise ValueError(f"components ({components}) cannot exceed embed_dim ({embed_dim}).")
        self.register_buffer("embedding_mean", torch.zeros(embed_dim))
        self.register_buffer("basis", torch.eye(embed_dim, components))  # (D, K), orthonormal columns
        self.register_buffer("scales", torch.ones(components))  # each component's standard deviation
        self.project_in = nn.Linear(components, hidden_dim)
        self.project_condition = nn.Linear(condition_dim, hidden_dim)
        self.null_condition = nn.Parameter(torch.zeros(hidden_dim))
        self.project_time = nn.Sequential(nn.Linear(hidden_dim, hidden_dim), nn.SiLU())
        self.blocks = nn.ModuleList(PriorBlock(hidden_dim) for _ in range(num_layers))
        self.norm_out = nn.LayerNorm(hidden_dim)
        self.project_out = nn.Linear(hidden_dim, components)

    # --- the space it denoises in ---------------------------------------------------------

    @torch.no_grad()
    def fit_basis(self, embeddings: torch.Tensor) -> float:
        """Sets the mean and the leading principal components from ``[N, D]`` training
        embeddings; returns the share of their variance the components keep."""
        embeddings = embeddings.float()
        mean = embeddings.mean(0)
        centred = embeddings - mean
        _, singular, right = torch.linalg.svd(centred, full_matrices=False)
        count = min(self.config.components, len(singular))  # fewer samples than components: the rest stay zero
        self.embedding_mean.copy_(mean)
        self.basis.zero_()
        self.basis[:, :count] = right[:count].T
        self.scales.fill_(1.0)
        self.scales[:count] = (singular[:count] / math.sqrt(max(len(embeddings) - 1, 1))).clamp(min=1e-6)
        return float((singular[:count] ** 2).sum() / (singular**2).sum().clamp(min=1e-12))

    def to_components(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Embeddings ``[B, D]`` → whitened component coordinates ``[B, K]``."""
        return (embeddings.to(self.basis.dtype) - self.embedding_mean) @ self.basis / self.scales

    def from_components(self, coordinates: torch.Tensor) -> torch.Tensor:
        """Whitened coordinates ``[B, K]`` → embeddings ``[B, D]`` (in the components' span)."""
        return (coordinates * self.scales) @ self.basis.T + self.embedding_mean

    # --- the denoiser ---------------------------------------------------------------------

    def forward(self, noisy: torch.Tensor, timesteps: torch.Tensor, condition: torch.Tensor, drop: torch.Tensor | None = None) -> torch.Tensor:
        """The clean coordinates ``[B, K]`` predicted from ``noisy [B, K]`` at ``timesteps [B]``
        given ``condition [B, condition_dim]``; rows where ``drop [B]`` is true are unconditional."""
        batch = noisy.shape[0]
        conditioned = self.project_condition(condition.to(noisy.dtype))
        if drop is not None:
            conditioned = torch.where(drop.view(batch, 1), self.null_condition.expand_as(conditioned), conditioned)
        timesteps = timesteps.expand(batch) if timesteps.ndim == 0 or timesteps.numel() == 1 else timesteps
        context = conditioned + self.project_time(timestep_features(timesteps, self.config.hidden_dim).to(noisy.dtype))
        hidden = self.project_in(noisy)
        for block in self.blocks:
            hidden = block(hidden, context)
        return self.project_out(self.norm_out(hidden))

    def noise_schedule(self) -> DDPMScheduler:
        """The forward process the prior is trained with (cosine betas, clean-sample prediction)."""
        return DDPMScheduler(
            num_train_timesteps=self.config.num_train_timesteps, beta_schedule="squaredcos_cap_v2",
            prediction_type="sample", clip_sample=False,
        )

    def loss(self, embeddings: torch.Tensor, condition: torch.Tensor, drop_probability: float = 0.1, generator: torch.Generator | None = None) -> torch.Tensor:
        """Mean squared error of the predicted clean coordinates of ``embeddings [B, D]``."""
        clean = self.to_components(embeddings)
        batch, device = clean.shape[0], clean.device
        schedule = self.noise_schedule()
        noise = torch.randn(clean.shape, generator=generator, device=device)
        timesteps = torch.randint(0, schedule.config.num_train_timesteps, (batch,), generator=generator, device=device)
        noisy = schedule.add_noise(clean, noise, timesteps)
        drop = torch.rand(batch, generator=generator, device=device) < drop_probability
        return torch.nn.functional.mse_loss(self(noisy, timesteps, condition, drop), clean)

    @torch.no_grad()
    def sample(
        self, condition: torch.Tensor, generators: list[torch.Generator], steps: int = 25, guidance: float = 1.0, outside: torch.Tensor | None = None,
        temperature: float = 1.0,
    ) -> torch.Tensor:
        """One embedding ``[N, D]`` per row of ``condition [N, condition_dim]``, each drawn with its
        own generator (so a row replays on its own), by DDIM with classifier-free ``guidance``.

        The draw lies in the components' span; ``outside [N, D]`` (the joint model's decoded mean,
        say) gives the part of each embedding outside it, which the prior does not model. A
        ``temperature`` below 1 starts from smaller noise, which draws closer to the modes."""
        if len(generators) != condition.shape[0]:
            raise ValueError(f"{condition.shape[0]} conditions but {len(generators)} generators.")
        if steps < 1:
            raise ValueError(f"The prior needs at least one step, got {steps}.")
        count, components = condition.shape[0], self.config.components
        coordinates = temperature * torch.stack([torch.randn(components, generator=g) for g in generators]).to(self.device, self.dtype)
        scheduler = DDIMScheduler.from_config(self.noise_schedule().config)
        scheduler.set_timesteps(steps, device=self.device)
        condition = condition.to(self.device, self.dtype)
        guided = guidance != 1.0
        drop = torch.cat([torch.ones(count, dtype=torch.bool), torch.zeros(count, dtype=torch.bool)]).to(self.device) if guided else None
        for timestep in scheduler.timesteps:
            if guided:
                unconditional, conditional = self(coordinates.repeat(2, 1), timestep, condition.repeat(2, 1), drop).chunk(2)
                prediction = unconditional + guidance * (conditional - unconditional)
            else:
                prediction = self(coordinates, timestep, condition)
            coordinates = scheduler.step(prediction, timestep, coordinates, eta=0.0).prev_sample
        drawn = self.from_components(coordinates)
        if outside is None:
            return drawn
        rest = outside.to(drawn) - self.embedding_mean
        return drawn + rest - (rest @ self.basis) @ self.basis.T
