"""The any-to-any pipeline and the facade: outputs, recipes, replay, schedulers, errors, round trip."""

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from core.audio import HOP_LENGTH, PEAK_CEILING, SAMPLE_RATE, TARGET_LOUDNESS_DB, loudness_db
from core.decoders.vocoder import Vocoder

pytestmark = pytest.mark.slow
STEPS = 2


def tone(seconds=1.0, rate=SAMPLE_RATE, frequency=330.0):
    return (0.3 * np.sin(2 * np.pi * frequency * np.arange(int(seconds * rate)) / rate)).astype(np.float32)


def same(a, b) -> bool:
    """Byte equality of two outputs (images, sounds or captions)."""
    if isinstance(a, Image.Image):
        return a.tobytes() == b.tobytes() and a.size == b.size
    if isinstance(a, tuple):
        return a[0] == b[0] and a[1].tobytes() == b[1].tobytes()
    return a == b


@pytest.fixture(scope="module", autouse=True)
def fast_vocoder(tiny_studio):
    # the packaged HiFi-GAN takes seconds to load; the tiny studio's sounds are noise anyway
    tiny_studio.pipeline._vocoder = Vocoder(method="griffin-lim", griffin_lim_iters=4)


def test_text_to_image(tiny_studio):
    result = tiny_studio.generate("image", text="a red bird", steps=STEPS, num=2)
    assert len(result.outputs) == 2
    for picture in result.outputs:
        assert isinstance(picture, Image.Image) and picture.mode == "RGB" and picture.size == (64, 64)
    assert not same(result.outputs[0], result.outputs[1])  # variants differ
    assert result.shares["text"] > 0 and result.shares["text"] + result.shares["prior"] == pytest.approx(1, abs=1e-5)


def test_image_to_audio(tiny_studio):
    picture = Image.new("RGBA", (30, 90), (0, 200, 0, 100))
    result = tiny_studio.generate("audio", image=picture, steps=STEPS)
    rate, wave = result.outputs[0]
    assert rate == SAMPLE_RATE and wave.dtype == np.float32 and wave.ndim == 1
    assert wave.shape[0] == tiny_studio.pipeline.config.mel_frames * HOP_LENGTH
    assert np.isfinite(wave).all() and np.abs(wave).max() <= PEAK_CEILING + 1e-6  # never clipped
    level = loudness_db(wave)  # at the one loudness, unless a peak at the ceiling held it lower
    assert level == pytest.approx(TARGET_LOUDNESS_DB, abs=0.1) or np.abs(wave).max() == pytest.approx(PEAK_CEILING, rel=1e-4)



def test_a_mel_unet_on_folded_patches_makes_whole_sounds(tiny_studio):
    import torch

    from core.decoders.diffusion_unets import build_mel_unet, fold_mels, mel_patch, unfold_mels

    mels = torch.randn(2, 1, 80, 16)
    folded = fold_mels(mels, 2)
    assert folded.shape == (2, 4, 40, 8) and torch.equal(unfold_mels(folded, 2), mels)
    pipeline = tiny_studio.pipeline
    plain = pipeline.audio_unet
    torch.manual_seed(0)
    pipeline.audio_unet = build_mel_unet(**{**dict(plain.config), "in_channels": 4, "out_channels": 4, "sample_size": (40, 8)})
    try:
        assert mel_patch(pipeline.audio_unet) == 2 and mel_patch(plain) == 1
        rate, wave = tiny_studio.generate("audio", text="a bell", steps=STEPS).outputs[0]
        assert wave.shape[0] == pipeline.config.mel_frames * HOP_LENGTH and np.isfinite(wave).all()
    finally:
        pipeline.audio_unet = plain

def test_captions_from_image_and_sound(tiny_studio):
    for method in ("greedy", "beam", "sample"):
        result = tiny_studio.caption(image=Image.new("L", (7, 300), 40), audio=(8000, tone(0.5, 8000)), method=method)
        assert isinstance(result.outputs[0], str)
    with pytest.raises(ValueError, match="image or a sound"):
        tiny_studio.caption()


def test_the_recipe_is_json_and_complete(tiny_studio):
    result = tiny_studio.generate(
        "image", text="a cat", image=Image.new("RGB", (10, 10), "red"), audio=(SAMPLE_RATE, tone()),
        weights={"text": 2.0, "image": 0.5}, seed=7, steps=STEPS, guidance=2.0,
    )
    recipe = json.loads(json.dumps(result.recipe))
    assert recipe["inputs"]["text"] == "a cat"
    assert len(recipe["inputs"]["image_sha256"]) == 64 and len(recipe["inputs"]["audio_sha256"]) == 64
    assert recipe["weights"] == {"text": 2.0, "image": 0.5, "audio": 1.0}
    assert (recipe["seed"], recipe["steps"], recipe["guidance"]) == (7, STEPS, 2.0)
    assert recipe["preset"] == "tiny" and recipe["weights_version"] == "untrained"


@pytest.mark.parametrize("output", ["image", "audio", "caption"])
def test_replay_is_byte_identical_and_seeds_differ(tiny_studio, output):
    picture = Image.new("RGB", (40, 40), (30, 60, 200))
    sound = (16000, tone(1.5, 16000))
    kwargs = dict(text="a violin", image=picture, audio=sound, seed=11, steps=STEPS, caption_method="sample")
    first = tiny_studio.generate(output, **kwargs)
    again = tiny_studio.replay(json.loads(json.dumps(first.recipe)))  # media recalled by hash
    assert all(same(a, b) for a, b in zip(first.outputs, again.outputs, strict=True))
    passed = tiny_studio.replay(first.recipe, image=picture, audio=sound)  # media passed again
    assert all(same(a, b) for a, b in zip(first.outputs, passed.outputs, strict=True))
    if output != "caption":  # captions of an untrained decoder may coincide
        other = tiny_studio.generate(output, **{**kwargs, "seed": 12})
        assert not same(first.outputs[0], other.outputs[0])


def test_replay_refuses_other_or_unknown_media(tiny_studio):
    result = tiny_studio.generate("image", image=Image.new("RGB", (8, 8), "blue"), steps=STEPS)
    with pytest.raises(ValueError, match="not the one"):
        tiny_studio.replay(result.recipe, image=Image.new("RGB", (8, 8), "green"))
    recipe = json.loads(json.dumps(result.recipe))
    recipe["inputs"]["image_sha256"] = "0" * 64
    with pytest.raises(ValueError, match="has not seen"):
        tiny_studio.replay(recipe)
    with pytest.raises(ValueError, match="recipe"):
        tiny_studio.replay({"kind": "something"})


def test_schedulers_swap_and_the_callback_sees_every_step(tiny_studio):
    seen = []
    ddim = tiny_studio.generate("image", text="a boat", steps=3, scheduler="ddim", on_step=lambda i, n: seen.append((i, n)))
    dpm = tiny_studio.generate("image", text="a boat", steps=3, scheduler="dpm++")
    assert seen == [(1, 3), (2, 3), (3, 3)]
    assert not same(ddim.outputs[0], dpm.outputs[0])
    assert ddim.recipe["scheduler"] == "ddim"


@pytest.mark.parametrize("output", ["image", "audio", "caption"])
def test_best_first_orders_the_variants_by_agreement_and_replays(tiny_studio, output):
    kwargs = dict(text="a red kite", seed=3, steps=STEPS, num=3, caption_method="sample")
    plain = tiny_studio.generate(output, **kwargs)
    ranked = tiny_studio.generate(output, **kwargs, best_first=True)
    assert plain.agreement is None and plain.recipe["order"] == [0, 1, 2] and plain.recipe["best_first"] is False
    # the same variants, reordered, with their scores falling
    order = ranked.recipe["order"]
    assert sorted(order) == [0, 1, 2] and ranked.recipe["best_first"] is True
    assert all(same(made, plain.outputs[i]) for made, i in zip(ranked.outputs, order, strict=True))
    assert ranked.agreement == sorted(ranked.agreement, reverse=True)
    # each score is the cosine, in the joint latent, between the inputs and that output read back
    pipeline = tiny_studio.pipeline
    mu = torch.from_numpy(tiny_studio.encode(text="a red kite").mu)
    assert ranked.agreement == pytest.approx(pipeline.agreement(ranked.outputs, output, mu), abs=1e-6)
    modality = {"image": "image", "audio": "audio", "caption": "text"}[output]
    if output != "caption" or ranked.outputs[0].strip():
        own = torch.from_numpy(tiny_studio.encode(**{modality: ranked.outputs[0]}).mu)
        assert ranked.agreement[0] == pytest.approx(float(torch.cosine_similarity(own, mu, dim=0)), abs=1e-5)
    again = tiny_studio.replay(json.loads(json.dumps(ranked.recipe)))
    assert again.recipe["order"] == order and all(same(a, b) for a, b in zip(ranked.outputs, again.outputs, strict=True))


def test_temperature_draws_each_variant_from_the_posterior_and_replays(tiny_studio):
    from core.fusion.joint import JointLatentModel

    kwargs = dict(text="a green frog", seed=4, steps=STEPS, num=2)
    mean = tiny_studio.generate("image", **kwargs)
    drawn = tiny_studio.generate("image", **kwargs, temperature=1.0)
    assert mean.recipe["temperature"] == 0.0 and drawn.recipe["temperature"] == 1.0  # the tiny studio's default: the mean
    assert not same(mean.outputs[0], drawn.outputs[0])
    again = tiny_studio.replay(json.loads(json.dumps(drawn.recipe)))
    assert all(same(a, b) for a, b in zip(drawn.outputs, again.outputs, strict=True))
    old = {k: v for k, v in mean.recipe.items() if k != "temperature"}  # a recipe from before the setting replays as the mean
    assert all(same(a, b) for a, b in zip(mean.outputs, tiny_studio.replay(old).outputs, strict=True))
    # the draw: mean + temperature * sigma * noise, one seeded stream per variant, apart from the decoders'
    mu, logvar = torch.zeros(1, 3), torch.full((1, 3), math.log(4.0))
    z = JointLatentModel.draw(mu, logvar, 0.5, [7, 8])
    assert z.shape == (2, 3) and not torch.equal(z[0], z[1])
    assert torch.equal(JointLatentModel.draw(mu, logvar, 0.5, [7])[0], z[0])
    assert torch.allclose(JointLatentModel.draw(mu, logvar, 1.0, [7])[0], 2 * z[0])  # sigma 2: twice the temperature, twice as far
    assert torch.equal(JointLatentModel.draw(mu + 1, logvar, 0.0, [7, 8]), torch.ones(2, 3))
    from core.decoders.embedding_prior import prior_generators

    decoders, prior = torch.randn(3, generator=torch.Generator().manual_seed(7)), torch.randn(3, generator=prior_generators([7])[0])
    assert not torch.allclose(z[0], decoders) and not torch.allclose(z[0], prior) and not torch.allclose(decoders, prior)  # three streams
    with pytest.raises(ValueError, match="temperature"):
        tiny_studio.generate("image", text="a frog", temperature=-0.1)


def test_an_output_that_cannot_be_read_back_ranks_last(tiny_studio):
    mu = torch.from_numpy(tiny_studio.encode(text="a bell").mu)
    silent, sound = (SAMPLE_RATE, np.zeros(4000, np.float32)), (SAMPLE_RATE, tone(0.5))
    scores = tiny_studio.pipeline.agreement([silent, sound], "audio", mu)
    assert scores[0] == -1.0 and -1.0 <= scores[1] <= 1.0
    assert tiny_studio.pipeline.agreement(["", "a bell"], "caption", mu)[0] == -1.0


def test_guidance_changes_the_output(tiny_studio):
    plain = tiny_studio.generate("image", text="a house", steps=STEPS, guidance=1.0)
    guided = tiny_studio.generate("image", text="a house", steps=STEPS, guidance=5.0)
    assert not same(plain.outputs[0], guided.outputs[0])


def test_interpolate_morphs_between_two_mixes_and_replays(tiny_studio):
    picture = Image.new("RGB", (20, 20), (250, 200, 0))
    mix_b = {"text": "a drum", "image": picture, "weights": {"text": 2.0, "image": 0.5}}
    result = tiny_studio.interpolate({"text": "a cat"}, mix_b, n=3, output="image", steps=STEPS)
    assert len(result.outputs) == 3
    assert not same(result.outputs[0], result.outputs[2])
    frames = []
    again = tiny_studio.interpolate({"text": "a cat"}, mix_b, n=3, output="image", steps=STEPS, on_step=lambda i, n: frames.append((i, n)))
    assert frames == [(1, 3), (2, 3), (3, 3)]
    again = tiny_studio.replay(json.loads(json.dumps(result.recipe)))
    assert all(same(a, b) for a, b in zip(result.outputs, again.outputs, strict=True))
    with pytest.raises(ValueError, match="n must be"):
        tiny_studio.interpolate({"text": "a"}, {"text": "b"}, n=1)


def test_search_finds_a_planted_match(tiny_studio):
    for key, text in [("cat", "a small cat"), ("truck", "a red fire truck"), ("sea", "waves on the sea")]:
        tiny_studio.add_to_gallery(key, text=text)
    hits = tiny_studio.search(text="a red fire truck", k=2)
    assert hits[0].key == "truck" and hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert len(hits) == 2
    tiny_studio.remove_from_gallery("truck")
    assert "truck" not in [hit.key for hit in tiny_studio.search(text="a red fire truck", k=3)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "at least one input"),
        ({"text": "a cat", "weights": {"text": 0.0}}, "zero"),
        ({"text": "a cat", "weights": {"text": -1.0}}, "negative"),
        ({"text": "a cat", "weights": {"text": float("nan")}}, "finite"),
        ({"text": "a cat", "weights": {"smell": 1.0}}, "Unknown weight"),
        ({"text": "   "}, "empty"),
        ({"audio": (SAMPLE_RATE, np.zeros(1000))}, "silent"),
        ({"audio": (SAMPLE_RATE, np.full(1000, np.nan))}, "NaN"),
        ({"image": b"not an image"}, "as an image"),
        ({"text": "a cat", "steps": 0}, "steps"),
        ({"text": "a cat", "guidance": float("inf")}, "guidance"),
        ({"text": "a cat", "num": 0}, "num_outputs"),
        ({"text": "a cat", "seed": -1}, "seed"),
        ({"text": "a cat", "scheduler": "euler"}, "scheduler"),
        ({"text": "a cat", "best_first": "yes"}, "best_first"),
    ],
)
def test_bad_requests_raise_value_errors(tiny_studio, kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny_studio.generate("image", **kwargs)


def test_unknown_output_raises(tiny_studio):
    with pytest.raises(ValueError, match="Unknown output"):
        tiny_studio.generate("video", text="a cat")


def test_whole_studio_round_trips_through_a_folder(tiny_studio, tmp_path):
    from core import load_studio

    tiny_studio.save_pretrained(tmp_path)
    assert (tmp_path / "model_index.json").is_file()
    assert not list(tmp_path.rglob("*.bin")) and not list(tmp_path.rglob("*.pth"))
    reloaded = load_studio(tmp_path)
    reloaded.pipeline._vocoder = tiny_studio.pipeline._vocoder
    assert reloaded.is_trained is False and reloaded.preset == "tiny"
    for output in ("image", "audio", "caption"):
        a = tiny_studio.generate(output, text="a bell", seed=3, steps=STEPS)
        b = reloaded.generate(output, text="a bell", seed=3, steps=STEPS)
        assert same(a.outputs[0], b.outputs[0]), output


def test_trained_parts_save_weights_and_reload_as_trained(tiny_studio, tmp_path):
    from core import load_studio

    joint = tiny_studio.pipeline.joint
    joint.is_trained = True
    try:
        tiny_studio.save_pretrained(tmp_path)
    finally:
        joint.is_trained = False
    assert list((tmp_path / "joint").glob("*.safetensors"))
    assert not list((tmp_path / "image_unet").glob("*.safetensors"))  # still untrained: config only
    reloaded = load_studio(tmp_path)
    assert getattr(reloaded.pipeline.joint, "is_trained", True) and not reloaded.is_trained


def test_a_part_trained_or_edited_without_the_flag_keeps_its_weights(tiny_studio, tmp_path):
    from core import load_studio

    condition = tiny_studio.pipeline.audio_condition
    original = {k: v.clone() for k, v in condition.state_dict().items()}
    assert not getattr(condition, "is_trained", True)
    try:
        with torch.no_grad():  # a user's own training step, which sets no flag
            next(condition.parameters()).add_(0.5)
        tiny_studio.save_pretrained(tmp_path)
    finally:
        condition.load_state_dict(original)
    assert list((tmp_path / "audio_condition").glob("*.safetensors"))  # written, not silently dropped
    assert not list((tmp_path / "image_unet").glob("*.safetensors"))  # untouched since its seed: config only
    reloaded = load_studio(tmp_path).pipeline.audio_condition
    assert torch.equal(next(reloaded.parameters()), next(condition.parameters()) + 0.5)


def test_trained_parts_can_be_saved_in_shards_and_reload_the_same(tiny_studio, tmp_path):
    from core import load_studio

    joint = tiny_studio.pipeline.joint
    joint.is_trained = True
    try:
        tiny_studio.pipeline.save_pretrained(tmp_path, max_shard_size="20KB")
    finally:
        joint.is_trained = False
    shards = list((tmp_path / "joint").glob("*-of-*.safetensors"))
    assert len(shards) > 1 and (tmp_path / "joint" / "diffusion_pytorch_model.safetensors.index.json").is_file()
    largest_tensor = max(t.numel() * t.element_size() for t in joint.state_dict().values())
    assert max(shard.stat().st_size for shard in shards) < max(20_000, largest_tensor) + 10_000  # header included
    reloaded = load_studio(tmp_path).pipeline.joint
    assert all(torch.equal(a, b) for a, b in zip(joint.state_dict().values(), reloaded.state_dict().values(), strict=True))


def test_the_pipeline_takes_a_generator_instead_of_a_seed(tiny_studio):
    import torch

    pipeline = tiny_studio.pipeline
    first = pipeline(text="a lamp", output="image", num_inference_steps=STEPS, generator=torch.Generator().manual_seed(5))
    second = pipeline(text="a lamp", output="image", num_inference_steps=STEPS, generator=torch.Generator().manual_seed(5))
    assert first.recipe["seed"] == second.recipe["seed"]
    assert same(first.outputs[0], second.outputs[0])


def test_live_previews_show_the_image_taking_shape(tiny_studio):
    previews = []
    result = tiny_studio.generate("image", text="a kite", steps=3, num=2, on_step=lambda i, n, p: previews.append((i, n, p)), previews=True)
    assert [(i, n) for i, n, _ in previews] == [(i, 6) for i in range(1, 7)]  # the variants one after another
    assert all(isinstance(p, Image.Image) and p.size == (64, 64) for _, _, p in previews)
    assert same(previews[2][2], result.outputs[0]) and same(previews[-1][2], result.outputs[1])  # each variant's last preview is that variant
