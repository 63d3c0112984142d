"""Training the conditional diffusion decoders: the loss falls on a toy set, and stages resume."""

import pytest
import torch

from core.decoders.conditioning import EmbeddingProjector
from core.decoders.diffusion_unets import build_image_unet, build_scheduler, swap_scheduler
from core.training.diffusion import diffusion_loss, train_diffusion_decoder
from core.training.loop import StageConfig


def tiny_unet():
    return build_image_unet(
        sample_size=8, block_out_channels=(16, 32), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=16, attention_head_dim=8,
        norm_num_groups=8,
    )


def toy_set(count=32):
    """Four classes of 4x8x8 'latents': a class's constant pattern plus a little noise."""
    generator = torch.Generator().manual_seed(0)
    patterns = torch.randn(4, 4, 1, 1, generator=generator).expand(4, 4, 8, 8)
    labels = torch.arange(count) % 4
    samples = patterns[labels] + 0.05 * torch.randn(count, 4, 8, 8, generator=generator)
    embeddings = torch.nn.functional.one_hot(labels, 6).float()
    return samples, embeddings


def test_loss_is_finite_and_dropping_the_condition_uses_the_null_tokens():
    torch.manual_seed(0)
    projector = EmbeddingProjector(embed_dim=6, num_tokens=2, token_dim=16)
    tokens = projector(torch.randn(3, 6), drop=torch.tensor([True, False, True]))
    assert torch.equal(tokens[0], projector.null_tokens) and not torch.equal(tokens[1], projector.null_tokens)
    samples, embeddings = toy_set(4)
    loss = diffusion_loss(tiny_unet(), projector, build_scheduler("ddim"), samples, embeddings, 0.5)
    assert torch.isfinite(loss)
    with pytest.raises(ValueError, match="6-d"):
        projector(torch.randn(2, 5))


@pytest.mark.slow
def test_training_lowers_the_loss_and_resumes(tmp_path):
    torch.manual_seed(0)
    unet, projector = tiny_unet(), EmbeddingProjector(embed_dim=6, num_tokens=2, token_dim=16)
    scheduler = build_scheduler("dpm++")
    samples, embeddings = toy_set()
    config = StageConfig(tmp_path, max_steps=60, checkpoint_every=30, log_every=10)
    first = train_diffusion_decoder(unet, projector, scheduler, samples, embeddings, config, batch_size=16, learning_rate=2e-3)
    losses = [entry["loss"] for entry in first.history]
    assert first.finished and losses[-1] < 0.6 * losses[0], losses
    assert (tmp_path / "checkpoints" / "step-0000060").is_dir()

    # a new run of the same stage with a larger budget continues from step 60, not from 0
    config.max_steps = 70
    second = train_diffusion_decoder(unet, projector, scheduler, samples, embeddings, config, batch_size=16, learning_rate=2e-3)
    assert second.step == 70 and [entry["step"] for entry in second.history] == [70]


def test_schedulers_swap_through_from_config():
    ddim = build_scheduler("ddim", prediction_type="v_prediction")
    dpm = swap_scheduler(ddim, "dpm++")
    assert type(dpm).__name__ == "DPMSolverMultistepScheduler"
    assert dpm.config.prediction_type == "v_prediction" and dpm.config.num_train_timesteps == 1000
    with pytest.raises(ValueError, match="Unknown scheduler"):
        swap_scheduler(ddim, "euler")


def test_the_sound_decoder_trains_on_log_mels():
    from core.decoders.diffusion_unets import build_mel_unet

    torch.manual_seed(0)
    unet = build_mel_unet(
        sample_size=(80, 16), block_out_channels=(8, 16), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=16, attention_head_dim=8, norm_num_groups=8,
    )
    projector = EmbeddingProjector(embed_dim=6, num_tokens=2, token_dim=16)
    mels = torch.randn(4, 1, 80, 16)  # normalised log-mel images, 80 bands
    optimizer = torch.optim.AdamW([*unet.parameters(), *projector.parameters()], lr=1e-3)
    losses = []
    for _ in range(2):
        loss = diffusion_loss(unet, projector, build_scheduler("ddim"), mels, torch.randn(4, 6), 0.1, torch.Generator().manual_seed(1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[1] < losses[0]  # the same noise draw: one step of training lowers it


@pytest.mark.parametrize("name", ["dpm++", "ddim"])
def test_training_noises_each_timestep_to_the_level_the_sampler_denoises(name):
    """Timestep t in training must carry the noise level the sampler assumes at t (a fresh
    DPM-Solver scheduler's own add_noise maps t to the level of 999 - t)."""
    from core.decoders.diffusion_unets import build_scheduler
    from core.training.diffusion import forward_process

    sampler = build_scheduler(name)
    sampler.set_timesteps(10)
    forward = forward_process(build_scheduler(name))
    clean, noise = torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2)
    for timestep in sampler.timesteps:
        kept = forward.add_noise(clean, noise, timestep[None].long()).flatten()[0]
        assert kept == pytest.approx(sampler.alphas_cumprod[int(timestep)].sqrt().item(), rel=1e-4)
    first = forward.add_noise(clean, noise, sampler.timesteps[:1].long()).flatten()[0]
    assert first < 0.2  # the sampler's first step starts from mostly noise


def test_min_snr_weights_cap_the_easy_low_noise_steps():
    from core.training.diffusion import forward_process, min_snr_weights

    scheduler = forward_process(build_scheduler("ddim"))
    timesteps = torch.tensor([0, 100, 500, 999])
    alphas = scheduler.alphas_cumprod[timesteps]
    snr = alphas / (1 - alphas)
    weights = min_snr_weights(scheduler, timesteps, gamma=5.0)
    assert torch.allclose(weights, snr.clamp(max=5.0) / snr)
    assert weights[0] < 0.01 and weights[-1] == 1.0  # nearly clean samples count little, noisy ones fully
    v_scheduler = forward_process(build_scheduler("ddim", prediction_type="v_prediction"))
    assert torch.allclose(min_snr_weights(v_scheduler, timesteps, 5.0), snr.clamp(max=5.0) / (snr + 1))


def test_without_snr_weighting_the_loss_is_the_plain_mean_squared_error():
    torch.manual_seed(0)
    unet, projector = tiny_unet(), EmbeddingProjector(embed_dim=6, num_tokens=2, token_dim=16)
    samples, embeddings = toy_set(4)
    plain = diffusion_loss(unet, projector, build_scheduler("ddim"), samples, embeddings, 0.0, torch.Generator().manual_seed(3), snr_gamma=None)
    weighted = diffusion_loss(unet, projector, build_scheduler("ddim"), samples, embeddings, 0.0, torch.Generator().manual_seed(3))
    # the same draw: the noise, timesteps and prediction match, so the weighting alone differs
    generator = torch.Generator().manual_seed(3)
    noise = torch.randn(samples.shape, generator=generator)
    timesteps = torch.randint(0, 1000, (4,), generator=generator)
    scheduler = build_scheduler("ddim")
    from core.training.diffusion import forward_process

    forward = forward_process(scheduler)
    with torch.no_grad():
        prediction = unet(forward.add_noise(samples, noise, timesteps), timesteps, encoder_hidden_states=projector(embeddings, torch.zeros(4, dtype=torch.bool))).sample
    assert torch.allclose(plain, torch.nn.functional.mse_loss(prediction, noise), atol=1e-6)
    assert not torch.allclose(plain, weighted)


@pytest.mark.parametrize("decay", [0.0, 0.9])
def test_a_finished_stage_keeps_the_moving_average_of_its_weights(tmp_path, decay):
    from safetensors.torch import load_file

    torch.manual_seed(0)
    unet, projector = tiny_unet(), EmbeddingProjector(embed_dim=6, num_tokens=2, token_dim=16)
    samples, embeddings = toy_set(16)
    config = StageConfig(tmp_path, max_steps=12, checkpoint_every=6, log_every=6)
    result = train_diffusion_decoder(unet, projector, build_scheduler("ddim"), samples, embeddings, config, batch_size=8, learning_rate=2e-3, ema_decay=decay)
    assert result.finished
    checkpoint = tmp_path / "checkpoints" / "step-0000012"
    assert (checkpoint / "custom_checkpoint_1.pkl").is_file()  # the average resumes with the stage
    raw = load_file(str(checkpoint / "model.safetensors"))  # the last trained weights, before averaging
    final = unet.state_dict()
    same = all(torch.allclose(raw[name], final[name]) for name in raw)
    assert same == (decay == 0.0)  # decay 0 keeps the last weights; 0.9 an average of earlier ones
