"""Fusing Gaussian experts ``N(mu_m, exp(logvar_m))`` into one posterior: pure functions.

Shapes: ``mu`` and ``logvar`` are ``[M, B, D]`` for M experts, ``weights`` is ``[M, B]``
(default all ones). A weight of 0 marks a missing expert: it contributes nothing, whatever
its ``mu`` and ``logvar`` hold (NaN included). All functions work in log space, so extreme
log-variances give finite results.

- product of experts (MVAE, Wu & Goodman 2018), weighted, with the N(0, I) prior expert;
- mixture of experts (MMVAE, Shi et al. 2019), moment-matched to one Gaussian;
- mixture of products of experts over subsets (MoPoE, Sutter et al. 2021), moment-matched.
"""

from __future__ import annotations

import itertools

import torch


def _check(mu: torch.Tensor, logvar: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    if mu.shape != logvar.shape or mu.dim() != 3:
        raise ValueError(f"mu and logvar must both be [M, B, D], got {tuple(mu.shape)} and {tuple(logvar.shape)}.")
    if weights is None:
        return mu.new_ones(mu.shape[:2])
    if weights.shape != mu.shape[:2]:
        raise ValueError(f"weights must be [M, B] = {tuple(mu.shape[:2])}, got {tuple(weights.shape)}.")
    if not torch.isfinite(weights).all() or (weights < 0).any():
        raise ValueError("Expert weights must be finite and non-negative.")
    return weights.to(mu.dtype)


def product_of_experts(
    mu: torch.Tensor, logvar: torch.Tensor, weights: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted product of Gaussian experts and the N(0, I) prior: ``(mu, logvar)`` of ``[B, D]``.

    ``precision = 1 + sum_m w_m / var_m`` and ``mean = sum_m (w_m / var_m) mu_m / precision``.
    """
    weights = _check(mu, logvar, weights)
    log_precision, log_total = _log_precisions(logvar, weights)
    share = torch.exp(log_precision - log_total)  # (M, B, D), each expert's share of the precision
    fused_mu = (share * torch.where(weights.unsqueeze(-1) > 0, mu, 0.0)).sum(0)  # (B, D)
    return fused_mu, -log_total


def _log_precisions(logvar: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Log of each expert's weighted precision (-inf where missing) ``[M, B, D]`` and of their
    sum with the prior's precision of 1, ``[B, D]``."""
    present = (weights > 0).unsqueeze(-1)  # (M, B, 1)
    log_precision = torch.where(present, weights.clamp(min=1e-30).log().unsqueeze(-1) - logvar, -torch.inf)
    prior = torch.zeros_like(log_precision[:1])  # (1, B, D): log 1
    return log_precision, torch.logsumexp(torch.cat([prior, log_precision]), dim=0)


def expert_shares(
    logvar: torch.Tensor, weights: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each expert's share of the fused precision, averaged over dimensions: ``([M, B], prior [B])``.

    ``share_m = (w_m / var_m) / precision``; the shares and the prior's sum to 1.
    """
    weights = _check(logvar, logvar, weights)
    log_precision, log_total = _log_precisions(logvar, weights)
    shares = torch.exp(log_precision - log_total).mean(-1)  # (M, B)
    return shares, torch.exp(-log_total).mean(-1)


def moment_match(
    mixture_weights: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The Gaussian with the mean and variance of a mixture: weights ``[K, B]``, components ``[K, B, D]``."""
    pi = mixture_weights.unsqueeze(-1)  # (K, B, 1)
    mean = (pi * mu).sum(0)  # (B, D)
    # variance = E[var] + Var[mu], summed in log space so huge variances stay finite
    log_mean_variance = torch.logsumexp(torch.where(pi > 0, pi.clamp(min=1e-30).log() + logvar, -torch.inf), dim=0)
    spread = (pi * (mu - mean).square()).sum(0)
    return mean, torch.logaddexp(log_mean_variance, spread.clamp(min=1e-30).log())


def mixture_of_experts(
    mu: torch.Tensor, logvar: torch.Tensor, weights: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted mixture of the present experts, moment-matched: ``(mu, logvar)`` of ``[B, D]``.

    Where no expert is present the prior N(0, I) is returned.
    """
    weights = _check(mu, logvar, weights)
    prior_mu, prior_logvar = torch.zeros_like(mu[:1]), torch.zeros_like(logvar[:1])
    total = weights.sum(0, keepdim=True)  # (1, B)
    none_present = (total == 0).to(mu.dtype)  # (1, B): then the prior takes all the mass
    mixture = torch.cat([weights / total.clamp(min=1e-30), none_present])  # (M + 1, B)
    present = (mixture > 0).unsqueeze(-1)
    components_mu = torch.where(present, torch.cat([mu, prior_mu]), 0.0)
    components_logvar = torch.where(present, torch.cat([logvar, prior_logvar]), 0.0)
    return moment_match(mixture, components_mu, components_logvar)


def subset_masks(num_experts: int) -> torch.Tensor:
    """All non-empty subsets of ``num_experts`` experts as a ``[2^M - 1, M]`` 0/1 matrix."""
    subsets = [s for r in range(1, num_experts + 1) for s in itertools.combinations(range(num_experts), r)]
    masks = torch.zeros(len(subsets), num_experts)
    for row, subset in enumerate(subsets):
        masks[row, list(subset)] = 1.0
    return masks


def subset_posteriors(
    mu: torch.Tensor, logvar: torch.Tensor, weights: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The weighted product of experts of every non-empty subset: ``(mu, logvar) [S, B, D]`` and
    which subsets hold only present experts, ``[S, B]`` (MoPoE's mixture components)."""
    weights = _check(mu, logvar, weights)
    masks = subset_masks(mu.shape[0]).to(mu.device, mu.dtype)  # (S, M)
    subset_mu, subset_logvar = [], []
    for mask in masks:
        fused = product_of_experts(mu, logvar, weights * mask.unsqueeze(-1))
        subset_mu.append(fused[0])
        subset_logvar.append(fused[1])
    return torch.stack(subset_mu), torch.stack(subset_logvar), valid_subsets(masks, weights)


def valid_subsets(masks: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Which subsets ``[S, M]`` hold only present experts (weight > 0), per item: ``[S, B]``."""
    present = (weights > 0).to(masks.dtype)  # (M, B)
    return (masks @ present) == masks.sum(-1, keepdim=True)  # members present == subset size


def mixture_of_products_of_experts(
    mu: torch.Tensor, logvar: torch.Tensor, weights: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Uniform mixture of the products of experts of every subset of the present experts,
    moment-matched: ``(mu, logvar)`` of ``[B, D]``; the prior where none is present."""
    subset_mu, subset_logvar, valid = subset_posteriors(mu, logvar, weights)
    count = valid.sum(0, keepdim=True)  # (1, B)
    none_present = (count == 0).to(mu.dtype)
    mixture = torch.cat([valid.to(mu.dtype) / count.clamp(min=1), none_present])  # (S + 1, B)
    components_mu = torch.cat([subset_mu, torch.zeros_like(mu[:1])])
    components_logvar = torch.cat([subset_logvar, torch.zeros_like(logvar[:1])])
    return moment_match(mixture, components_mu, components_logvar)


FUSIONS = {
    "poe": product_of_experts,
    "moe": mixture_of_experts,
    "mopoe": mixture_of_products_of_experts,
}
