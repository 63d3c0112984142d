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


class ComponentSpace(ModelMixin):
    """The whitened leading principal components of training embeddings, in which an image
    prior works: buffers ``embedding_mean [D]``, ``basis [D, K]`` (orthonormal columns) and
    ``scales [K]``, saved with the weights."""

    def register_space(self, embed_dim: int, components: int) -> None:
        if components > embed_dim:
            raise ValueError(f"components ({components}) cannot exceed embed_dim ({embed_dim}).")
        self.register_buffer("embedding_mean", torch.zeros(embed_dim))
        self.register_buffer("basis", torch.eye(embed_dim, components))
        self.register_buffer("scales", torch.ones(components))  # each component's standard deviation

    @torch.no_grad()
    def fit_basis(self, embeddings: torch.Tensor) -> float:
        """Sets the mean and the leading principal components from ``[N, D]`` training
        embeddings; returns the share of their variance the components keep."""
        embeddings = embeddings.float()
        mean = embeddings.mean(0)
        centred = embeddings - mean
        _, singular, right = torch.linalg.svd(centred, full_matrices=False)
        count = min(self.basis.shape[1], len(singular))  # fewer samples than components: the rest stay zero
        self.embedding_mean.copy_(mean)
        self.basis.zero_()
        self.basis[:, :count] = right[:count].T
        self.scales.fill_(1.0)
        self.scales[:count] = (singular[:count] / math.sqrt(max(len(embeddings) - 1, 1))).clamp(min=1e-6)
        return float((singular[:count] ** 2).sum() / (singular**2).sum().clamp(min=1e-12))

    def to_components(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Embeddings ``[B, D]`` → whitened component coordinates ``[B, K]``."""
        return (embeddings.to(self.basis.dtype) - self.embedding_mean) @ self.basis / self.scales

    def directions(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Unit vectors ``[B, K]`` of embeddings in the whitened components, whose dot products are
        the cosines the bank compares by."""
        return torch.nn.functional.normalize(self.to_components(embeddings).float(), dim=-1)

    def from_components(self, coordinates: torch.Tensor) -> torch.Tensor:
        """Whitened coordinates ``[B, K]`` → embeddings ``[B, D]`` (in the components' span)."""
        return (coordinates * self.scales) @ self.basis.T + self.embedding_mean

    def with_outside(self, drawn: torch.Tensor, outside: torch.Tensor | None) -> torch.Tensor:
        """``drawn [N, D]`` (in the components' span) with the part of ``outside [N, D]`` that
        lies outside it, which the components do not model; ``drawn`` alone without ``outside``."""
        if outside is None:
            return drawn
        rest = outside.to(drawn) - self.embedding_mean
        return drawn + rest - (rest @ self.basis) @ self.basis.T


class EmbeddingPrior(ComponentSpace, ConfigMixin):
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
        self.register_space(embed_dim, components)
        self.project_in = nn.Linear(components, hidden_dim)
        self.project_condition = nn.Linear(condition_dim, hidden_dim)
        self.null_condition = nn.Parameter(torch.zeros(hidden_dim))
        self.project_time = nn.Sequential(nn.Linear(hidden_dim, hidden_dim), nn.SiLU())
        self.blocks = nn.ModuleList(PriorBlock(hidden_dim) for _ in range(num_layers))
        self.norm_out = nn.LayerNorm(hidden_dim)
        self.project_out = nn.Linear(hidden_dim, components)

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
        return self.with_outside(self.from_components(coordinates), outside)


class EmbeddingBank(ComponentSpace, ConfigMixin):
    """``p(e | z)`` by retrieval: the real training embedding nearest to the joint model's
    decoded mean (cosine, in the whitened components), instead of the mean itself.

    The diffusion decoder was trained on real embeddings only and draws them well, while the
    decoded mean of a text lies between real embeddings, where it draws a blur. Snapping the
    mean to its nearest training embedding (as retrieval-augmented diffusion conditions on
    nearest neighbours: Blattmann et al. 2022, "Retrieval-Augmented Diffusion Models"; Sheynin
    et al. 2022, "kNN-Diffusion") gives the decoder a condition from its own manifold. The cost:
    an image can only be a new drawing of a kind of picture the training set holds, so a prompt
    that describes something no training image shows gets the nearest thing that one does.

    The bank keeps each training embedding's whitened coordinates as int8 codes (one scale per
    component): about ``K`` bytes an entry. Near-duplicates are kept once. ``candidates`` above
    1 draws among the nearest few, by each row's generator, for more varied variants.
    """

    @register_to_config
    def __init__(self, embed_dim: int = 1280, components: int = 128, size: int = 1, candidates: int = 1):
        super().__init__()
        if size < 1 or candidates < 1:
            raise ValueError(f"A bank needs at least one entry and one candidate, got size {size}, candidates {candidates}.")
        self.register_space(embed_dim, components)
        self.register_buffer("code_scales", torch.ones(components))  # whitened coordinate = code / 127 * scale
        self.register_buffer("codes", torch.zeros(size, components, dtype=torch.int8))

    @classmethod
    @torch.no_grad()
    def from_embeddings(cls, embeddings: torch.Tensor, components: int = 128, candidates: int = 1, duplicate_cosine: float = 0.99) -> EmbeddingBank:
        """A bank of the distinct rows of ``embeddings [N, D]``: a row whose cosine with an
        earlier one exceeds ``duplicate_cosine`` in the whitened components is left out."""
        embeddings = embeddings.float()
        if len(embeddings) == 0 or not torch.isfinite(embeddings).all():
            raise ValueError("A bank needs at least one embedding, all finite.")
        space = cls(embed_dim=embeddings.shape[1], components=components)
        space.fit_basis(embeddings)
        coordinates = space.to_components(embeddings)
        unit = space.directions(embeddings)
        twin = torch.zeros(len(unit), dtype=torch.bool)
        for start in range(0, len(unit), 1024):  # a row is a twin of an earlier one: [chunk, N] at a time
            similar = unit[start : start + 1024] @ unit.T > duplicate_cosine
            earlier = torch.arange(len(unit))[None] < torch.arange(start, start + len(similar))[:, None]
            twin[start : start + len(similar)] = (similar & earlier).any(dim=1)
        kept = coordinates[~twin]
        bank = cls(embed_dim=embeddings.shape[1], components=components, size=len(kept), candidates=candidates)
        bank.load_state_dict(space.state_dict() | {"codes": bank.codes, "code_scales": bank.code_scales})
        bank.code_scales.copy_(kept.abs().amax(0).clamp(min=1e-6))
        bank.codes.copy_(torch.round(kept / bank.code_scales * 127).clamp(-127, 127).to(torch.int8))
        return bank

    def entries(self) -> torch.Tensor:
        """The whitened coordinates ``[size, K]`` of every entry."""
        return self.codes.to(self.code_scales.dtype) / 127 * self.code_scales

    @torch.no_grad()
    def sample(
        self, condition: torch.Tensor, generators: list[torch.Generator], steps: int = 25, guidance: float = 1.0, outside: torch.Tensor | None = None,
        temperature: float = 1.0,
    ) -> torch.Tensor:
        """The entry nearest to each row of ``outside [N, D]`` (the joint model's decoded mean; it
        is required), or one of the ``candidates`` nearest drawn by row i's generator, with the
        decoded mean's part outside the components. Takes the diffusion prior's arguments;
        ``steps``, ``guidance`` and ``temperature`` have no use here."""
        if outside is None:
            raise ValueError("The bank retrieves by the decoded mean: pass it as outside.")
        if len(generators) != len(outside):
            raise ValueError(f"{len(outside)} embeddings but {len(generators)} generators.")
        entries = self.entries().float()
        similarity = self.directions(outside.to(self.basis.device)) @ torch.nn.functional.normalize(entries, dim=-1).T
        nearest = similarity.topk(min(self.config.candidates, len(entries)), dim=-1).indices  # [N, k]
        if nearest.shape[1] > 1:
            picks = torch.stack([row[torch.randint(len(row), (1,), generator=g)[0]] for row, g in zip(nearest, generators, strict=True)])
        else:
            picks = nearest[:, 0]
        return self.with_outside(self.from_components(entries[picks].to(self.basis.dtype)), outside)
