"""Small pictures for the page: waveform thumbnails for sounds and cards for captions.

Galleries show images only, so a sound is drawn as its waveform and a caption as a card.
Everything here is plain numpy and Pillow.
"""

from __future__ import annotations

import textwrap

import numpy as np
from PIL import Image, ImageDraw

THUMB_SIZE = (128, 128)
BACKGROUND = (246, 244, 240)
INK = (60, 64, 90)


def waveform_thumbnail(samples: np.ndarray, size: tuple[int, int] = THUMB_SIZE) -> Image.Image:
    """The waveform's envelope (peak per column), drawn as vertical bars."""
    width, height = size
    image = Image.new("RGB", size, BACKGROUND)
    samples = np.asarray(samples, dtype=np.float32).reshape(-1)
    if samples.size == 0:
        return image
    columns = np.array_split(np.abs(samples), width)
    peaks = np.array([column.max() if column.size else 0.0 for column in columns])
    peaks = peaks / max(float(peaks.max()), 1e-6)
    draw = ImageDraw.Draw(image)
    middle = height / 2
    for x, peak in enumerate(peaks):
        half = max(1.0, peak * (height / 2 - 6))
        draw.line([(x, middle - half), (x, middle + half)], fill=INK)
    return image


def caption_card(text: str, size: tuple[int, int] = THUMB_SIZE) -> Image.Image:
    """The caption's first words on a plain card."""
    image = Image.new("RGB", size, BACKGROUND)
    draw = ImageDraw.Draw(image)
    lines = textwrap.wrap(text.strip() or "(empty)", width=18)[:7]
    draw.multiline_text((8, 8), "\n".join(lines), fill=INK, spacing=4)
    return image


def thumbnail(image: Image.Image, size: tuple[int, int] = THUMB_SIZE) -> Image.Image:
    """An RGB copy of ``image`` fitted inside ``size``."""
    copy = image.convert("RGB")
    copy.thumbnail(size)
    return copy


def join_sounds(sounds: list[tuple[int, np.ndarray]], gap_seconds: float = 0.15) -> tuple[int, np.ndarray]:
    """One sound: the given ones (all at one sample rate) in order, with a short silence between."""
    if not sounds:
        raise ValueError("No sounds to join.")
    rate = sounds[0][0]
    if any(r != rate for r, _ in sounds):
        raise ValueError("Sounds to join must share one sample rate.")
    gap = np.zeros(int(gap_seconds * rate), dtype=np.float32)
    parts: list[np.ndarray] = []
    for index, (_, samples) in enumerate(sounds):
        if index:
            parts.append(gap)
        parts.append(np.asarray(samples, dtype=np.float32))
    return rate, np.concatenate(parts)
