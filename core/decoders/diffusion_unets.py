"""The two conditional UNets: image latents (16x16x4) and log-mel spectrograms (80 bands).

Both are plain diffusers ``UNet2DConditionModel``s with small configurations for CPU; larger
ones are the same call with other arguments. Noise schedules live apart, in schedulers that
swap through ``from_config``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, UNet2DConditionModel

SCHEDULERS = {"ddim": DDIMScheduler, "dpm++": DPMSolverMultistepScheduler}


def build_image_unet(**overrides) -> UNet2DConditionModel:
    """A small UNet on 4x16x16 autoencoder latents, cross-attending to condition tokens."""
    config = dict(
        sample_size=16,
        in_channels=4,
        out_channels=4,
        block_out_channels=(64, 128, 192),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        layers_per_block=1,
        cross_attention_dim=256,
        attention_head_dim=32,
        norm_num_groups=32,
    )
    config.update(overrides)
    return UNet2DConditionModel(**config)


def build_mel_unet(**overrides) -> UNet2DConditionModel:
    """A small UNet on one-channel log-mel images ``[1, 80, frames]`` (frames a multiple of 8);
    attention only at the two coarsest resolutions, where the sequence is short. With
    ``in_channels=out_channels=4`` and ``sample_size=(40, frames / 2)`` it works on 2x2 patches
    folded into channels (``fold_mels``): a quarter of the pixels, about a quarter of the compute."""
    config = dict(
        sample_size=(80, 176),
        in_channels=1,
        out_channels=1,
        block_out_channels=(32, 64, 128, 128),
        down_block_types=("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        layers_per_block=1,
        cross_attention_dim=256,
        attention_head_dim=32,
        norm_num_groups=32,
    )
    config.update(overrides)
    return UNet2DConditionModel(**config)


def mel_patch(unet) -> int:
    """The side of the square patches a mel UNet folds into channels: 1 (none) for one input
    channel, 2 for four (each 2x2 patch of the log-mel in four channels, a quarter of the pixels)."""
    return math.isqrt(unet.config.in_channels)


def fold_mels(mels: torch.Tensor, patch: int) -> torch.Tensor:
    """``[N, 1, 80, T]`` log-mels → ``[N, patch², 80 / patch, T / patch]`` (space to depth)."""
    return F.pixel_unshuffle(mels, patch) if patch > 1 else mels


def unfold_mels(folded: torch.Tensor, patch: int) -> torch.Tensor:
    """The inverse of ``fold_mels``."""
    return F.pixel_shuffle(folded, patch) if patch > 1 else folded


def build_scheduler(name: str = "dpm++", num_train_timesteps: int = 1000, prediction_type: str = "epsilon"):
    """A noise scheduler by name (``"ddim"`` or ``"dpm++"``), with the training schedule shared by both."""
    if name not in SCHEDULERS:
        raise ValueError(f"Unknown scheduler {name!r}; choose one of {sorted(SCHEDULERS)}.")
    shared = dict(num_train_timesteps=num_train_timesteps, beta_schedule="squaredcos_cap_v2", prediction_type=prediction_type)
    extra = {"clip_sample": False} if name == "ddim" else {"algorithm_type": "dpmsolver++"}
    return SCHEDULERS[name](**shared, **extra)


def swap_scheduler(scheduler, name: str):
    """The same noise schedule under another sampler (``from_config``), e.g. DDIM ↔ DPM-Solver++."""
    if name not in SCHEDULERS:
        raise ValueError(f"Unknown scheduler {name!r}; choose one of {sorted(SCHEDULERS)}.")
    return SCHEDULERS[name].from_config(scheduler.config)
