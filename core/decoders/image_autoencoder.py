"""The image autoencoder of the latent diffusion decoder: 64x64 RGB in [-1, 1] → 4x16x16 latents → 128x128 RGB.

A small ``diffusers.AutoencoderKL`` (the Stable Diffusion VAE architecture, scaled down),
trained by ``core.training.image_autoencoder`` with L1 + perceptual + KL + PatchGAN losses
(Esser et al. 2021, "Taming Transformers"; Rombach et al. 2022, "Latent Diffusion"). Its
decoder then gains one more 2x upsampling (``upscaling_autoencoder``, a
``diffusers.AsymmetricAutoencoderKL``) and is trained alone on 128-px pictures: the latent the
image UNet denoises stays 16x16, so a 128-px picture costs no more denoising than a 64-px one.
Diffusion runs on ``latent * scaling_factor``, where ``scaling_factor`` is 1 / std of the
training latents (``estimate_scaling_factor``) so that the diffusion model sees unit variance.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from diffusers import AsymmetricAutoencoderKL, AutoencoderKL
from PIL import Image

from ..encoders.image import image_to_tensor
from ..media import ImageInput, load_image

IMAGE_SIZE = 64

DEFAULT_CONFIG = {
    "in_channels": 3,
    "out_channels": 3,
    "block_out_channels": (32, 64, 128),  # three levels: two 2x downsamplings, 64 → 16
    "layers_per_block": 1,
    "latent_channels": 4,
    "sample_size": IMAGE_SIZE,
    "scaling_factor": 1.0,  # replaced by ``estimate_scaling_factor`` after training
    "force_upcast": False,
}


def default_norm_groups(block_out_channels: Sequence[int]) -> int:
    """GroupNorm groups that divide every level's channels, with at least 4 channels a group, at most 32 groups."""
    return max(1, min(32, math.gcd(*block_out_channels) // 4))


def build_image_autoencoder(**overrides) -> AutoencoderKL:
    """A randomly initialised ``AutoencoderKL``: ``DEFAULT_CONFIG`` updated with ``overrides``.

    The down and up block types and ``norm_num_groups`` follow ``block_out_channels`` unless
    given. Use ``AutoencoderKL.from_pretrained(folder)`` to load a trained one.
    """
    config = {**DEFAULT_CONFIG, **overrides}
    channels = tuple(config["block_out_channels"])
    config["block_out_channels"] = channels
    config.setdefault("down_block_types", ("DownEncoderBlock2D",) * len(channels))
    config.setdefault("up_block_types", ("UpDecoderBlock2D",) * len(channels))
    config.setdefault("norm_num_groups", default_norm_groups(channels))
    if any(c % config["norm_num_groups"] for c in channels):
        raise ValueError(
            f"norm_num_groups={config['norm_num_groups']} must divide every entry of "
            f"block_out_channels={channels}; leave it out to get {default_norm_groups(channels)}."
        )
    return AutoencoderKL(**config)


def upscaling_autoencoder(vae: AutoencoderKL, levels: int = 1) -> AsymmetricAutoencoderKL:
    """A copy of a trained autoencoder whose decoder ends in ``levels`` more 2x upsamplings.

    Every weight of ``vae`` is kept under the same name; the new layers start as an identity
    (each new upsampler's convolution a Dirac kernel, each new residual block's last
    convolution zero), so before any training the result decodes what ``vae`` did, enlarged.
    The decoder's ``condition_encoder`` (``AsymmetricAutoencoderKL``'s inpainting input) is
    never used here.
    """
    config = vae.config
    if isinstance(vae, AsymmetricAutoencoderKL) or levels < 1:
        raise ValueError("upscaling_autoencoder takes a symmetric AutoencoderKL and at least one level.")
    channels = tuple(config.block_out_channels)
    larger = AsymmetricAutoencoderKL(
        in_channels=config.in_channels, out_channels=config.out_channels,
        down_block_types=tuple(config.down_block_types), down_block_out_channels=channels,
        layers_per_down_block=config.layers_per_block,
        up_block_types=("UpDecoderBlock2D",) * (len(channels) + levels), up_block_out_channels=(channels[0],) * levels + channels,
        layers_per_up_block=config.layers_per_block, act_fn=config.act_fn, latent_channels=config.latent_channels,
        norm_num_groups=config.norm_num_groups, sample_size=config.sample_size * 2**levels,
        scaling_factor=config.scaling_factor,
    )
    missing, unexpected = larger.load_state_dict(vae.state_dict(), strict=False)
    if unexpected:
        raise ValueError(f"upscaling_autoencoder: weights with no place in the larger decoder: {unexpected[:5]}")
    with torch.no_grad():
        blocks = larger.decoder.up_blocks
        for block in blocks[len(channels) - 1 : -1]:  # the old last block and the new ones but the last upsample
            conv = block.upsamplers[0].conv
            torch.nn.init.dirac_(conv.weight)
            conv.bias.zero_()
        for block in blocks[len(channels) :]:
            for resnet in block.resnets:
                resnet.conv2.weight.zero_()
                resnet.conv2.bias.zero_()
    return larger.to(vae.dtype).eval() if vae.dtype != torch.float32 else larger.eval()


def downsample_factor(vae: AutoencoderKL | AsymmetricAutoencoderKL) -> int:
    """How many pixels of the encoder's input one latent cell covers along each side (2 per level after the first)."""
    channels = vae.config.down_block_out_channels if isinstance(vae, AsymmetricAutoencoderKL) else vae.config.block_out_channels
    return 2 ** (len(channels) - 1)


def upsample_factor(vae: AutoencoderKL | AsymmetricAutoencoderKL) -> int:
    """How many pixels of the decoder's output one latent cell becomes along each side."""
    channels = vae.config.up_block_out_channels if isinstance(vae, AsymmetricAutoencoderKL) else vae.config.block_out_channels
    return 2 ** (len(channels) - 1)


def _check_pixels(vae: AutoencoderKL, pixels: torch.Tensor) -> None:
    factor = downsample_factor(vae)
    if pixels.ndim != 4 or pixels.shape[1] != vae.config.in_channels:
        raise ValueError(
            f"Expected pixels of shape [B, {vae.config.in_channels}, H, W], got {tuple(pixels.shape)}; "
            "convert PIL images with images_to_pixels."
        )
    if pixels.shape[2] % factor or pixels.shape[3] % factor:
        raise ValueError(f"Image sides must be multiples of {factor}, got {tuple(pixels.shape[2:])}.")
    if pixels.numel() and (pixels.min() < -1.001 or pixels.max() > 1.001):
        raise ValueError(
            f"Pixels must lie in [-1, 1], got [{pixels.min():.3f}, {pixels.max():.3f}]; "
            "map [0, 1] images with 2 * x - 1 or use images_to_pixels."
        )


@torch.no_grad()
def encode_images(
    vae: AutoencoderKL,
    pixels: torch.Tensor,
    sample: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Pixels ``[B, 3, H, W]`` in [-1, 1] → scaled latents ``[B, C, H/f, W/f]`` (posterior mean, or a sample)."""
    _check_pixels(vae, pixels)
    posterior = vae.encode(pixels).latent_dist
    latents = posterior.sample(generator) if sample else posterior.mean
    return latents * vae.config.scaling_factor


@torch.no_grad()
def decode_latents(vae: AutoencoderKL, latents: torch.Tensor) -> torch.Tensor:
    """Scaled latents ``[B, C, h, w]`` → pixels ``[B, 3, h*f, w*f]`` clamped to [-1, 1] (``f``: ``upsample_factor``)."""
    if latents.ndim != 4 or latents.shape[1] != vae.config.latent_channels:
        raise ValueError(
            f"Expected latents of shape [B, {vae.config.latent_channels}, h, w], got {tuple(latents.shape)}."
        )
    pixels = vae.decode(latents / vae.config.scaling_factor).sample
    return pixels.clamp(-1.0, 1.0)


@torch.no_grad()
def estimate_scaling_factor(
    vae: AutoencoderKL, pixels: torch.Tensor | Iterable[torch.Tensor], batch_size: int = 64
) -> float:
    """Sets ``vae.config.scaling_factor`` to 1 / std of the unscaled latent means of ``pixels`` and returns it.

    ``pixels`` is a ``[N, 3, H, W]`` tensor or an iterable of such batches. Latent Diffusion
    rescales its autoencoder's latents the same way, by one scalar for all channels.
    """
    batches = pixels.split(batch_size) if isinstance(pixels, torch.Tensor) else pixels
    was_training = vae.training
    vae.eval()
    latents = []
    for batch in batches:
        _check_pixels(vae, batch)
        latents.append(vae.encode(batch.to(vae.device, vae.dtype)).latent_dist.mean.float().cpu())
    vae.train(was_training)
    if not latents:
        raise ValueError("estimate_scaling_factor needs at least one image.")
    std = float(torch.cat(latents).std())
    if not math.isfinite(std) or std == 0.0:
        raise ValueError(f"The latents have std {std}; the autoencoder is broken or the images are empty.")
    vae.register_to_config(scaling_factor=1.0 / std)
    return 1.0 / std


def images_to_pixels(images: Sequence[ImageInput], size: int = IMAGE_SIZE) -> torch.Tensor:
    """PIL images or paths → ``[B, 3, size, size]`` in [-1, 1] (any mode; shorter side resized, centre crop)."""
    if isinstance(images, (Image.Image, str, bytes, os.PathLike)):
        raise ValueError("images_to_pixels takes a list of images; wrap a single image in [image].")
    return torch.stack([image_to_tensor(load_image(image), size) for image in images])


def pixels_to_images(pixels: torch.Tensor) -> list[Image.Image]:
    """``[B, 3, H, W]`` in [-1, 1] → RGB PIL images (values outside [-1, 1] are clamped)."""
    if pixels.ndim != 4 or pixels.shape[1] != 3:
        raise ValueError(f"Expected pixels of shape [B, 3, H, W], got {tuple(pixels.shape)}.")
    array = ((pixels.detach().float().clamp(-1, 1) + 1) * 127.5).round()  # (B, 3, H, W) in [0, 255]
    array = array.permute(0, 2, 3, 1).to(torch.uint8).cpu().numpy()  # (B, H, W, 3)
    return [Image.fromarray(np.ascontiguousarray(item)) for item in array]
