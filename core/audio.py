"""Waveform preparation and the log-mel spectrogram shared by the sound encoder and decoder.

The settings are those of the packaged HiFi-GAN vocoder (22050 Hz, 80 mel bands, n_fft 1024,
hop 256, fmin 0, fmax 8000, natural log of magnitudes clipped at 1e-5), so a spectrogram made
here can be turned back into sound by that vocoder.
"""

from __future__ import annotations

from functools import cache

import librosa
import numpy as np
from scipy.ndimage import minimum_filter1d, uniform_filter1d

from .media import AudioInput, load_audio

SAMPLE_RATE = 22050
N_MELS = 80
N_FFT = 1024
HOP_LENGTH = 256
FMIN, FMAX = 0.0, 8000.0
LOG_FLOOR = 1e-5


def prepare_waveform(audio: AudioInput, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Any sound input → float32 mono at ``sample_rate``, checked (see ``load_audio``)."""
    source_rate, mono = load_audio(audio)
    if source_rate != sample_rate:
        mono = librosa.resample(mono, orig_sr=source_rate, target_sr=sample_rate, res_type="soxr_hq")
    return mono.astype(np.float32)


def fit_length(samples: np.ndarray, length: int) -> np.ndarray:
    """Pads with silence at the end, or trims the end, to exactly ``length`` samples."""
    if samples.shape[0] >= length:
        return samples[:length]
    return np.pad(samples, (0, length - samples.shape[0]))


def split_windows(samples: np.ndarray, length: int, max_windows: int) -> list[np.ndarray]:
    """Cuts a sound into up to ``max_windows`` evenly spaced windows of ``length`` (padded if short)."""
    if samples.shape[0] <= length:
        return [fit_length(samples, length)]
    count = min(max_windows, int(np.ceil(samples.shape[0] / length)))
    starts = np.linspace(0, samples.shape[0] - length, count).round().astype(int)
    return [samples[start : start + length] for start in starts]


@cache
def mel_basis() -> np.ndarray:
    """The ``[N_MELS, N_FFT // 2 + 1]`` Slaney mel filter bank of the vocoder."""
    return librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=FMIN, fmax=FMAX)


def log_mel_spectrogram(samples: np.ndarray) -> np.ndarray:
    """Mono float waveform at ``SAMPLE_RATE`` → natural-log mel magnitudes ``[N_MELS, frames]``."""
    pad = (N_FFT - HOP_LENGTH) // 2
    padded = np.pad(samples.astype(np.float32), (pad, pad), mode="reflect")
    spectrum = np.abs(
        librosa.stft(padded, n_fft=N_FFT, hop_length=HOP_LENGTH, win_length=N_FFT, window="hann", center=False)
    )  # (513, frames)
    return np.log(np.clip(mel_basis() @ spectrum, LOG_FLOOR, None)).astype(np.float32)


def num_frames(num_samples: int) -> int:
    """How many spectrogram frames ``log_mel_spectrogram`` gives for ``num_samples`` samples."""
    return 1 + (num_samples - HOP_LENGTH) // HOP_LENGTH


# ---------------------------------------------------------------- loudness of generated sounds

TARGET_LOUDNESS_DB = -16.0  # gated RMS of every generated sound, dB relative to full scale (real training sounds: about -9 to -14)
PEAK_CEILING = 10 ** (-1.0 / 20)  # -1 dBFS: generated samples stay under full scale
MAX_GAIN_DB = 30.0  # a near-silent draw is raised at most this much, not blown up to noise
LOUDNESS_FRAME = 1024  # about 46 ms at 22050 Hz


def loudness_db(samples: np.ndarray) -> float:
    """Gated RMS level in dBFS: the mean power of the frames no more than 10 dB under the mean
    frame power, so pauses do not count (the relative gate of ITU-R BS.1770, without its
    K-weighting). ``-inf`` for silence."""
    samples = np.asarray(samples, dtype=np.float64)
    count = max(1, samples.shape[0] // LOUDNESS_FRAME)
    frames = samples[: count * LOUDNESS_FRAME].reshape(count, -1) if samples.shape[0] >= LOUDNESS_FRAME else samples[None]
    power = np.square(frames).mean(axis=1)  # (frames,)
    if power.size == 0 or power.max() <= 0:
        return float("-inf")
    gated = power[power >= 0.1 * power.mean()]
    return float(10 * np.log10(gated.mean()))


LIMITER_WINDOW = 255  # samples (about 12 ms) over which the limiter's gain moves


def limit_peaks(samples: np.ndarray, ceiling: float = PEAK_CEILING, window: int = LIMITER_WINDOW) -> np.ndarray:
    """Brings every sample under ``ceiling`` by a smooth gain that dips only around the peaks (a
    look-ahead limiter): the gain each sample needs, its minimum over ``window``, then that
    minimum's moving average over ``window``. The average at a sample covers only minima taken
    over windows holding that sample, so it never exceeds the gain the sample needs."""
    samples = np.asarray(samples, dtype=np.float32)
    magnitude = np.abs(samples).astype(np.float64)
    if magnitude.max(initial=0.0) <= ceiling:
        return samples.copy()
    needed = np.minimum(1.0, ceiling / np.maximum(magnitude, 1e-12))
    envelope = uniform_filter1d(minimum_filter1d(needed, window, mode="nearest"), window, mode="nearest")
    return np.clip(samples * envelope, -ceiling, ceiling).astype(np.float32)  # the clip only absorbs rounding


LIMITER_PASSES = 16  # a very peaky sound loses loudness to the limiter: make it up and limit again (3 left a peaky draw 6 dB short)


def normalise_loudness(samples: np.ndarray, target_db: float = TARGET_LOUDNESS_DB, ceiling: float = PEAK_CEILING) -> np.ndarray:
    """One gain for the whole sound, to ``target_db`` of gated loudness (at most ``MAX_GAIN_DB``
    up), then ``limit_peaks`` under ``ceiling``; what the limiter took from the loudness is made
    up and limited again (``LIMITER_PASSES``), so no sample clips and a peaky sound keeps its
    loudness. Silence stays silence. Returns float32."""
    samples = np.asarray(samples, dtype=np.float32)
    level = loudness_db(samples)
    if not np.isfinite(level):
        return samples.copy()
    gain = 10 ** (min(target_db - level, MAX_GAIN_DB) / 20)
    out = limit_peaks(samples * np.float32(gain), ceiling)
    for _ in range(LIMITER_PASSES):
        shortfall = min(target_db, level + MAX_GAIN_DB) - loudness_db(out)
        if shortfall < 0.25:
            break
        out = limit_peaks(out * np.float32(10 ** (shortfall / 20)), ceiling)
    return out
