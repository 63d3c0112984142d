"""A PatchGAN discriminator: one real/fake logit per overlapping image patch.

The pix2pix ``NLayerDiscriminator`` (Isola et al. 2017), as used by Taming Transformers:
a 4x4 stride-2 convolution with LeakyReLU, ``num_layers - 1`` more stride-2 convolutions
with a norm, one stride-1 convolution, then a stride-1 convolution to one logit a patch.
With the defaults a 64x64 image gives 14x14 logits, each seeing a 34x34 patch.
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

NORMS = ("batch", "instance", "none")


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels)
    return nn.Identity()


class PatchDiscriminator(ModelMixin, ConfigMixin):
    """Pixels ``[B, C, H, W]`` in [-1, 1] → patch logits ``[B, 1, H', W']`` (positive = real)."""

    @register_to_config
    def __init__(
        self,
        in_channels: int = 3,
        base_channels: int = 64,
        num_layers: int = 2,
        norm: str = "batch",
        max_channel_multiplier: int = 8,
        negative_slope: float = 0.2,
    ):
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}.")
        if num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, got {num_layers}.")
        use_bias = norm != "batch"  # BatchNorm has its own shift; InstanceNorm2d (affine=False) has none
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, base_channels, 4, stride=2, padding=1),
            nn.LeakyReLU(negative_slope),
        ]
        channels = base_channels
        for index in range(1, num_layers + 1):
            stride = 2 if index < num_layers else 1  # the last feature layer keeps the resolution
            out_channels = base_channels * min(2**index, max_channel_multiplier)
            layers += [
                nn.Conv2d(channels, out_channels, 4, stride=stride, padding=1, bias=use_bias),
                _norm(norm, out_channels),
                nn.LeakyReLU(negative_slope),
            ]
            channels = out_channels
        layers.append(nn.Conv2d(channels, 1, 4, stride=1, padding=1))
        self.layers = nn.Sequential(*layers)
        self.apply(_init_weights)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.layers(pixels)  # (B, 1, H', W')


def _init_weights(module: nn.Module) -> None:
    """DCGAN initialisation, as in pix2pix and Taming Transformers."""
    if isinstance(module, nn.Conv2d):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)
