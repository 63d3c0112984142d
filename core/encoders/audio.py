"""Sound embeddings: resampled mono → log-mel → a small convolutional network (trained by us).

Sounds of any rate, channel count and length are accepted. A sound is cut into windows of
``clip_seconds`` (a short one is padded with silence, a long one gives up to ``max_windows``
evenly spaced windows); each window is embedded and the window embeddings are averaged, so a
batch gives exactly what its items give one by one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.configuration_utils import register_to_config
from torch import nn

from ..audio import SAMPLE_RATE, log_mel_spectrogram, prepare_waveform, split_windows
from .base import Encoder


class ConvBlock(nn.Module):
    """Two 3x3 convolutions with GroupNorm and SiLU, then 2x2 average pooling."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1),
            nn.GroupNorm(min(8, out_channels), out_channels),
            nn.SiLU(),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
            nn.GroupNorm(min(8, out_channels), out_channels),
            nn.SiLU(),
            nn.AvgPool2d(2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class SoundCNN(nn.Module):
    """Log-mel spectrogram ``[B, n_mels, frames]`` → unit-norm embedding ``[B, embed_dim]``."""

    def __init__(self, block_channels: tuple[int, ...], embed_dim: int, mel_mean: float, mel_std: float):
        super().__init__()
        channels = (1, *block_channels)
        self.blocks = nn.Sequential(*[ConvBlock(a, b) for a, b in zip(channels[:-1], channels[1:], strict=True)])
        self.project = nn.Linear(2 * block_channels[-1], embed_dim)
        self.mel_mean, self.mel_std = mel_mean, mel_std

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = (mel.unsqueeze(1) - self.mel_mean) / self.mel_std  # (B, 1, M, T)
        x = self.blocks(x).mean(2)  # (B, C, T')
        pooled = torch.cat([x.mean(-1), x.amax(-1)], dim=-1)  # (B, 2C)
        return F.normalize(self.project(pooled), dim=-1)  # (B, D)


class SoundEncoder(Encoder):
    """Sound → embedding ``[B, embed_dim]`` through ``SoundCNN``, window embeddings averaged.

    Trained by the project (``studio-train``); saved and loaded as config + safetensors.
    """

    modality = "audio"

    @register_to_config
    def __init__(
        self,
        n_mels: int = 80,
        block_channels: tuple[int, ...] = (32, 64, 128, 256),
        embed_dim: int = 384,
        clip_seconds: float = 2.0,
        max_windows: int = 8,
        mel_mean: float = -6.0,  # rough statistics of natural-log mels, to centre the input
        mel_std: float = 3.0,
    ):
        super().__init__()
        self.network = SoundCNN(tuple(block_channels), embed_dim, mel_mean, mel_std)
        self.embed_dim = embed_dim
        self.freeze()

    def is_single(self, item) -> bool:
        return isinstance(item, (str, Path)) or (
            isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], np.ndarray)
        )

    def preprocess(self, items: Sequence) -> dict[str, torch.Tensor]:
        length = round(self.config.clip_seconds * SAMPLE_RATE)
        mels, owners = [], []
        for index, item in enumerate(items):
            for window in split_windows(prepare_waveform(item), length, self.config.max_windows):
                mels.append(log_mel_spectrogram(window))
                owners.append(index)
        return {
            "mel": torch.from_numpy(np.stack(mels)).to(self.device),  # (W, M, T)
            "owner": torch.tensor(owners, device=self.device),  # (W,)
            "count": torch.tensor(len(items)),
        }

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        windows = self.network(inputs["mel"])  # (W, D)
        count = int(inputs["count"])
        summed = windows.new_zeros(count, windows.shape[-1]).index_add_(0, inputs["owner"], windows)  # (B, D)
        return F.normalize(summed, dim=-1)
