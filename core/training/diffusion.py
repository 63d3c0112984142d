"""Training a conditional diffusion decoder (image latents or log-mels) on single-modality data.

Each decoder learns ``p(x | e)`` from samples ``x`` and their own encoder's embedding ``e``;
no pairs across modalities are needed. The condition is dropped with probability
``drop_probability`` so the same network also learns the unconditional score that
classifier-free guidance needs.

Samples are noised by the forward process of ``DDPMScheduler`` built from the sampler's
config (same betas, same prediction type). The samplers' own ``add_noise`` is not safe for
training: a DPM-Solver scheduler on which ``set_timesteps`` has not been called maps
timestep ``t`` to the noise level of ``999 - t``.

The loss is weighted by Min-SNR-γ (Hang et al. 2023, "Efficient Diffusion Training via
Min-SNR Weighting Strategy"), which keeps the nearly clean steps from dominating the
gradient (the paper reports 3.4x faster convergence); the weights a stage saves are an exponential moving average of the
trained ones (``EMAModel``), as in DDPM and Latent Diffusion.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from diffusers.training_utils import EMAModel, compute_snr
from torch.utils.data import DataLoader, TensorDataset

from ..decoders.conditioning import EmbeddingProjector
from .loop import StageConfig, StageResult, StageRunner


def diffusion_loss(
    unet,
    projector: EmbeddingProjector,
    scheduler,
    samples: torch.Tensor,
    embeddings: torch.Tensor,
    drop_probability: float = 0.1,
    generator: torch.Generator | None = None,
    snr_gamma: float | None = 5.0,
) -> torch.Tensor:
    """Denoising loss (DDPM, Ho et al. 2020, eq. 14) on clean ``samples [B, C, H, W]``;
    ``scheduler`` is the sampler (or its forward process, ``forward_process(sampler)``).
    ``snr_gamma`` weights each sample by Min-SNR-γ; ``None`` gives the plain mean squared error."""
    scheduler = forward_process(scheduler)
    batch = samples.shape[0]
    device = samples.device
    noise = torch.randn(samples.shape, generator=generator, device=device)
    timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (batch,), generator=generator, device=device)
    noisy = scheduler.add_noise(samples, noise, timesteps)
    drop = torch.rand(batch, generator=generator, device=device) < drop_probability
    tokens = projector(embeddings, drop)  # (B, K, C)
    prediction = unet(noisy, timesteps, encoder_hidden_states=tokens).sample
    if scheduler.config.prediction_type == "v_prediction":
        target = scheduler.get_velocity(samples, noise, timesteps)
    else:
        target = noise
    if snr_gamma is None:
        return F.mse_loss(prediction, target)
    per_sample = F.mse_loss(prediction.float(), target.float(), reduction="none").mean(dim=tuple(range(1, samples.ndim)))
    return (per_sample * min_snr_weights(scheduler, timesteps, snr_gamma)).mean()


def min_snr_weights(scheduler: DDPMScheduler, timesteps: torch.Tensor, gamma: float) -> torch.Tensor:
    """Min-SNR-γ loss weights ``[B]`` for ``timesteps``: min(SNR, γ) / SNR for ε-prediction,
    min(SNR, γ) / (SNR + 1) for v-prediction (both equal min(SNR, γ) in x₀-error terms)."""
    snr = compute_snr(scheduler, timesteps)
    clipped = snr.clamp(max=gamma)
    return clipped / (snr + 1) if scheduler.config.prediction_type == "v_prediction" else clipped / snr


def forward_process(scheduler) -> DDPMScheduler:
    """The DDPM forward process (noising) with the schedule of ``scheduler``."""
    return scheduler if isinstance(scheduler, DDPMScheduler) else DDPMScheduler.from_config(scheduler.config)


def train_diffusion_decoder(
    unet,
    projector: EmbeddingProjector,
    scheduler,
    samples: torch.Tensor,
    embeddings: torch.Tensor,
    config: StageConfig,
    batch_size: int = 32,
    learning_rate: float = 2e-4,
    drop_probability: float = 0.1,
    ema_decay: float = 0.999,
) -> StageResult:
    """Trains ``unet`` and ``projector`` on ``samples [N, C, H, W]`` with ``embeddings [N, D]``, resumably.

    Once the step budget is reached, ``unet`` and ``projector`` hold the moving average of
    their weights (decay ``ema_decay``, warmed up as ``(1 + step) / (10 + step)``); the
    average is checkpointed with the rest, so a resumed stage continues it.
    """
    if samples.shape[0] != embeddings.shape[0]:
        raise ValueError(f"{samples.shape[0]} samples but {embeddings.shape[0]} embeddings.")
    runner = StageRunner(config)
    scheduler = forward_process(scheduler)
    parameters = list(unet.parameters()) + list(projector.parameters())
    optimizer = torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=1e-4)
    average = EMAModel(parameters, decay=ema_decay)
    runner.accelerator.register_for_checkpointing(average)
    loader = DataLoader(
        TensorDataset(samples, embeddings), batch_size=batch_size, shuffle=True, drop_last=len(samples) > batch_size,
        generator=torch.Generator().manual_seed(config.seed),
    )
    unet, projector, optimizer, loader = runner.prepare(unet, projector, optimizer, loader)
    unet.train()
    projector.train()

    result = run_averaged(runner, loader, parameters, optimizer, average, lambda batch: diffusion_loss(unet, projector, scheduler, *batch, drop_probability))
    unet.eval()
    projector.eval()
    return result


def run_averaged(runner: StageRunner, loader, parameters: list, optimizer, average: EMAModel, loss_of) -> StageResult:
    """``runner.run`` with one optimiser step on ``loss_of(batch)`` per batch (gradients clipped
    to norm 1) and the moving average stepped after it; once the budget is reached the
    ``parameters`` hold their average."""

    def step(batch, index: int) -> dict[str, float]:
        loss = loss_of(batch)
        optimizer.zero_grad(set_to_none=True)
        runner.backward(loss)
        runner.accelerator.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        average.step(parameters)
        return {"loss": loss.item()}

    result = runner.run(loader, step)
    if result.finished:
        average.copy_to(parameters)
    return result
