"""The vocoder's log-mel spectrogram, window cutting and waveform preparation, against known answers."""

from __future__ import annotations

import librosa
import numpy as np
import pytest

from core.audio import (
    HOP_LENGTH,
    LIMITER_WINDOW,
    LOG_FLOOR,
    N_MELS,
    PEAK_CEILING,
    SAMPLE_RATE,
    TARGET_LOUDNESS_DB,
    fit_length,
    log_mel_spectrogram,
    loudness_db,
    normalise_loudness,
    num_frames,
    prepare_waveform,
    split_windows,
)


def tone(frequency: float, seconds: float, rate: int = SAMPLE_RATE, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def peak_frequency(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.fft.rfftfreq(samples.shape[0], 1 / rate)[np.argmax(spectrum)])


# --- log-mel spectrogram --------------------------------------------------------------------


def test_log_mel_shape():
    samples = tone(440, 2.0)  # 44100 samples
    mel = log_mel_spectrogram(samples)
    assert mel.dtype == np.float32
    assert mel.shape == (N_MELS, num_frames(samples.shape[0])) == (80, 172)


@pytest.mark.parametrize("length", [1024, 5000, 22050, 44100])
def test_num_frames_matches_the_spectrogram(length):
    samples = np.random.default_rng(length).standard_normal(length).astype(np.float32)
    assert log_mel_spectrogram(samples).shape[1] == num_frames(length) == 1 + (length - HOP_LENGTH) // HOP_LENGTH


def test_silence_sits_at_the_log_floor():
    mel = log_mel_spectrogram(np.zeros(SAMPLE_RATE, dtype=np.float32))
    np.testing.assert_allclose(mel, np.log(LOG_FLOOR), rtol=1e-6)
    assert np.log(LOG_FLOOR) == pytest.approx(-11.5129, abs=1e-4)


def test_1khz_tone_peaks_in_the_1khz_band():
    mel = log_mel_spectrogram(tone(1000, 2.0)).mean(axis=1)  # (80,)
    centres = librosa.mel_frequencies(N_MELS + 2, fmin=0, fmax=8000)[1:-1]
    expected_band = int(np.argmin(np.abs(centres - 1000)))
    assert int(np.argmax(mel)) == expected_band
    assert mel[expected_band] > mel.mean() + 5  # far above the rest, not a tie


# --- fitting and windows --------------------------------------------------------------------


def test_fit_length_pads_with_silence_at_the_end():
    np.testing.assert_array_equal(fit_length(np.array([1.0, 2.0, 3.0]), 5), [1.0, 2.0, 3.0, 0.0, 0.0])


def test_fit_length_trims_the_end():
    np.testing.assert_array_equal(fit_length(np.array([1.0, 2.0, 3.0]), 2), [1.0, 2.0])
    np.testing.assert_array_equal(fit_length(np.array([1.0, 2.0, 3.0]), 3), [1.0, 2.0, 3.0])


def test_short_sound_gives_one_padded_window():
    samples = np.arange(1, 101, dtype=np.float32)
    windows = split_windows(samples, length=300, max_windows=8)
    assert len(windows) == 1 and windows[0].shape == (300,)
    np.testing.assert_array_equal(windows[0][:100], samples)
    assert not windows[0][100:].any()


def test_exact_length_gives_one_window():
    samples = np.arange(300, dtype=np.float32)
    (window,) = split_windows(samples, length=300, max_windows=8)
    np.testing.assert_array_equal(window, samples)


def test_long_sound_gives_evenly_spaced_windows():
    samples = np.arange(1050, dtype=np.float32)  # 10.5 windows' worth → 11 windows
    windows = split_windows(samples, length=100, max_windows=20)
    assert len(windows) == 11
    assert all(w.shape == (100,) for w in windows)
    starts = np.array([int(w[0]) for w in windows])
    assert starts[0] == 0 and windows[-1][-1] == samples[-1]  # first and last samples covered
    assert set(np.diff(starts)) <= {95}  # linspace(0, 950, 11) steps by exactly 95
    for start, window in zip(starts, windows, strict=True):
        np.testing.assert_array_equal(window, samples[start : start + 100])  # contiguous slices


def test_windows_are_capped_at_max_windows():
    samples = np.arange(10_000, dtype=np.float32)
    windows = split_windows(samples, length=100, max_windows=4)
    starts = [int(w[0]) for w in windows]
    assert starts == [0, 3300, 6600, 9900]  # spread over the whole sound, not its first 400 samples


# --- waveform preparation -------------------------------------------------------------------


def test_prepare_waveform_resamples_stereo_44k_to_mono_22k():
    left, right = tone(440, 1.0, rate=44100), tone(440, 1.0, rate=44100, amplitude=0.25)
    waveform = prepare_waveform((44100, np.stack([left, right], axis=1)))
    assert waveform.dtype == np.float32 and waveform.shape == (SAMPLE_RATE,)
    assert peak_frequency(waveform, SAMPLE_RATE) == pytest.approx(440, abs=1.0)
    middle = waveform[1000:-1000]  # away from the resampler's edges
    assert np.abs(middle).max() == pytest.approx(0.375, abs=0.01)  # (0.5 + 0.25) / 2


def test_prepare_waveform_keeps_the_target_rate_untouched():
    samples = tone(440, 0.5)
    np.testing.assert_array_equal(prepare_waveform((SAMPLE_RATE, samples)), samples)


def test_prepare_waveform_to_another_rate():
    waveform = prepare_waveform((SAMPLE_RATE, tone(440, 1.0)), sample_rate=16000)
    assert waveform.shape == (16000,)
    assert peak_frequency(waveform, 16000) == pytest.approx(440, abs=1.0)


def test_prepare_waveform_checks_its_input():
    with pytest.raises(ValueError, match="silent"):
        prepare_waveform((44100, np.zeros(44100, dtype=np.float32)))


# --- loudness of generated sounds ------------------------------------------------------------


def burst(level: float, seconds: float = 2.0, pause: float = 0.0, seed: int = 0) -> np.ndarray:
    """Noise at RMS ``level``, then ``pause`` seconds of silence."""
    noise = np.random.default_rng(seed).standard_normal(round(seconds * SAMPLE_RATE)) * level
    return np.concatenate([noise, np.zeros(round(pause * SAMPLE_RATE))]).astype(np.float32)


def test_loudness_is_the_rms_of_the_sounding_part():
    assert loudness_db(burst(0.1)) == pytest.approx(-20.0, abs=0.2)
    assert loudness_db(burst(0.1, pause=2.0)) == pytest.approx(-20.0, abs=0.2)  # the pause is gated out
    assert loudness_db(np.zeros(SAMPLE_RATE, np.float32)) == float("-inf")
    assert loudness_db(burst(0.1, seconds=0.01)) == pytest.approx(-20.0, abs=1.0)  # shorter than a frame


@pytest.mark.parametrize("level", [0.02, 0.05, 0.3])
def test_normalised_sounds_share_one_loudness(level):
    out = normalise_loudness(burst(level, pause=0.5) * np.float32(0.25))
    assert out.dtype == np.float32 and np.abs(out).max() <= PEAK_CEILING + 1e-6
    assert loudness_db(out) == pytest.approx(TARGET_LOUDNESS_DB, abs=0.1)


@pytest.mark.parametrize("noise", [0.05, 0.01])  # clicks 25 and 39 dB over the noise
def test_peaks_are_limited_under_full_scale_and_the_loudness_kept(noise):
    sound = burst(noise)
    sound[::5000] = 0.9  # clicks far above the noise: a gain that put them under the ceiling would lose 14 dB
    out = normalise_loudness(sound)
    assert np.abs(out).max() <= PEAK_CEILING
    assert loudness_db(out) == pytest.approx(TARGET_LOUDNESS_DB, abs=1.0)
    quiet = np.abs(sound) < 0.3  # away from the clicks the sound keeps one gain: the limiter leaves it alone
    far = np.convolve(~quiet, np.ones(2 * LIMITER_WINDOW + 1), "same") == 0  # no click within a window
    gains = out[far] / sound[far]
    assert far.sum() > SAMPLE_RATE and np.allclose(gains, np.median(gains), rtol=1e-4)
    assert np.median(gains) >= 10 ** ((TARGET_LOUDNESS_DB - loudness_db(sound)) / 20) * (1 - 1e-4)


def test_silence_and_near_silence_are_not_blown_up():
    assert not normalise_loudness(np.zeros(100, np.float32)).any()
    hiss = burst(1e-5)
    assert loudness_db(normalise_loudness(hiss)) == pytest.approx(loudness_db(hiss) + 30.0, abs=0.1)  # MAX_GAIN_DB
