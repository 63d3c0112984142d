"""The image priors from the joint latent to an embedding (the diffusion prior and the bank of
training embeddings): their space, training, draws, and how the pipeline and the evaluation use them."""

import pytest
import torch

from core.decoders.embedding_prior import EmbeddingBank, EmbeddingPrior, prior_generators
from core.training.loop import StageConfig
from core.training.prior import prior_training_pairs, train_embedding_prior


def clusters(count: int = 256, dim: int = 16, seed: int = 0):
    """Two well-apart clusters of embeddings, each named by a one-hot condition."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.zeros(2, dim)
    centres[0, :4], centres[1, 4:8] = 3.0, 3.0
    labels = torch.arange(count) % 2
    targets = centres[labels] + 0.3 * torch.randn(count, dim, generator=generator)
    return torch.nn.functional.one_hot(labels, 2).float(), targets, centres


def test_the_basis_keeps_the_leading_components_and_maps_back():
    _, targets, _ = clusters()
    prior = EmbeddingPrior(embed_dim=16, condition_dim=2, components=8, hidden_dim=16, num_layers=1)
    share = prior.fit_basis(targets)
    assert 0.5 < share <= 1.0
    assert torch.allclose(prior.basis.T @ prior.basis, torch.eye(8), atol=1e-5)  # orthonormal columns
    coordinates = prior.to_components(targets)
    assert torch.allclose(coordinates.std(0), torch.ones(8), atol=1e-3)  # whitened
    in_span = prior.from_components(coordinates[:5])
    assert torch.allclose(prior.to_components(in_span), coordinates[:5], atol=1e-4)
    few = EmbeddingPrior(embed_dim=16, condition_dim=2, components=8, hidden_dim=16, num_layers=1)
    assert few.fit_basis(targets[:3]) == pytest.approx(1.0)  # three samples: three components, the rest zero
    assert torch.count_nonzero(few.basis[:, 3:]) == 0 and torch.isfinite(few.to_components(targets)).all()
    with pytest.raises(ValueError, match="cannot exceed"):
        EmbeddingPrior(embed_dim=4, components=8)


def test_a_trained_prior_draws_from_the_cluster_its_condition_names(tmp_path):
    conditions, targets, centres = clusters()
    prior = EmbeddingPrior(embed_dim=16, condition_dim=2, components=8, hidden_dim=64, num_layers=2, num_train_timesteps=100)
    config = StageConfig(tmp_path / "prior", max_steps=400, checkpoint_every=200, log_every=100)
    result = train_embedding_prior(prior, conditions, targets, config, batch_size=64, learning_rate=2e-3, ema_decay=0.9)
    assert result.finished and result.history[-1]["loss"] < result.history[0]["loss"]
    asked = torch.eye(2).repeat(16, 1)  # 32 draws, alternating the two conditions
    drawn = prior.sample(asked, prior_generators(range(32)), steps=20)
    distances = torch.cdist(drawn, centres)  # (32, 2)
    right = (distances.argmin(1) == asked.argmax(1)).float().mean()
    assert right >= 0.9
    # draws vary with the seed and replay with it
    again = prior.sample(asked[:4], prior_generators(range(4)), steps=20)
    assert torch.equal(again, drawn[:4])
    other = prior.sample(asked[:4], prior_generators(range(100, 104)), steps=20)
    assert not torch.allclose(other, drawn[:4])
    # the part outside the components comes from ``outside``, the part inside from the draw
    outside = targets[:4]
    completed = prior.sample(asked[:4], prior_generators(range(4)), steps=20, outside=outside)
    span = prior.basis @ prior.basis.T
    assert torch.allclose((completed - prior.embedding_mean) @ span, (drawn[:4] - prior.embedding_mean) @ span, atol=1e-4)
    rest = lambda e: (e - prior.embedding_mean) - (e - prior.embedding_mean) @ span  # noqa: E731
    assert torch.allclose(rest(completed), rest(outside), atol=1e-4)
    # smaller starting noise draws closer to the cluster the condition names
    cool = prior.sample(asked, prior_generators(range(32)), steps=20, temperature=0.1)
    named = centres[asked.argmax(1)]
    assert (cool - named).norm(dim=1).mean() < (drawn - named).norm(dim=1).mean()
    with pytest.raises(ValueError, match="generators"):
        prior.sample(asked[:4], prior_generators(range(3)))
    # a resumed call at its budget trains no further and keeps the fitted basis
    reloaded = EmbeddingPrior(embed_dim=16, condition_dim=2, components=8, hidden_dim=64, num_layers=2, num_train_timesteps=100)
    assert train_embedding_prior(reloaded, conditions, targets, config, batch_size=64).step == 400
    assert torch.allclose(reloaded.basis, prior.basis)


def test_training_pairs_cover_every_subset_an_item_has():
    from core.fusion.joint import JointLatentModel

    model = JointLatentModel(modality_dims={"text": 6, "image": 5, "audio": 4}, latent_dim=3, hidden_dim=8).eval()
    count = 5
    embeddings = {"text": torch.randn(count, 6), "image": torch.randn(count, 5), "audio": torch.randn(count, 4)}
    present = {"text": torch.ones(count, dtype=torch.bool), "image": torch.tensor([1, 1, 1, 0, 0], dtype=torch.bool),
               "audio": torch.tensor([1, 0, 0, 1, 0], dtype=torch.bool)}
    conditions, targets = prior_training_pairs(model, embeddings, present, "image")
    # items 1 and 2 (text, image): 3 subsets each; item 0 (all three): 7 subsets
    assert conditions.shape == (3 + 3 + 7, 3) and targets.shape == (13, 5)
    text_only = model({"text": embeddings["text"][:3]}).mu
    assert torch.allclose(conditions[:3], text_only, atol=1e-6)
    assert torch.equal(targets[:3], embeddings["image"][:3])
    with pytest.raises(ValueError, match="No training item"):
        prior_training_pairs(model, embeddings, {**present, "image": torch.zeros(count, dtype=torch.bool)}, "image")


def test_the_pipeline_draws_images_through_a_trained_prior_and_replays(tiny_studio, tmp_path):
    pipeline = tiny_studio.pipeline
    assert pipeline.image_prior is not None
    z = torch.randn(3, pipeline.joint.config.latent_dim)
    decoded = pipeline.predict_embedding(z, "image", [0, 1, 2])
    prior = pipeline.image_prior
    assert prior.is_trained is False  # an untrained prior is never used: the decoded mean
    assert torch.allclose(decoded, pipeline.joint.decode(z, "image"))
    prior.is_trained = True
    try:
        drawn = pipeline.predict_embedding(z, "image", [0, 1, 2])
        assert drawn.shape == decoded.shape and not torch.allclose(drawn, pipeline.joint.decode(z, "image"))
        assert torch.equal(drawn, pipeline.predict_embedding(z, "image", [0, 1, 2]))
        assert torch.equal(drawn[1:], pipeline.predict_embedding(z[1:], "image", [1, 2]))  # each row replays on its own
        assert torch.allclose(pipeline.predict_embedding(z, "audio", [0, 1, 2]), pipeline.joint.decode(z, "audio"))  # images only
        pipeline.register_to_config(prior_temperature=0.5)  # the studio's setting reaches the draw
        assert not torch.allclose(pipeline.predict_embedding(z, "image", [0, 1, 2]), drawn)
        pipeline.register_to_config(prior_temperature=1.0)
        first = tiny_studio.generate("image", text="a red circle", steps=2, seed=5)
        second = tiny_studio.generate("image", text="a red circle", steps=2, seed=5)
        assert first.outputs[0].tobytes() == second.outputs[0].tobytes()
        # saved and loaded with the studio
        pipeline.save_pretrained(tmp_path / "studio")
        from core import load_studio

        loaded = load_studio(tmp_path / "studio").pipeline
        assert loaded.image_prior.is_trained
        assert torch.allclose(loaded.predict_embedding(z, "image", [0, 1, 2]), drawn, atol=1e-5)
    finally:
        prior.is_trained = False


def test_a_latent_method_with_a_prior_draws_its_image_embeddings():
    from core.evaluation.methods import LatentModelMethod
    from core.fusion.joint import JointLatentModel

    model = JointLatentModel(modality_dims={"text": 6, "image": 16}, latent_dim=2, hidden_dim=8)
    conditions, targets, _ = clusters()
    prior = EmbeddingPrior(embed_dim=16, condition_dim=2, components=8, hidden_dim=16, num_layers=1, num_train_timesteps=50)
    prior.fit_basis(targets)
    plain, with_prior = LatentModelMethod("m", model), LatentModelMethod("m", model, priors={"image": prior}, prior_steps=5)
    z = conditions[:4]
    assert torch.allclose(plain.predict(z, "image"), model.decode(z, "image"))
    drawn = with_prior.predict(z, "image")
    assert drawn.shape == (4, 16) and torch.equal(drawn, with_prior.predict(z, "image"))
    assert not torch.allclose(drawn, model.decode(z, "image"))
    assert torch.allclose(with_prior.predict(z, "text"), model.decode(z, "text"))  # other outputs: the decoded mean


def test_the_bank_keeps_distinct_embeddings_once_as_int8_codes():
    _, targets, _ = clusters(count=64)
    repeated = torch.cat([targets, targets[:10] + 1e-5, targets[:3]])  # 13 near or exact copies
    bank = EmbeddingBank.from_embeddings(repeated, components=8)
    assert bank.config.size == 64 and bank.codes.shape == (64, 8) and bank.codes.dtype == torch.int8
    coded = bank.entries()
    assert torch.allclose(coded, bank.to_components(targets), atol=coded.abs().max().item() / 100)  # int8: within 1% of the range
    assert EmbeddingBank.from_embeddings(repeated, components=8, duplicate_cosine=1.5).config.size == len(repeated)  # nothing is a twin
    for wrong in (torch.zeros(0, 16), torch.full((4, 16), float("nan"))):
        with pytest.raises(ValueError, match="finite"):
            EmbeddingBank.from_embeddings(wrong, components=8)
    with pytest.raises(ValueError, match="at least one"):
        EmbeddingBank(size=0)


def test_the_bank_snaps_each_query_to_its_nearest_entry_and_replays():
    _, targets, centres = clusters(count=64)
    bank = EmbeddingBank.from_embeddings(targets, components=16)  # every component: entries map back exactly (up to int8)
    queries = centres[[0, 1, 1, 0]] + 0.05  # near each cluster's centre, between its members
    snapped = bank.sample(None, prior_generators(range(4)), outside=queries)
    entries = bank.from_components(bank.entries())
    nearest = torch.nn.functional.normalize(bank.to_components(queries), dim=-1) @ torch.nn.functional.normalize(bank.entries(), dim=-1).T
    assert torch.allclose(snapped, entries[nearest.argmax(1)], atol=1e-4)  # a real entry, not the query
    assert not torch.allclose(snapped, queries, atol=0.1)
    assert (torch.cdist(snapped, centres).argmin(1) == torch.tensor([0, 1, 1, 0])).all()  # of the query's cluster
    # with more candidates the generator picks among the nearest: seeds vary the pick and replay it
    bank.register_to_config(candidates=8)
    picks = torch.stack([bank.sample(None, prior_generators([seed]), outside=queries[:1])[0] for seed in range(12)])
    assert len(torch.unique(picks, dim=0)) > 1
    assert torch.equal(bank.sample(None, prior_generators([3]), outside=queries[:1]), picks[3:4])
    assert (torch.cdist(picks, centres).argmin(1) == 0).all()
    # the part outside its components comes from the query, as for the diffusion prior
    few = EmbeddingBank.from_embeddings(targets, components=4)
    completed = few.sample(None, prior_generators(range(2)), outside=queries[:2])
    rest = lambda e: (e - few.embedding_mean) - (e - few.embedding_mean) @ few.basis @ few.basis.T  # noqa: E731
    assert torch.allclose(rest(completed), rest(queries[:2]), atol=1e-4)
    with pytest.raises(ValueError, match="decoded mean"):
        bank.sample(None, prior_generators(range(2)))
    with pytest.raises(ValueError, match="generators"):
        bank.sample(None, prior_generators(range(3)), outside=queries)


def test_the_pipeline_draws_images_through_a_bank_saved_in_fp16(tiny_studio, tmp_path):
    from core import load_studio
    from core.evaluation.methods import studio_method

    pipeline = tiny_studio.pipeline
    untrained = pipeline.image_prior
    dim = pipeline.image_encoder.embed_dim
    bank = EmbeddingBank.from_embeddings(torch.randn(40, dim, generator=torch.Generator().manual_seed(0)), components=8)
    bank.is_trained = True
    pipeline.image_prior = bank
    try:
        z = torch.randn(3, pipeline.joint.config.latent_dim)
        snapped = pipeline.predict_embedding(z, "image", [0, 1, 2])
        assert torch.allclose(snapped, bank.sample(None, prior_generators([0, 1, 2]), outside=pipeline.joint.decode(z, "image")))
        assert torch.allclose(studio_method("proposed", pipeline).predict(z, "image"), snapped)  # the evaluation draws as the studio does
        made = tiny_studio.generate("image", text="a red circle", steps=2, seed=5)
        assert made.outputs[0].size == (64, 64) and made.recipe["use_image_prior"] is True
        assert torch.allclose(pipeline.predict_embedding(z, "image", [0, 1, 2], use_image_prior=False), pipeline.joint.decode(z, "image"))
        # per call: the decoded mean instead of the bank, recorded in the recipe and replayed
        blend = tiny_studio.generate("image", text="a red circle", steps=2, seed=5, use_image_prior=False)
        assert blend.recipe["use_image_prior"] is False and blend.outputs[0].tobytes() != made.outputs[0].tobytes()
        assert tiny_studio.replay(blend.recipe).outputs[0].tobytes() == blend.outputs[0].tobytes()
        assert tiny_studio.replay(made.recipe).outputs[0].tobytes() == made.outputs[0].tobytes()
        legacy = {k: v for k, v in made.recipe.items() if k != "use_image_prior"}  # recipes from before the switch: through the prior
        assert tiny_studio.replay(legacy).outputs[0].tobytes() == made.outputs[0].tobytes()
        mixes = ({"text": "a red circle"}, {"text": "a blue circle"})
        morph = tiny_studio.interpolate(*mixes, n=2, steps=2, use_image_prior=False)
        assert morph.recipe["use_image_prior"] is False
        assert tiny_studio.replay(morph.recipe).outputs[1].tobytes() == morph.outputs[1].tobytes()
        assert tiny_studio.interpolate(*mixes, n=2, steps=2).outputs[1].tobytes() != morph.outputs[1].tobytes()
        with pytest.raises(ValueError, match="use_image_prior"):
            tiny_studio.generate("image", text="a red circle", steps=2, use_image_prior="yes")
        bank.to(torch.float16)
        pipeline.save_pretrained(tmp_path / "studio")
        loaded = load_studio(tmp_path / "studio").pipeline
        assert isinstance(loaded.image_prior, EmbeddingBank) and loaded.image_prior.is_trained
        assert loaded.image_prior.codes.dtype == torch.int8 and loaded.image_prior.basis.dtype == torch.float32
        assert torch.allclose(loaded.predict_embedding(z, "image", [0, 1, 2]), snapped, atol=1e-2)
    finally:
        pipeline.image_prior = untrained
