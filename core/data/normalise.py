"""Turning source media into corpus media: 128x128 RGB tiles on white, and 2 s mono clips at 22050 Hz.

Images: alpha is composited on white (``core.media.to_rgb``), the drawing is cropped to its
content, centred on a white square and scaled so its longer side fills the tile less a
small margin. Sounds: read and resampled by ``core.audio.prepare_waveform``, leading and
trailing silence trimmed, cut or padded to exactly ``CLIP_SECONDS``, and peak-normalised;
a clip whose loudest sample is below ``SILENCE_PEAK`` (-60 dBFS) is silent and dropped.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import librosa
import numpy as np
from PIL import Image

from ..audio import SAMPLE_RATE, fit_length, prepare_waveform
from ..media import load_image, to_rgb

TILE_SIZE = 128
TILE_MARGIN = 4  # pixels of white around the drawing
WHITE_TOLERANCE = 8  # a channel within this of 255 counts as background
SVG_RENDER_WIDTH = 256

CLIP_SECONDS = 2.0
CLIP_SAMPLES = int(CLIP_SECONDS * SAMPLE_RATE)
SILENCE_PEAK = 1e-3  # -60 dBFS
TRIM_TOP_DB = 50  # what counts as leading or trailing silence, below the clip's peak
PEAK_LEVEL = 0.89  # -1 dBFS

ImageSource = Path | Callable[[], Image.Image]
SoundSource = Path | Callable[[], tuple[int, np.ndarray]]


class SkipItem(Exception):
    """A source file that cannot become a corpus item (blank, silent, unreadable, too long)."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def render_svg(path: Path, width: int = SVG_RENDER_WIDTH) -> Image.Image:
    """Renders an SVG file with cairosvg to an RGBA image ``width`` pixels wide."""
    try:
        import cairosvg
    except (ImportError, OSError) as error:  # OSError: the cairo library itself is missing
        raise SkipItem(
            "unreadable", f"cairosvg cannot render SVG here ({error}); pip install cairosvg"
        ) from error
    try:
        data = cairosvg.svg2png(url=str(path), output_width=width)
    except Exception as error:  # cairosvg raises many kinds on malformed files
        raise SkipItem("unreadable", f"{path.name}: {error}") from error
    return Image.open(io.BytesIO(data))


def open_image(source: ImageSource) -> Image.Image:
    """Opens a PNG (or other raster) or SVG path, or calls a loader; returns RGB on white."""
    if callable(source):
        return to_rgb(source())
    if source.suffix.lower() == ".svg":
        return to_rgb(render_svg(source))
    try:
        return load_image(source)
    except ValueError as error:
        raise SkipItem("unreadable", str(error)) from error


def crop_to_drawing(image: Image.Image) -> Image.Image:
    """An RGB-on-white image cropped to its drawing (what is not background)."""
    image = to_rgb(image)
    pixels = np.asarray(image)
    ink = np.any(pixels < 255 - WHITE_TOLERANCE, axis=2)  # (H, W) non-background
    if not ink.any():
        raise SkipItem("blank", "the image has nothing but background")
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    return image.crop((cols[0], rows[0], cols[-1] + 1, rows[-1] + 1))


def to_tile(image: Image.Image, size: int = TILE_SIZE, margin: int = TILE_MARGIN) -> Image.Image:
    """Crops an RGB-on-white image to its drawing and centres it on a white ``size`` square."""
    image = crop_to_drawing(image)
    inner = size - 2 * margin
    scale = inner / max(image.size)
    new_size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    image = image.resize(new_size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    tile = Image.new("RGB", (size, size), (255, 255, 255))
    tile.paste(image, ((size - new_size[0]) // 2, (size - new_size[1]) // 2))
    return tile


def image_tile(source: ImageSource) -> tuple[Image.Image, int]:
    """A source image → the corpus tile (128x128 RGB on white) and the longest side of its
    drawing in the source, in pixels: below the tile's size, the tile is an enlargement."""
    image = open_image(source)
    return to_tile(image), max(crop_to_drawing(image).size)


def load_sound(source: SoundSource) -> np.ndarray:
    """Reads a sound path or calls a renderer; returns float32 mono at ``SAMPLE_RATE``."""
    audio = source() if callable(source) else source
    try:
        return prepare_waveform(audio, SAMPLE_RATE)
    except ValueError as error:
        reason = "silent" if "silent" in str(error) else "unreadable"
        raise SkipItem(reason, str(error)) from error


def to_clip(samples: np.ndarray, max_seconds: float | None = None) -> np.ndarray:
    """Trims silence, then cuts or pads to ``CLIP_SAMPLES`` and normalises the peak.

    ``max_seconds``: drop a sound whose trimmed length exceeds it (speech that a 2 s cut would
    leave mid-sentence) instead of cutting it.
    """
    if samples.size == 0 or float(np.max(np.abs(samples))) < SILENCE_PEAK:
        raise SkipItem("silent", "the loudest sample is below -60 dBFS")
    trimmed, _ = librosa.effects.trim(samples, top_db=TRIM_TOP_DB)
    if max_seconds is not None and trimmed.shape[0] > max_seconds * SAMPLE_RATE:
        raise SkipItem("too_long", f"{trimmed.shape[0] / SAMPLE_RATE:.1f} s of sound")
    clip = fit_length(trimmed, CLIP_SAMPLES)
    peak = float(np.max(np.abs(clip)))
    if peak < SILENCE_PEAK:
        raise SkipItem("silent", "the first 2 s are silent")
    return (clip * (PEAK_LEVEL / peak)).astype(np.float32)


def sound_clip(source: SoundSource, max_seconds: float | None = None) -> np.ndarray:
    """A source sound → the corpus clip (mono, 22050 Hz, exactly 2 s, float32)."""
    return to_clip(load_sound(source), max_seconds)
