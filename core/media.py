"""Loading and checking user media: images and sounds of any format, size, mode and length.

Every function here either returns clean data or raises a ``ValueError`` that says what was
wrong and how to fix it; nothing is silently dropped.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

ImageInput = Image.Image | str | os.PathLike | bytes
AudioInput = tuple[int, np.ndarray] | str | os.PathLike

MAX_IMAGE_PIXELS = 64_000_000  # a 8000x8000 upload; larger ones are refused, not decoded
MAX_AUDIO_SECONDS = 600.0
MAX_AUDIO_VALUES = 60_000_000  # samples x channels decoded from one file (240 MB as float32); checked before decoding
SILENCE_PEAK = 1e-4  # a peak below this (full scale = 1.0) counts as silence


def load_image(image: ImageInput) -> Image.Image:
    """Opens a PIL image, a path or encoded bytes and returns it as RGB, alpha composited on white."""
    if isinstance(image, bytes):
        image = io.BytesIO(image)
    if not isinstance(image, (Image.Image, io.BytesIO, str, os.PathLike)):
        raise ValueError(f"An image must be a PIL image, a path or encoded bytes, got {type(image).__name__}.")
    if not isinstance(image, Image.Image):
        name = Path(image).name if not isinstance(image, io.BytesIO) else "the uploaded bytes"  # never a server path
        if not isinstance(image, io.BytesIO) and not Path(image).is_file():
            raise ValueError(f"Image file not found: {name!r}. Pass a PIL image or an existing path.")
        try:
            with Image.open(image) as opened:
                size = opened.size
                if _image_size_problem(size) is None:
                    opened.load()
                    image = opened.copy()
        except Image.DecompressionBombError as error:
            raise ValueError(f"The image {name!r} is too large to open safely; downscale it below 8000x8000 pixels.") from error
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
            reason = str(error).replace(str(image), name)  # Pillow names the file; keep the server's folders out
            raise ValueError(f"Could not read {name!r} as an image ({reason}). Use a PNG, JPEG, GIF, BMP or WebP file.") from error
        _check_image_size(size)  # checked on the header, before any pixel is decoded
    _check_image_size(image.size)
    return to_rgb(image)


def _image_size_problem(size: tuple[int, int]) -> str | None:
    width, height = size
    if width < 1 or height < 1:
        return f"The image is empty ({width}x{height} pixels)."
    if width * height > MAX_IMAGE_PIXELS:
        return f"The image is too large ({width}x{height} pixels); the limit is {MAX_IMAGE_PIXELS:,} pixels. Downscale it first."
    return None


def _check_image_size(size: tuple[int, int]) -> None:
    problem = _image_size_problem(size)
    if problem is not None:
        raise ValueError(problem)


def to_rgb(image: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Converts any PIL mode (RGBA, LA, P with transparency, L, I;16, CMYK...) to RGB on a background."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        # 16-bit and float greyscale: rescale to 8 bits instead of clipping to white.
        array = np.asarray(image, dtype=np.float32)
        low, high = float(np.nanmin(array)), float(np.nanmax(array))
        scale = 255.0 / (high - low) if high > low else 0.0
        image = Image.fromarray(np.nan_to_num((array - low) * scale).astype(np.uint8), mode="L")
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info
    )
    if not has_alpha:
        return image.convert("RGB")
    rgba = image.convert("RGBA")
    canvas = Image.new("RGBA", rgba.size, background + (255,))
    return Image.alpha_composite(canvas, rgba).convert("RGB")


def load_audio(audio: AudioInput) -> tuple[int, np.ndarray]:
    """Reads ``(sample_rate, array)`` or a sound file; returns ``(sample_rate, float32 mono)``.

    Integer arrays are scaled to [-1, 1]; channels (either axis) are averaged. Raises a
    ``ValueError`` for unreadable files, empty, non-finite or silent sound.
    """
    if isinstance(audio, (str, os.PathLike)):
        sample_rate, samples = _read_audio_file(Path(audio))
    elif isinstance(audio, tuple) and len(audio) == 2:
        sample_rate, samples = audio
        samples = np.asarray(samples)
    else:
        raise ValueError(
            "Audio must be a path or a (sample_rate, numpy array) pair, "
            f"got {type(audio).__name__}."
        )
    if not isinstance(sample_rate, (int, np.integer)) or not 1000 <= int(sample_rate) <= 384_000:
        raise ValueError(f"Sample rate must be an integer between 1000 and 384000 Hz, got {sample_rate!r}.")
    mono = to_mono_float(samples)
    duration = mono.shape[0] / int(sample_rate)
    if mono.shape[0] == 0:
        raise ValueError("The sound is empty (0 samples).")
    if duration > MAX_AUDIO_SECONDS:
        raise ValueError(
            f"The sound is {duration:.0f} s long; the limit is {MAX_AUDIO_SECONDS:.0f} s. Trim it first."
        )
    if not np.all(np.isfinite(mono)):
        raise ValueError("The sound contains NaN or infinite samples; fix or re-export the file.")
    if float(np.max(np.abs(mono))) < SILENCE_PEAK:
        raise ValueError("The sound is silent: its loudest sample is below -80 dBFS.")
    return int(sample_rate), mono


def _read_audio_file(path: Path) -> tuple[int, np.ndarray]:
    import soundfile

    if not path.is_file():
        raise ValueError(f"Sound file not found: {path.name!r}.")
    try:
        info = soundfile.info(str(path))
        if info.samplerate > 0 and info.frames / info.samplerate > MAX_AUDIO_SECONDS:
            raise ValueError(f"The sound is {info.frames / info.samplerate:.0f} s long; the limit is {MAX_AUDIO_SECONDS:.0f} s. Trim it first.")
        if info.frames * info.channels > MAX_AUDIO_VALUES:
            raise ValueError(f"The sound is too large to decode ({info.channels} channels of {info.frames:,} samples); use at most 2 channels and {MAX_AUDIO_SECONDS:.0f} s.")
        samples, sample_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except ValueError:
        raise
    except Exception as error:  # soundfile raises its own LibsndfileError and RuntimeError
        reason = str(error).replace(str(path), path.name)  # libsndfile names the file; keep the server's folders out
        raise ValueError(f"Could not read {path.name!r} as a sound ({reason}). Use WAV, FLAC, OGG or MP3.") from error
    return int(sample_rate), samples


def to_mono_float(samples: np.ndarray) -> np.ndarray:
    """Returns float32 mono samples in [-1, 1] from any integer or float array of 1 or 2 axes."""
    samples = np.asarray(samples)
    if samples.ndim not in (1, 2):
        raise ValueError(f"Audio array must have 1 or 2 axes (samples[, channels]), got shape {samples.shape}.")
    if samples.dtype.kind in "iu":
        info = np.iinfo(samples.dtype)
        offset = (int(info.max) + int(info.min) + 1) / 2  # 0 for signed, mid-scale for unsigned
        samples = (samples.astype(np.float64) - offset) / (int(info.max) - offset + 1)
    elif samples.dtype.kind == "b":
        samples = samples.astype(np.float64)
    elif samples.dtype.kind != "f":
        raise ValueError(f"Audio samples must be numbers, got dtype {samples.dtype}.")
    if samples.size == 0:
        return np.zeros(0, dtype=np.float32)
    if samples.ndim == 2:
        # Channels are the short axis: (N, C) from soundfile/gradio, or (C, N) from librosa.
        channel_axis = 1 if samples.shape[1] <= samples.shape[0] else 0
        samples = samples.mean(axis=channel_axis)
    return samples.astype(np.float32)
