"""The image autoencoder, its PatchGAN discriminator, the perceptual loss and the resumable GAN stage."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from torch import nn

from core.decoders.discriminator import PatchDiscriminator
from core.decoders.image_autoencoder import (
    build_image_autoencoder,
    decode_latents,
    encode_images,
    estimate_scaling_factor,
    images_to_pixels,
    pixels_to_images,
    upsample_factor,
    upscaling_autoencoder,
)
from core.training.image_autoencoder import (
    AutoencoderGANConfig,
    PerceptualLoss,
    train_image_autoencoder,
)
from core.training.loop import StageConfig

TINY = {"block_out_channels": (8, 16)}  # one downsampling: 64x64 → 4x32x32
STEPS = 16  # per training call; the GAN terms start at STEPS


def shapes_images(count: int = 32, seed: int = 0) -> list[Image.Image]:
    """Coloured ellipses and rectangles on white, 64x64."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        image = Image.new("RGB", (64, 64), "white")
        draw = ImageDraw.Draw(image)
        for _ in range(2):
            x, y = rng.integers(0, 40, 2)
            size = int(rng.integers(12, 28))
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
            shape((int(x), int(y), int(x) + size, int(y) + size), fill=colour)
        images.append(image)
    return images


class TinyFeatures(nn.Module):
    """A random two-level conv feature net standing in for EfficientNet in the fast tests."""

    def __init__(self):
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU())

    def forward(self, pixels: torch.Tensor) -> list[torch.Tensor]:
        a = self.a(pixels)
        return [a, self.b(a)]


def tiny_models(seed: int = 0):
    torch.manual_seed(seed)
    return build_image_autoencoder(**TINY), PatchDiscriminator(base_channels=8)


def train(vae, discriminator, pixels, output_dir, max_steps: int):
    torch.manual_seed(0)
    config = StageConfig(output_dir, max_steps=max_steps, checkpoint_every=STEPS, log_every=4, seed=0)
    training = AutoencoderGANConfig(
        batch_size=8, learning_rate=1e-3, discriminator_learning_rate=1e-3, disc_start=STEPS
    )
    return train_image_autoencoder(vae, discriminator, pixels, config, training, PerceptualLoss(TinyFeatures()))


def state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in module.state_dict().items()}


def same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def pixels() -> torch.Tensor:
    return images_to_pixels(shapes_images())  # (32, 3, 64, 64)


@pytest.fixture(scope="module")
def staged(pixels, tmp_path_factory):
    """Trains to STEPS (reconstruction only), reloads into fresh models, then resumes to 2 * STEPS (GAN on)."""
    output_dir = tmp_path_factory.mktemp("image_autoencoder")
    vae, discriminator = tiny_models(seed=0)
    discriminator_init = state(discriminator)
    first = train(vae, discriminator, pixels, output_dir, STEPS)
    after_first = {"vae": state(vae), "discriminator": state(discriminator)}

    vae, discriminator = tiny_models(seed=1)  # other weights: whatever matches came from the checkpoint
    reloaded = train(vae, discriminator, pixels, output_dir, STEPS)
    after_reload = {"vae": state(vae), "discriminator": state(discriminator)}
    second = train(vae, discriminator, pixels, output_dir, 2 * STEPS)
    return {
        "first": first,
        "reloaded": reloaded,
        "second": second,
        "discriminator_init": discriminator_init,
        "after_first": after_first,
        "after_reload": after_reload,
        "after_second": {"vae": state(vae), "discriminator": state(discriminator)},
        "vae": vae,
    }


# Shapes and conversions


def test_default_autoencoder_maps_64x64_to_4x16x16():
    torch.manual_seed(0)
    vae = build_image_autoencoder().eval()
    pixels = torch.rand(2, 3, 64, 64) * 2 - 1
    latents = encode_images(vae, pixels)
    assert latents.shape == (2, 4, 16, 16)
    decoded = decode_latents(vae, latents)
    assert decoded.shape == (2, 3, 64, 64)
    assert decoded.min() >= -1 and decoded.max() <= 1
    assert vae.config.norm_num_groups == 8


def test_tiny_autoencoder_shapes_and_batch_equals_single(pixels):
    vae, _ = tiny_models()
    vae.eval()
    latents = encode_images(vae, pixels[:3])
    assert latents.shape == (3, 4, 32, 32)
    assert decode_latents(vae, latents).shape == (3, 3, 64, 64)
    single = encode_images(vae, pixels[1:2])
    torch.testing.assert_close(latents[1:2], single, rtol=1e-4, atol=1e-5)
    sampled = encode_images(vae, pixels[:3], sample=True, generator=torch.Generator().manual_seed(0))
    assert sampled.shape == latents.shape and not torch.equal(sampled, latents)


def test_pil_round_trip_is_exact_and_any_size_is_cropped():
    images = shapes_images(count=3)
    pixels = images_to_pixels(images)
    assert pixels.shape == (3, 3, 64, 64) and pixels.min() >= -1 and pixels.max() <= 1
    for original, restored in zip(images, pixels_to_images(pixels), strict=True):
        assert np.array_equal(np.asarray(original), np.asarray(restored))
    wide = Image.new("RGBA", (200, 100), (255, 0, 0, 128))
    assert images_to_pixels([wide]).shape == (1, 3, 64, 64)


def test_bad_inputs_raise_with_a_fix():
    vae, _ = tiny_models()
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        encode_images(vae, torch.full((1, 3, 64, 64), 255.0))
    with pytest.raises(ValueError, match="shape"):
        encode_images(vae, torch.zeros(3, 64, 64))
    with pytest.raises(ValueError, match="norm_num_groups"):
        build_image_autoencoder(block_out_channels=(8, 12), norm_num_groups=8)
    with pytest.raises(ValueError, match="norm"):
        PatchDiscriminator(norm="spectral")


def test_scaling_factor_gives_unit_std_latents(pixels):
    vae, _ = tiny_models()
    vae.eval()
    factor = estimate_scaling_factor(vae, pixels, batch_size=10)
    assert vae.config.scaling_factor == pytest.approx(factor)
    assert float(encode_images(vae, pixels).std()) == pytest.approx(1.0, rel=1e-4)


def test_discriminator_gives_patch_logits():
    for num_layers, side in [(1, 30), (2, 14), (3, 6)]:
        discriminator = PatchDiscriminator(base_channels=8, num_layers=num_layers)
        assert discriminator(torch.zeros(2, 3, 64, 64)).shape == (2, 1, side, side)


# Save and load


def test_autoencoder_round_trip(tmp_path, pixels):
    vae, _ = tiny_models()
    vae.eval()
    estimate_scaling_factor(vae, pixels)
    vae.save_pretrained(tmp_path)
    loaded = type(vae).from_pretrained(tmp_path).eval()
    assert loaded.config.scaling_factor == vae.config.scaling_factor
    latents = encode_images(vae, pixels[:4])
    assert torch.equal(latents, encode_images(loaded, pixels[:4]))
    assert torch.equal(decode_latents(vae, latents), decode_latents(loaded, latents))


def test_discriminator_round_trip(tmp_path, pixels):
    _, discriminator = tiny_models()
    discriminator(pixels)  # moves the BatchNorm running statistics off their defaults
    discriminator.eval()
    discriminator.save_pretrained(tmp_path)
    loaded = PatchDiscriminator.from_pretrained(tmp_path).eval()
    assert loaded.config.base_channels == 8
    assert torch.equal(discriminator(pixels[:4]), loaded(pixels[:4]))


# Training


def test_reconstruction_loss_falls(staged):
    history = staged["first"].history
    assert history[-1]["rec"] < 0.7 * history[0]["rec"]
    assert history[-1]["perceptual"] < history[0]["perceptual"]


def test_discriminator_waits_for_disc_start_then_learns(staged):
    assert "d_loss" not in {key for row in staged["first"].history for key in row}
    assert same_state(staged["after_first"]["discriminator"], staged["discriminator_init"])
    rows = staged["second"].history
    for key in ("g_adv", "adv_weight", "d_loss", "logits_real", "logits_fake"):
        assert all(np.isfinite(row[key]) for row in rows), key
    assert not same_state(staged["after_second"]["discriminator"], staged["discriminator_init"])
    assert rows[-1]["d_loss"] < 1.0  # 1.0 is the hinge loss of a discriminator that says 0 everywhere
    assert rows[-1]["logits_real"] > rows[-1]["logits_fake"]


def test_training_resumes_from_the_checkpoint(staged):
    first, reloaded, second = staged["first"], staged["reloaded"], staged["second"]
    assert (first.step, first.finished) == (STEPS, True)
    assert (reloaded.step, reloaded.history) == (STEPS, [])  # nothing left to do
    assert same_state(staged["after_reload"]["vae"], staged["after_first"]["vae"])
    assert same_state(staged["after_reload"]["discriminator"], staged["after_first"]["discriminator"])
    assert second.step == 2 * STEPS
    assert [row["step"] for row in second.history] == list(range(STEPS + 4, 2 * STEPS + 1, 4))
    assert not same_state(staged["after_second"]["vae"], staged["after_first"]["vae"])


def test_decoder_only_training_keeps_the_latent_space(pixels, tmp_path):
    vae, discriminator = tiny_models(seed=2)
    before = state(vae)
    with torch.no_grad():
        latents = vae.encode(pixels[:4]).latent_dist.mean
    config = StageConfig(tmp_path, max_steps=4, checkpoint_every=STEPS, log_every=1, seed=0)
    training = AutoencoderGANConfig(batch_size=8, learning_rate=1e-3, adversarial_weight=0.0, train_encoder=False)
    result = train_image_autoencoder(vae, discriminator, pixels, config, training, PerceptualLoss(TinyFeatures()))
    after = state(vae)
    frozen = [name for name in before if name.startswith(("encoder.", "quant_conv."))]
    assert frozen and all(torch.equal(before[name], after[name]) for name in frozen)
    assert any(not torch.equal(before[name], after[name]) for name in before if name.startswith("decoder."))
    with torch.no_grad():
        assert torch.equal(vae.encode(pixels[:4]).latent_dist.mean, latents)
    assert all(parameter.requires_grad for parameter in vae.parameters())  # left as it was found
    assert "d_loss" not in {key for row in result.history for key in row}


def test_upscaling_autoencoder_starts_as_the_old_decoder_enlarged(pixels, tmp_path):
    vae, _ = tiny_models(seed=3)
    larger = upscaling_autoencoder(vae)
    assert upsample_factor(larger) == 2 * upsample_factor(vae) and larger.config.sample_size == 128
    with torch.no_grad():
        latents = encode_images(vae, pixels[:4])
        assert torch.equal(encode_images(larger, pixels[:4]), latents)  # the same encoder, the same latents
        small, large = decode_latents(vae, latents), decode_latents(larger, latents)  # (4, 3, 64, 64), (4, 3, 128, 128)
    assert large.shape == (4, 3, 128, 128)
    enlarged = torch.nn.functional.interpolate(small, scale_factor=2, mode="nearest")
    # the last 3x3 convolution sees the enlarged features, so not exactly, but near: a random decoder's noise is far
    assert (large - enlarged).abs().mean() < 0.5 * (large - decode_latents(upscaling_autoencoder(tiny_models(seed=4)[0]), latents)).abs().mean()
    larger.save_pretrained(tmp_path / "vae")
    from diffusers import AsymmetricAutoencoderKL

    reloaded = AsymmetricAutoencoderKL.from_pretrained(tmp_path / "vae")
    with torch.no_grad():
        assert torch.equal(decode_latents(reloaded, latents), large)
    with pytest.raises(ValueError, match="symmetric"):
        upscaling_autoencoder(larger)


def test_upscaling_decoder_learns_the_larger_pictures(pixels, tmp_path):
    """Decoder-only training on (64-px input, 128-px target) pairs: the encoder stays, the loss falls."""
    vae = upscaling_autoencoder(tiny_models(seed=5)[0])
    targets = images_to_pixels(shapes_images(), size=128)
    before = state(vae)
    config = StageConfig(tmp_path, max_steps=24, checkpoint_every=100, log_every=4, seed=0)
    training = AutoencoderGANConfig(batch_size=8, learning_rate=2e-3, adversarial_weight=0.0, train_encoder=False)
    result = train_image_autoencoder(vae, PatchDiscriminator(base_channels=8), (pixels, targets), config, training, PerceptualLoss(TinyFeatures()))
    after = state(vae)
    assert all(torch.equal(before[n], after[n]) for n in before if n.startswith(("encoder.", "quant_conv.", "decoder.condition_encoder.")))
    assert result.history[-1]["rec"] < 0.8 * result.history[0]["rec"]
    with pytest.raises(ValueError, match="matching sizes"):  # 64-px targets for a 128-px decoder
        train_image_autoencoder(vae, PatchDiscriminator(base_channels=8), (pixels, pixels), StageConfig(tmp_path / "b", max_steps=1), training, PerceptualLoss(TinyFeatures()))


def test_training_rejects_unscaled_images(tmp_path):
    vae, discriminator = tiny_models()
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        train(vae, discriminator, torch.full((4, 3, 64, 64), 255.0), tmp_path, 1)


# The perceptual loss on the real EfficientNet-Lite0


@pytest.mark.slow
def test_perceptual_loss_grows_with_distortion(pixels):
    loss = PerceptualLoss()
    assert not any(p.requires_grad for p in loss.parameters())
    clean = pixels[:8]
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(clean.shape, generator=generator)
    assert float(loss(clean, clean)) == 0.0
    values = [float(loss((clean + sigma * noise).clamp(-1, 1), clean)) for sigma in (0.05, 0.2, 0.5)]
    assert 0 < values[0] < values[1] < values[2]
    blurred = torch.nn.functional.avg_pool2d(clean, 5, stride=1, padding=2, count_include_pad=False)
    assert float(loss(blurred, clean)) > 0
    distorted = blurred.clone().requires_grad_()
    loss.train()(distorted, clean).backward()  # gradients reach the image; the frozen net stays in eval
    assert distorted.grad.abs().sum() > 0 and not loss.features.training
