"""Training the image autoencoder as a GAN: L1 + perceptual + KL + PatchGAN losses (Taming Transformers).

Each step updates the autoencoder on

    L_AE = |x - x̂|_1 + w_p * L_perceptual(x, x̂) + w_kl * KL(q(z|x) || N(0, I)) + λ * w_adv * L_G(D(x̂))

and then the discriminator on the hinge loss ``L_D = mean(relu(1 - D(x))) + mean(relu(1 + D(x̂)))``.
Both adversarial terms start at step ``disc_start`` (before it the discriminator is not
touched). ``λ`` is the adaptive weight of Esser et al. 2021, eq. 7: the ratio of the
gradient norms of the reconstruction and adversarial losses at the decoder's last layer.
``train_image_autoencoder`` runs the steps through ``StageRunner`` (resumable, accelerate).
An autoencoder whose decoder upsamples more than its encoder downsamples (``upscaling_autoencoder``)
trains on pairs: the encoder's input and the larger picture its reconstruction is compared with.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers import AsymmetricAutoencoderKL, AutoencoderKL
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from ..decoders.discriminator import PatchDiscriminator
from .loop import StageConfig, StageResult, StageRunner

GENERATOR_LOSSES = ("hinge", "non_saturating")

# 1. Losses


class EfficientNetFeatures(nn.Module):
    """The stem and first three stages of the frozen ImageNet EfficientNet-Lite0; returns their feature maps.

    For 64x64 inputs: 32x32x32 (stem), 32x32x16, 16x16x24 and 8x8x40. Inputs are pixels in
    [-1, 1], the normalisation the packaged Lite0 weights were trained with.
    """

    STAGE_ENDS = (0, 2, 4)  # indices of the last block of stages 1-3

    def __init__(self, network: nn.Module | None = None):
        super().__init__()
        if network is None:
            from ..encoders.image import load_efficientnet_lite0

            network = load_efficientnet_lite0()
        self.stem = nn.Sequential(network._conv_stem, network._bn0, network._swish)
        self.blocks = nn.ModuleList(network._blocks[: self.STAGE_ENDS[-1] + 1])

    def forward(self, pixels: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(pixels)  # (B, 32, H/2, W/2)
        features = [x]
        for index, block in enumerate(self.blocks):
            x = block(x)  # no drop-connect: the network is frozen
            if index in self.STAGE_ENDS:
                features.append(x)
        return features


class PerceptualLoss(nn.Module):
    """Distance between frozen features of two images, LPIPS-style without learned weights.

    Each feature vector is normalised to unit length over channels; the squared (``p=2``) or
    absolute (``p=1``) differences are summed over channels, averaged over positions and
    batch, then averaged over layers. ``feature_net`` maps pixels to a list of feature maps
    (default: ``EfficientNetFeatures``); it is frozen and always kept in eval mode.
    """

    def __init__(self, feature_net: nn.Module | None = None, p: int = 2):
        super().__init__()
        if p not in (1, 2):
            raise ValueError(f"p must be 1 (L1) or 2 (squared L2), got {p}.")
        self.p = p
        self.features = (feature_net if feature_net is not None else EfficientNetFeatures()).eval()
        self.features.requires_grad_(False)

    def train(self, mode: bool = True) -> PerceptualLoss:
        super().train(mode)
        self.features.eval()  # frozen BatchNorm statistics
        return self

    def forward(self, reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        total = reconstruction.new_zeros(())
        layers = list(zip(self.features(reconstruction), self.features(target), strict=True))
        for a, b in layers:
            diff = F.normalize(a, dim=1, eps=1e-6) - F.normalize(b, dim=1, eps=1e-6)  # (B, C, h, w)
            total = total + (diff.abs() if self.p == 1 else diff.square()).sum(1).mean()
        return total / len(layers)


def discriminator_hinge_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """Hinge loss of the discriminator (Lim & Ye 2017), as in Taming Transformers."""
    return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())


def generator_adversarial_loss(logits_fake: torch.Tensor, kind: str = "hinge") -> torch.Tensor:
    """The generator's adversarial loss: ``-D(x̂)`` (hinge) or ``softplus(-D(x̂))`` (non-saturating)."""
    if kind == "hinge":
        return -logits_fake.mean()
    return F.softplus(-logits_fake).mean()


def adaptive_weight(nll: torch.Tensor, adversarial: torch.Tensor, last_layer: torch.Tensor) -> torch.Tensor:
    """λ = |∇_last nll| / (|∇_last adversarial| + 1e-4), clamped to [0, 1e4] (Esser et al. 2021, eq. 7)."""
    nll_grad = torch.autograd.grad(nll, last_layer, retain_graph=True)[0]
    adversarial_grad = torch.autograd.grad(adversarial, last_layer, retain_graph=True)[0]
    return (nll_grad.norm() / (adversarial_grad.norm() + 1e-4)).clamp(0.0, 1e4).detach()


# 2. The stage's settings and the autoencoder's training forward


@dataclass
class AutoencoderGANConfig:
    """Loss weights and optimiser settings of the autoencoder GAN stage."""

    batch_size: int = 16
    learning_rate: float = 2e-4
    discriminator_learning_rate: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.9)
    perceptual_weight: float = 1.0
    kl_weight: float = 1e-6
    adversarial_weight: float = 0.5
    disc_start: int = 1000  # steps of reconstruction only before the GAN terms switch on
    use_adaptive_weight: bool = True
    generator_loss: str = "hinge"  # or "non_saturating"
    sample_posterior: bool = True  # decode z ~ q(z|x) instead of its mean
    train_encoder: bool = True  # false: only the decoder learns, so the latent space (and a UNet trained on it) stays

    def __post_init__(self):
        if self.generator_loss not in GENERATOR_LOSSES:
            raise ValueError(f"generator_loss must be one of {GENERATOR_LOSSES}, got {self.generator_loss!r}.")
        if self.batch_size < 1 or self.disc_start < 0:
            raise ValueError("batch_size must be at least 1 and disc_start at least 0.")


class _AutoencoderForTraining(nn.Module):
    """Wraps the VAE so that one ``forward`` (the one DDP synchronises) returns x̂ and the KL."""

    def __init__(self, vae: AutoencoderKL, sample_posterior: bool, train_encoder: bool = True):
        super().__init__()
        self.vae = vae
        self.sample_posterior = sample_posterior
        self.train_encoder = train_encoder

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.set_grad_enabled(self.train_encoder and torch.is_grad_enabled()):
            posterior = self.vae.encode(pixels).latent_dist
        z = posterior.sample() if self.sample_posterior else posterior.mode()  # (B, C, h, w)
        reconstruction = self.vae.decode(z).sample  # (B, 3, H, W)
        return reconstruction, posterior.kl()  # kl: (B,), summed over latent dimensions


# 3. The stage


def _as_dataset(images: torch.Tensor | tuple[torch.Tensor, torch.Tensor] | Dataset) -> Dataset:
    tensors = (images,) if isinstance(images, torch.Tensor) else images
    if isinstance(tensors, tuple):
        for tensor in tensors:
            if tensor.ndim != 4 or tensor.shape[1] != 3:
                raise ValueError(
                    f"Expected training images [N, 3, H, W] in [-1, 1], got {tuple(tensor.shape)}; "
                    "convert PIL images with core.decoders.image_autoencoder.images_to_pixels."
                )
            if tensor.min() < -1.001 or tensor.max() > 1.001:
                raise ValueError("Training images must lie in [-1, 1]; map [0, 1] images with 2 * x - 1.")
        return TensorDataset(*tensors)
    return images


def _pixels(batch) -> tuple[torch.Tensor, torch.Tensor]:
    """The encoder's input and the reconstruction's target (the input itself unless the batch holds a larger one)."""
    if not isinstance(batch, (list, tuple)):
        return batch, batch
    return batch[0], batch[1] if len(batch) > 1 else batch[0]


def train_image_autoencoder(
    vae: AutoencoderKL,
    discriminator: PatchDiscriminator,
    images: torch.Tensor | tuple[torch.Tensor, torch.Tensor] | Dataset,
    config: StageConfig,
    training: AutoencoderGANConfig | None = None,
    perceptual: PerceptualLoss | None = None,
) -> StageResult:
    """Trains ``vae`` and ``discriminator`` in place; resumes from ``config.output_dir/checkpoints``.

    ``images`` is a ``[N, 3, H, W]`` tensor in [-1, 1] or a dataset of such items (or of tuples
    whose first element is one); for an autoencoder whose decoder upsamples by ``s`` more than
    its encoder downsamples, a pair ``(inputs, targets)`` with targets ``s`` times larger (or a
    dataset of such pairs). ``perceptual`` defaults to ``PerceptualLoss()`` on the frozen
    EfficientNet-Lite0; pass ``PerceptualLoss(tiny_net)`` in tests. The stage does not touch
    ``vae.config.scaling_factor``: call ``estimate_scaling_factor`` on the finished model.
    """
    # 1. data, losses, optimisers
    training = training or AutoencoderGANConfig()
    dataset = _as_dataset(images)
    generator = torch.Generator().manual_seed(config.seed)
    loader = DataLoader(
        dataset,
        batch_size=training.batch_size,
        shuffle=True,
        drop_last=len(dataset) >= training.batch_size,
        generator=generator,
    )
    perceptual = perceptual if perceptual is not None else PerceptualLoss()
    if not training.train_encoder:
        vae.encoder.requires_grad_(False)
        if vae.quant_conv is not None:
            vae.quant_conv.requires_grad_(False)
    if isinstance(vae, AsymmetricAutoencoderKL):
        vae.decoder.condition_encoder.requires_grad_(False)  # the inpainting input, never used here
    autoencoder = _AutoencoderForTraining(vae, training.sample_posterior, training.train_encoder)
    trained = [parameter for parameter in vae.parameters() if parameter.requires_grad]
    optimizer = torch.optim.Adam(trained, lr=training.learning_rate, betas=training.betas)
    optimizer_d = torch.optim.Adam(
        discriminator.parameters(), lr=training.discriminator_learning_rate, betas=training.betas
    )

    # 2. accelerate
    runner = StageRunner(config)
    autoencoder, discriminator_p, optimizer, optimizer_d, loader = runner.prepare(
        autoencoder, discriminator, optimizer, optimizer_d, loader
    )
    perceptual.to(runner.device)
    last_layer = vae.decoder.conv_out.weight
    autoencoder.train()
    discriminator_p.train()

    # 3. one step: the autoencoder, then (after disc_start) the discriminator
    def step(batch, step_index: int) -> dict[str, float]:
        inputs, pixels = _pixels(batch)
        reconstruction, kl = autoencoder(inputs)
        if reconstruction.shape != pixels.shape:
            raise ValueError(
                f"The autoencoder makes {tuple(reconstruction.shape[1:])} from {tuple(inputs.shape[1:])}, "
                f"but the targets are {tuple(pixels.shape[1:])}: give (inputs, targets) pairs of matching sizes."
            )
        rec = (pixels - reconstruction).abs().mean()
        perc = perceptual(reconstruction, pixels) if training.perceptual_weight > 0 else rec.new_zeros(())
        nll = rec + training.perceptual_weight * perc
        loss = nll + training.kl_weight * kl.mean()
        losses = {"rec": rec.item(), "perceptual": perc.item(), "kl": kl.mean().item()}
        adversarial = step_index >= training.disc_start and training.adversarial_weight > 0
        if adversarial:
            g_adv = generator_adversarial_loss(discriminator_p(reconstruction), training.generator_loss)
            weight = training.adversarial_weight
            if training.use_adaptive_weight:
                weight = weight * adaptive_weight(nll, g_adv, last_layer)
            loss = loss + weight * g_adv
            losses.update(g_adv=g_adv.item(), adv_weight=float(weight))
        optimizer.zero_grad(set_to_none=True)
        runner.backward(loss)
        optimizer.step()
        losses["loss"] = loss.item()
        if adversarial:
            # real and fake in one forward: one DDP pass, BatchNorm statistics over both
            logits = discriminator_p(torch.cat([pixels, reconstruction.detach()]))  # (2B, 1, h', w')
            logits_real, logits_fake = logits.chunk(2)
            d_loss = discriminator_hinge_loss(logits_real, logits_fake)
            optimizer_d.zero_grad(set_to_none=True)  # also drops the grads the generator loss left
            runner.backward(d_loss)
            optimizer_d.step()
            losses.update(
                d_loss=d_loss.item(), logits_real=logits_real.mean().item(), logits_fake=logits_fake.mean().item()
            )
        return losses

    # 4. run (resuming first), then leave both networks in eval mode
    result = runner.run(loader, step)
    vae.requires_grad_(True)
    vae.eval()
    discriminator.eval()
    return result
