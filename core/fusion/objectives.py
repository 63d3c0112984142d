"""Training objectives of the joint latent model, apart from the network.

- ELBO over sampled subsets of the present modalities (as in MVAE's sub-sampled training and
  MoPoE): each subset's fused posterior must reconstruct *all* present embeddings, so the
  model learns to fill in missing modalities;
- cross-modal reconstruction: each single modality's posterior mean decodes to the others;
- optional contrastive alignment (InfoNCE) of the single-modality posterior means;
- optional input noise: experts see corrupted embeddings while the targets stay clean (a
  denoising objective), so each expert learns to lower its precision on inputs that look
  noisy and the product of experts leans on the clean ones. With ``clean_alignment`` only the
  ELBO sees the noise; the cross-modal and contrastive terms, which train each modality's
  prediction of the others, keep the clean inputs.

``embeddings`` maps each modality to ``[B, D_m]`` (zeros where an item lacks it, never NaN),
``present`` is ``[M, B]`` with 1 where item ``b`` has modality ``m``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .experts import FUSIONS
from .joint import JointLatentModel


@dataclass
class JointObjective:
    """Coefficients of the joint model's loss."""

    beta: float = 1.0  # weight of the KL term of the ELBO
    reconstruction_scale: float = 1.0  # times the Gaussian negative log-likelihood, summed over dimensions
    num_random_subsets: int = 1  # random subsets per step, beside the full set and each single modality
    cross_modal: float = 1.0  # weight of the deterministic cross-modal reconstruction term
    contrastive: float = 0.0  # weight of InfoNCE alignment between single-modality posteriors
    temperature: float = 0.1
    input_noise: float = 0.0  # the largest input noise, in training standard deviations (0: none)
    noisy_fraction: float = 0.5  # share of each modality's inputs corrupted when input_noise > 0
    clean_alignment: bool = False  # cross-modal and contrastive terms from the clean inputs (the noise trains the ELBO alone)
    text_noise: float = 1.0  # the text inputs' noise level as a share of input_noise (0: clean text, noise on images and sounds only)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, exp(logvar)) || N(0, I))`` summed over dimensions: ``[B]``."""
    return 0.5 * (logvar.exp() + mu.square() - 1.0 - logvar).sum(-1)


def reconstruction_error(
    model: JointLatentModel, z: torch.Tensor, embeddings: Mapping[str, torch.Tensor], present: torch.Tensor
) -> torch.Tensor:
    """Negative log-likelihood (up to a constant) of every present embedding decoded from ``z``
    under a unit-variance Gaussian in standardised units, ``0.5 * sum((decoded - target)^2)``: ``[B]``.

    Summed, not averaged, over dimensions: that is the likelihood the ELBO's KL is measured
    against. With a per-dimension mean the KL outweighs reconstruction on real embeddings
    (hundreds of noisy dimensions) and the posterior collapses onto the prior.
    """
    total = z.new_zeros(z.shape[0])
    for index, modality in enumerate(model.modalities):
        if modality in embeddings:
            target = model.standardise(modality, embeddings[modality])
            error = 0.5 * (model.decoders[modality](z) - target).square().sum(-1)  # (B,)
            total = total + present[index] * error
    return total


def training_subsets(present: torch.Tensor, num_random: int, generator: torch.Generator | None) -> list[torch.Tensor]:
    """Masks ``[M, B]`` to fuse: all present modalities, each one alone, and ``num_random`` random subsets."""
    singles = [present * F.one_hot(torch.tensor(m), present.shape[0]).to(present).unsqueeze(-1) for m in range(present.shape[0])]
    randoms = [
        present * (torch.rand(present.shape, generator=generator, device=present.device) < 0.5).to(present)
        for _ in range(num_random)
    ]
    return [present, *singles, *randoms]


def subset_elbo(
    model,
    posterior: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    embeddings: Mapping[str, torch.Tensor],
    present: torch.Tensor,
    objective: JointObjective,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Negative ELBO averaged over ``training_subsets`` and items: ``(loss, reconstruction, kl)``.

    ``posterior(mask)`` gives ``(mu, logvar)`` from the inputs in ``mask [M, B]``; ``model``
    decodes (``decoders``, ``standardise``, ``sample``). Shared by the joint model and the
    early-fusion baseline, so both train on the same subsets and terms.
    """
    reconstructions, kls, counts = [], [], []
    for mask in training_subsets(present, objective.num_random_subsets, generator):
        valid = (mask.sum(0) > 0).to(present.dtype)  # (B,): items with at least one input in the subset
        mu, logvar = posterior(mask)
        z = model.sample(mu, logvar, generator)
        reconstructions.append((valid * reconstruction_error(model, z, embeddings, present)).sum())
        kls.append((valid * gaussian_kl(mu, logvar)).sum())
        counts.append(valid.sum())
    count = torch.stack(counts).sum().clamp(min=1)
    reconstruction = torch.stack(reconstructions).sum() / count * objective.reconstruction_scale
    kl = torch.stack(kls).sum() / count
    return reconstruction + objective.beta * kl, reconstruction, kl


def elbo_loss(
    model: JointLatentModel,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    embeddings: Mapping[str, torch.Tensor],
    present: torch.Tensor,
    objective: JointObjective,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The joint model's negative ELBO: each subset's experts fused by its rule."""
    fuse = FUSIONS[model.config.fusion]
    return subset_elbo(model, lambda mask: fuse(mu, logvar, mask), embeddings, present, objective, generator)


def single_posterior_means(model: JointLatentModel, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Each modality's expert fused with the prior alone: means ``[M, B, Z]``."""
    one = torch.ones_like(mu[:1, :, 0])  # (1, B)
    return torch.stack([FUSIONS["poe"](mu[m : m + 1], logvar[m : m + 1], one)[0] for m in range(mu.shape[0])])


def cross_modal_loss(
    model: JointLatentModel, means: torch.Tensor, embeddings: Mapping[str, torch.Tensor], present: torch.Tensor
) -> torch.Tensor:
    """Mean squared error (standardised) of decoding each present modality from each other one."""
    errors, counts = [], []
    for s, source in enumerate(model.modalities):
        for t, target in enumerate(model.modalities):
            if s == t or source not in embeddings or target not in embeddings:
                continue
            both = present[s] * present[t]  # (B,)
            prediction = model.decoders[target](means[s])
            error = (prediction - model.standardise(target, embeddings[target])).square().mean(-1)
            errors.append((both * error).sum())
            counts.append(both.sum())
    if not errors:
        return means.new_zeros(())
    return torch.stack(errors).sum() / torch.stack(counts).sum().clamp(min=1)


def contrastive_loss(means: torch.Tensor, present: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE between single-modality posterior means of items that have both."""
    losses = []
    for s in range(means.shape[0]):
        for t in range(s + 1, means.shape[0]):
            both = (present[s] * present[t]) > 0
            if both.sum() < 2:
                continue
            a = F.normalize(means[s][both], dim=-1)
            b = F.normalize(means[t][both], dim=-1)
            logits = a @ b.T / temperature  # (N, N)
            labels = torch.arange(logits.shape[0], device=logits.device)
            losses.append(0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)))
    return torch.stack(losses).mean() if losses else means.new_zeros(())


def corrupt_inputs(
    model: JointLatentModel,
    embeddings: Mapping[str, torch.Tensor],
    objective: JointObjective,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """``embeddings`` with Gaussian noise on a ``noisy_fraction`` of each modality's rows, each at
    a level drawn uniformly from ``[0, input_noise]`` (text: ``[0, text_noise * input_noise]``)
    times the modality's per-dimension std."""
    corrupted = {}
    for modality, clean in embeddings.items():
        largest = objective.input_noise * (objective.text_noise if modality == "text" else 1.0)
        if largest == 0:
            corrupted[modality] = clean
            continue
        batch = clean.shape[0]
        chosen = torch.rand(batch, generator=generator, device=clean.device) < objective.noisy_fraction
        level = largest * torch.rand(batch, generator=generator, device=clean.device) * chosen  # (B,)
        noise = torch.randn(clean.shape, generator=generator, device=clean.device)
        corrupted[modality] = clean + level[:, None] * getattr(model, f"{modality}_std") * noise
    return corrupted


def joint_loss(
    model: JointLatentModel,
    embeddings: Mapping[str, torch.Tensor],
    present: torch.Tensor,
    objective: JointObjective | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """All terms of the joint model's loss; ``"loss"`` is their weighted sum."""
    objective = objective or JointObjective()
    inputs = corrupt_inputs(model, embeddings, objective, generator) if objective.input_noise > 0 else embeddings
    mu, logvar, _ = model.experts(inputs, weights=present)
    elbo, reconstruction, kl = elbo_loss(model, mu, logvar, embeddings, present, objective, generator)
    if objective.input_noise > 0 and objective.clean_alignment:
        mu, logvar, _ = model.experts(embeddings, weights=present)
    means = single_posterior_means(model, mu, logvar)
    cross = cross_modal_loss(model, means, embeddings, present)
    terms = {"elbo": elbo, "reconstruction": reconstruction, "kl": kl, "cross_modal": cross}
    loss = elbo + objective.cross_modal * cross
    if objective.contrastive > 0:
        terms["contrastive"] = contrastive_loss(means, present, objective.temperature)
        loss = loss + objective.contrastive * terms["contrastive"]
    terms["loss"] = loss
    return terms
