"""Training the sound encoder: CLIP-style alignment of sounds with their captions' text embeddings.

The text side (MiniLM) stays frozen; the sound CNN learns to land each 2-s log-mel window
near its caption's embedding and away from the other captions of the batch (symmetric
InfoNCE, Radford et al. 2021, eq. in fig. 3), so sounds and text share one space before the
joint model fuses them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from ..encoders.audio import SoundEncoder
from .loop import StageConfig, StageResult, StageRunner


def alignment_loss(sound: torch.Tensor, text: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE between unit-norm sound ``[B, D]`` and text ``[B, D]`` embeddings."""
    logits = log_scale.exp() * sound @ F.normalize(text, dim=-1).T  # (B, B)
    labels = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


def augment(mels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random gain (±6 dB in log-magnitude) and a circular time shift of log-mels ``[B, M, T]``."""
    batch = mels.shape[0]
    gain = (torch.rand(batch, 1, 1, generator=generator) - 0.5) * 2 * math.log(2.0)
    shift = int(torch.randint(0, mels.shape[-1], (1,), generator=generator))
    return torch.roll(mels + gain.to(mels), shifts=shift, dims=-1)


def train_sound_encoder(
    encoder: SoundEncoder,
    mels: torch.Tensor,
    text_embeddings: torch.Tensor,
    config: StageConfig,
    batch_size: int = 64,
    learning_rate: float = 3e-4,
) -> StageResult:
    """Trains ``encoder`` on log-mel windows ``[N, 80, T]`` paired with caption embeddings ``[N, D]``."""
    if mels.shape[0] != text_embeddings.shape[0] or mels.shape[0] < 2:
        raise ValueError(f"Need at least 2 pairs and one caption per sound; got {mels.shape[0]} and {text_embeddings.shape[0]}.")
    if text_embeddings.shape[1] != encoder.embed_dim:
        raise ValueError(f"The sound encoder gives {encoder.embed_dim}-d embeddings but the text ones are {text_embeddings.shape[1]}-d.")
    runner = StageRunner(config)
    for parameter in encoder.parameters():
        parameter.requires_grad_(True)
    temperature = torch.nn.Module()  # a module, so that checkpoints keep the learned scale
    temperature.log_scale = torch.nn.Parameter(torch.tensor(math.log(1 / 0.07)))
    optimizer = torch.optim.AdamW([*encoder.parameters(), temperature.log_scale], lr=learning_rate, weight_decay=0.01)
    loader = DataLoader(
        TensorDataset(mels.float(), text_embeddings.float()), batch_size=batch_size, shuffle=True,
        drop_last=mels.shape[0] > batch_size, generator=torch.Generator().manual_seed(config.seed),
    )
    network, temperature, optimizer, loader = runner.prepare(encoder.network, temperature, optimizer, loader)
    generator = torch.Generator().manual_seed(config.seed + 1)
    encoder.train()

    def step(batch, index: int) -> dict[str, float]:
        mel, text = batch
        loss = alignment_loss(network(augment(mel, generator)), text, temperature.log_scale.clamp(max=math.log(100)))
        optimizer.zero_grad(set_to_none=True)
        runner.backward(loss)
        optimizer.step()
        return {"loss": loss.item()}

    result = runner.run(loader, step)
    encoder.freeze()
    return result
