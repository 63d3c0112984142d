"""The joint latent model: shapes, masking, shares, save/load, objectives, and a short training."""

import pytest
import torch

from core.fusion import JointLatentModel, JointObjective, joint_loss
from core.fusion.experts import product_of_experts
from core.fusion.objectives import gaussian_kl, reconstruction_error
from core.training.joint import train_joint_model
from core.training.loop import StageConfig

DIMS = {"text": 12, "image": 20, "audio": 8}


def tiny_model(fusion="poe", seed=0):
    torch.manual_seed(seed)
    return JointLatentModel(modality_dims=DIMS, latent_dim=6, hidden_dim=32, fusion=fusion).eval()


def random_embeddings(batch=5, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return {m: torch.randn(batch, d, generator=generator) for m, d in DIMS.items()}


@pytest.mark.parametrize("fusion", ["poe", "moe", "mopoe"])
def test_shapes_and_shares_for_every_fusion(fusion):
    model = tiny_model(fusion)
    posterior = model(random_embeddings())
    assert posterior.mu.shape == posterior.logvar.shape == (5, 6)
    assert posterior.expert_mu.shape == (3, 5, 6)
    total = sum(posterior.shares.values()) + posterior.prior_share
    torch.testing.assert_close(total, torch.ones(5))
    assert all(((s >= 0) & (s <= 1)).all() for s in posterior.shares.values())


@pytest.mark.parametrize("fusion", ["poe", "moe", "mopoe"])
def test_a_missing_modality_equals_weight_zero(fusion):
    model = tiny_model(fusion)
    embeddings = random_embeddings()
    without_audio = {m: e for m, e in embeddings.items() if m != "audio"}
    with torch.no_grad():
        dropped = model(without_audio)
        masked = model(embeddings, weights={"audio": 0.0})
    torch.testing.assert_close(dropped.mu, masked.mu)
    torch.testing.assert_close(dropped.logvar, masked.logvar)
    assert (masked.shares["audio"] == 0).all()


def test_poe_forward_is_the_product_of_its_experts():
    model = tiny_model()
    with torch.no_grad():
        posterior = model(random_embeddings(), weights={"text": 2.0, "image": 0.5})
        mu, logvar = product_of_experts(posterior.expert_mu, posterior.expert_logvar, posterior.weights)
    torch.testing.assert_close(posterior.mu, mu)
    assert posterior.weights[model.modalities.index("text")].eq(2.0).all()


def test_raising_a_weight_raises_its_share():
    model = tiny_model()
    with torch.no_grad():
        low = model(random_embeddings(), weights={"image": 0.5}).shares["image"]
        high = model(random_embeddings(), weights={"image": 4.0}).shares["image"]
    assert (high > low).all()


def test_bad_inputs_raise():
    model = tiny_model()
    with pytest.raises(ValueError, match="Unknown modalities"):
        model({"smell": torch.zeros(1, 3)})
    with pytest.raises(ValueError, match="at least one"):
        model({})
    with pytest.raises(ValueError, match="non-negative"):
        model(random_embeddings(), weights={"text": -1.0})
    with pytest.raises(ValueError, match="Unknown fusion"):
        JointLatentModel(fusion="sum")


def test_batch_and_single_agree():
    model = tiny_model()
    embeddings = random_embeddings()
    with torch.no_grad():
        batch = model(embeddings)
        single = model({m: e[2:3] for m, e in embeddings.items()})
    torch.testing.assert_close(batch.mu[2:3], single.mu)


def test_save_and_load_round_trip(tmp_path):
    model = tiny_model("mopoe")
    model.set_embedding_stats("image", torch.randn(50, DIMS["image"]) * 3 + 1)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "config.json").is_file()
    assert list(tmp_path.glob("*.safetensors"))
    loaded = JointLatentModel.from_pretrained(tmp_path).eval()
    assert loaded.config.fusion == "mopoe" and loaded.modalities == model.modalities
    with torch.no_grad():
        torch.testing.assert_close(loaded(random_embeddings()).mu, model(random_embeddings()).mu)
        z = torch.randn(2, 6)
        torch.testing.assert_close(loaded.decode(z, "image"), model.decode(z, "image"))


def test_objective_terms_are_finite_and_differentiable():
    model = tiny_model().train()
    embeddings = random_embeddings(batch=8)
    present = torch.ones(3, 8)
    present[0, :4] = 0  # half the items lack the first modality
    embeddings[model.modalities[0]][:4] = 0
    terms = joint_loss(model, embeddings, present, JointObjective(contrastive=0.5), torch.Generator().manual_seed(0))
    assert {"loss", "elbo", "reconstruction", "kl", "cross_modal", "contrastive"} <= set(terms)
    assert all(torch.isfinite(t) for t in terms.values())
    terms["loss"].backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def synthetic_modalities(count, seed):
    """Three modalities made from one shared 4-d latent by fixed random nonlinear maps."""
    generator = torch.Generator().manual_seed(seed)
    shared = torch.randn(count, 4, generator=generator)
    maps = torch.Generator().manual_seed(1234)
    embeddings = {}
    for modality, dim in DIMS.items():
        matrix = torch.randn(4, dim, generator=maps)
        noise = 0.05 * torch.randn(count, dim, generator=generator)
        embeddings[modality] = 3 * torch.tanh(shared @ matrix / 2) + 1 + noise
    return embeddings


@pytest.mark.slow
def test_training_makes_cross_modal_prediction_far_better_than_the_prior(tmp_path):
    torch.manual_seed(0)
    model = JointLatentModel(modality_dims=DIMS, latent_dim=8, hidden_dim=64)
    train = synthetic_modalities(2000, seed=0)
    present = (torch.rand(3, 2000, generator=torch.Generator().manual_seed(2)) < 0.7).float()
    present[0, present.sum(0) == 0] = 1
    train = {m: e * present[i, :, None] for i, (m, e) in enumerate(sorted(train.items()))}
    result = train_joint_model(model, train, present, StageConfig(tmp_path, max_steps=300, checkpoint_every=300, log_every=20))
    losses = [entry["loss"] for entry in result.history]
    assert result.finished and losses[-1] < 0.5 * losses[0], losses

    test = synthetic_modalities(500, seed=1)
    with torch.no_grad():
        for source, target in [("text", "image"), ("image", "audio"), ("audio", "text")]:
            posterior = model({source: test[source]})
            predicted = model.decode(posterior.mu, target)
            from_prior = model.decode(torch.zeros_like(posterior.mu), target)
            error = (predicted - test[target]).square().mean()
            prior_error = (from_prior - test[target]).square().mean()
            assert error < 0.2 * prior_error, (source, target, error, prior_error)
        # two inputs predict the third better than one
        both = model({"text": test["text"], "image": test["image"]})
        one = model({"text": test["text"]})
        error_both = (model.decode(both.mu, "audio") - test["audio"]).square().mean()
        error_one = (model.decode(one.mu, "audio") - test["audio"]).square().mean()
        assert error_both < error_one


def noisy_wide_modalities(count, seed, dims):
    """Wide embeddings in which a shared 4-d latent explains about a third of the variance and
    the rest is each modality's own noise, as with real encoder embeddings."""
    generator = torch.Generator().manual_seed(seed)
    shared = torch.randn(count, 4, generator=generator)
    maps = torch.Generator().manual_seed(99)
    return {
        modality: torch.tanh(shared @ torch.randn(4, dim, generator=maps)) + 0.8 * torch.randn(count, dim, generator=generator)
        for modality, dim in dims.items()
    }


@pytest.mark.slow
def test_the_posterior_does_not_collapse_on_noisy_wide_embeddings(tmp_path):
    """On wide, noisy embeddings a badly scaled reconstruction term lets the KL win: the
    posterior falls onto the prior (KL near 0) and cross-modal prediction is no better than the
    mean. Both must stay clear of that."""
    dims = {"text": 96, "image": 160, "audio": 64}
    torch.manual_seed(0)
    model = JointLatentModel(modality_dims=dims, latent_dim=16, hidden_dim=64)
    train = noisy_wide_modalities(3000, 0, dims)
    present = torch.ones(3, 3000)
    train_joint_model(model, train, present, StageConfig(tmp_path, max_steps=300, checkpoint_every=300, log_every=50), batch_size=128)

    test = noisy_wide_modalities(1000, 1, dims)
    with torch.no_grad():
        kl = gaussian_kl(*model.experts(test, weights=torch.ones(3, 1000))[:2]).mean(1)  # per modality
        assert (kl > 2.0).all(), kl
        for source, target in [("text", "image"), ("image", "audio"), ("audio", "text")]:
            predicted = model.standardise(target, model.decode(model({source: test[source]}).mu, target))
            error = predicted.sub(model.standardise(target, test[target])).square().mean()
            assert error < 0.9, (source, target, error)  # the prior's mean scores about 1.0


def test_reconstruction_is_the_gaussian_likelihood_summed_over_dimensions():
    """Averaging over dimensions instead shrinks reconstruction against the KL by the width of
    the embedding (384 to 1280 here), and on real embeddings the posterior collapses."""
    model = tiny_model()
    embeddings = random_embeddings(batch=4)
    z = torch.randn(4, 6)
    present = torch.ones(3, 4)
    present[1, 0] = 0  # the first item lacks the second modality
    expected = torch.zeros(4)
    for index, modality in enumerate(model.modalities):
        squared = (model.decoders[modality](z) - model.standardise(modality, embeddings[modality])).square()
        expected += present[index] * 0.5 * squared.sum(-1)
    torch.testing.assert_close(reconstruction_error(model, z, embeddings, present), expected)


def test_training_warns_when_the_posterior_collapses(tmp_path, caplog):
    model = tiny_model().train()
    embeddings = random_embeddings(batch=64)
    config = StageConfig(tmp_path, max_steps=100, checkpoint_every=100, log_every=20)
    with caplog.at_level("WARNING", logger="core.training.joint"):
        train_joint_model(model, embeddings, torch.ones(3, 64), config, objective=JointObjective(beta=1e4))
    assert "collapsed" in caplog.text


def test_input_noise_corrupts_some_inputs_within_the_level_and_keeps_clean_targets(monkeypatch):
    from core.fusion import objectives
    from core.fusion.objectives import corrupt_inputs

    model = tiny_model()
    model.set_embedding_stats("text", 3 * torch.randn(500, DIMS["text"]))  # std about 3 per dimension
    embeddings = {"text": torch.randn(2000, DIMS["text"])}
    objective = JointObjective(input_noise=2.0, noisy_fraction=0.25)
    corrupted = corrupt_inputs(model, embeddings, objective, torch.Generator().manual_seed(0))["text"]
    changed = (corrupted != embeddings["text"]).any(-1)
    assert 0.2 < changed.float().mean() < 0.3  # about a quarter of the rows
    relative = (corrupted - embeddings["text"]) / model.text_std  # noise in training standard deviations
    assert relative[changed].std() < 2.0 and relative[changed].std() > 0.8  # levels uniform in [0, 2]: rms 1.15

    # the experts see the corrupted inputs; the reconstruction targets stay the clean embeddings
    model = tiny_model().train()
    embeddings, present = random_embeddings(batch=8), torch.ones(3, 8)
    seen, targets = [], []
    model.experts = lambda inputs, weights=None, experts=model.experts: seen.append(inputs) or experts(inputs, weights)
    error = objectives.reconstruction_error
    monkeypatch.setattr(objectives, "reconstruction_error", lambda m, z, e, p: targets.append(e) or error(m, z, e, p))
    noisy = joint_loss(model, embeddings, present, JointObjective(input_noise=2.0, noisy_fraction=1.0), torch.Generator().manual_seed(0))
    assert all(not torch.equal(seen[0][m], embeddings[m]) for m in DIMS)
    assert targets and all(torch.equal(t[m], embeddings[m]) for t in targets for m in DIMS)
    assert torch.isfinite(noisy["loss"])


def test_clean_alignment_keeps_the_noise_out_of_the_cross_modal_and_contrastive_terms():
    model = tiny_model().eval()
    embeddings, present = random_embeddings(batch=16), torch.ones(3, 16)
    terms = {}
    for name, objective in {
        "clean": JointObjective(contrastive=1.0),
        "noisy": JointObjective(contrastive=1.0, input_noise=3.0, noisy_fraction=1.0),
        "aligned clean": JointObjective(contrastive=1.0, input_noise=3.0, noisy_fraction=1.0, clean_alignment=True),
    }.items():
        terms[name] = joint_loss(model, embeddings, present, objective, torch.Generator().manual_seed(0))
    for term in ("cross_modal", "contrastive"):
        torch.testing.assert_close(terms["aligned clean"][term], terms["clean"][term])
        assert not torch.allclose(terms["noisy"][term], terms["clean"][term])
    torch.testing.assert_close(terms["aligned clean"]["elbo"], terms["noisy"]["elbo"])  # the ELBO still sees the noise


def test_text_noise_scales_the_noise_on_text_alone():
    from core.fusion.objectives import corrupt_inputs

    model = tiny_model()
    embeddings = random_embeddings(batch=64)
    corrupted = corrupt_inputs(model, embeddings, JointObjective(input_noise=2.0, noisy_fraction=1.0, text_noise=0.0), torch.Generator().manual_seed(0))
    assert torch.equal(corrupted["text"], embeddings["text"])
    assert all(not torch.equal(corrupted[m], embeddings[m]) for m in DIMS if m != "text")
    # a quarter of the level on text: same draws, so the text noise is exactly a quarter of the full one
    full, quarter = (corrupt_inputs(model, embeddings, JointObjective(input_noise=2.0, noisy_fraction=1.0, text_noise=share), torch.Generator().manual_seed(0))
                     for share in (1.0, 0.25))
    torch.testing.assert_close(quarter["text"] - embeddings["text"], 0.25 * (full["text"] - embeddings["text"]))
    for m in DIMS:
        if m != "text":
            torch.testing.assert_close(quarter[m], full[m])
