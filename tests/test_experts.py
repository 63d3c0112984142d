"""Exact answers for the fusion rules: closed forms, masking, weights, extremes."""

import math

import pytest
import torch

from core.fusion.experts import (
    expert_shares,
    mixture_of_experts,
    mixture_of_products_of_experts,
    product_of_experts,
    subset_masks,
    subset_posteriors,
)


def random_experts(m=3, b=4, d=5, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(m, b, d, generator=generator), torch.randn(m, b, d, generator=generator)


def test_one_expert_with_the_prior_has_the_closed_form():
    m, v = 2.5, 0.4
    mu, logvar = product_of_experts(torch.full((1, 2, 3), m), torch.full((1, 2, 3), math.log(v)))
    torch.testing.assert_close(mu, torch.full((2, 3), m / (1 + v)))
    torch.testing.assert_close(logvar.exp(), torch.full((2, 3), v / (1 + v)))


def test_two_experts_and_the_prior_add_precisions():
    mu = torch.tensor([1.0, -3.0]).view(2, 1, 1)
    var = torch.tensor([0.5, 2.0]).view(2, 1, 1)
    fused_mu, fused_logvar = product_of_experts(mu, var.log())
    precision = 1 + 1 / 0.5 + 1 / 2.0
    torch.testing.assert_close(fused_logvar.exp().item(), 1 / precision)
    torch.testing.assert_close(fused_mu.item(), (1.0 / 0.5 - 3.0 / 2.0) / precision)


def test_no_expert_gives_the_prior():
    mu, logvar = random_experts()
    fused_mu, fused_logvar = product_of_experts(mu, logvar, torch.zeros(3, 4))
    assert torch.equal(fused_mu, torch.zeros(4, 5))
    assert torch.equal(fused_logvar, torch.zeros(4, 5))


def test_weight_zero_equals_dropping_the_expert_even_if_it_holds_nan():
    mu, logvar = random_experts()
    mu[1], logvar[1] = float("nan"), float("nan")
    weights = torch.ones(3, 4)
    weights[1] = 0
    dropped = product_of_experts(mu[[0, 2]], logvar[[0, 2]])
    masked = product_of_experts(mu, logvar, weights)
    torch.testing.assert_close(masked, dropped)


def test_weight_multiplies_the_experts_precision():
    mu, logvar = random_experts(m=2)
    weights = torch.tensor([[3.0] * 4, [1.0] * 4])
    scaled_logvar = logvar.clone()
    scaled_logvar[0] -= math.log(3.0)  # precision times 3
    torch.testing.assert_close(product_of_experts(mu, logvar, weights), product_of_experts(mu, scaled_logvar))


@pytest.mark.parametrize("extreme", [-1e4, -80.0, 80.0, 1e4])
def test_extreme_log_variances_stay_finite(extreme):
    mu, logvar = random_experts()
    logvar[0] = extreme
    for fuse in (product_of_experts, mixture_of_experts, mixture_of_products_of_experts):
        fused_mu, fused_logvar = fuse(mu, logvar)
        assert torch.isfinite(fused_mu).all() and torch.isfinite(fused_logvar).all(), fuse.__name__
    shares, prior = expert_shares(logvar)
    assert torch.isfinite(shares).all() and torch.isfinite(prior).all()


def test_a_very_certain_expert_takes_over():
    mu, logvar = random_experts()
    logvar[2] = -1e4
    fused_mu, _ = product_of_experts(mu, logvar)
    torch.testing.assert_close(fused_mu, mu[2])


def test_shares_and_prior_sum_to_one_and_follow_precision():
    mu, logvar = random_experts()
    weights = torch.rand(3, 4, generator=torch.Generator().manual_seed(1))
    shares, prior = expert_shares(logvar, weights)
    torch.testing.assert_close(shares.sum(0) + prior, torch.ones(4))
    # the share of one dimension is w / var / precision
    one = expert_shares(logvar[..., :1], weights)[0]
    precision = 1 + (weights / logvar[..., 0].exp()).sum(0)
    torch.testing.assert_close(one, weights / logvar[..., 0].exp() / precision)


def test_bad_weights_and_shapes_raise():
    mu, logvar = random_experts()
    with pytest.raises(ValueError, match="non-negative"):
        product_of_experts(mu, logvar, -torch.ones(3, 4))
    with pytest.raises(ValueError, match="finite"):
        product_of_experts(mu, logvar, torch.full((3, 4), float("nan")))
    with pytest.raises(ValueError, match=r"\[M, B\]"):
        product_of_experts(mu, logvar, torch.ones(3))
    with pytest.raises(ValueError, match=r"\[M, B, D\]"):
        product_of_experts(mu[0], logvar[0])


def test_mixture_of_experts_is_the_moment_matched_mixture():
    mu = torch.tensor([0.0, 2.0]).view(2, 1, 1)
    logvar = torch.tensor([1.0, 1.0]).log().view(2, 1, 1)
    fused_mu, fused_logvar = mixture_of_experts(mu, logvar, torch.tensor([[1.0], [3.0]]))
    assert fused_mu.item() == pytest.approx(1.5)
    # var = E[var] + Var[mu] = 1 + (0.25 * 1.5^2 + 0.75 * 0.5^2)
    assert fused_logvar.exp().item() == pytest.approx(1 + 0.25 * 2.25 + 0.75 * 0.25)


def test_mixture_of_experts_ignores_missing_and_falls_back_to_the_prior():
    mu, logvar = random_experts()
    weights = torch.ones(3, 4)
    weights[0] = 0
    torch.testing.assert_close(mixture_of_experts(mu, logvar, weights), mixture_of_experts(mu[1:], logvar[1:]))
    prior = mixture_of_experts(mu, logvar, torch.zeros(3, 4))
    torch.testing.assert_close(prior, (torch.zeros(4, 5), torch.zeros(4, 5)))


def test_subsets_and_mopoe():
    assert subset_masks(3).shape == (7, 3)
    assert sorted(subset_masks(3).sum(1).tolist()) == [1, 1, 1, 2, 2, 2, 3]
    mu, logvar = random_experts()
    # one present expert: MoPoE is that expert's product with the prior
    weights = torch.zeros(3, 4)
    weights[1] = 1
    torch.testing.assert_close(
        mixture_of_products_of_experts(mu, logvar, weights), product_of_experts(mu[1:2], logvar[1:2])
    )
    # with all present, the components are the 7 subset products
    subset_mu, _, valid = subset_posteriors(mu, logvar)
    assert valid.all()
    fused_mu, _ = mixture_of_products_of_experts(mu, logvar)
    torch.testing.assert_close(fused_mu, subset_mu.mean(0))
