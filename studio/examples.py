"""The bundled example gallery: small drawn shapes and synthesized sounds, each with a caption.

The files in ``assets/examples/`` are made by ``make_examples`` (run ``python -m
studio.examples`` to write them again); the app indexes them at start-up so Search always
has something to find, beside the user's history. Each item is a 64x64 PNG, a half-second
8 kHz WAV and a caption, a few KB in all.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
from PIL import Image, ImageDraw

EXAMPLES = Path(__file__).resolve().parent.parent / "assets" / "examples"
SIZE = 64
RATE = 8000
SECONDS = 0.5


@dataclass(frozen=True)
class Example:
    """One gallery item: its key, caption and files."""

    key: str
    caption: str
    image: Path
    audio: Path


# --- drawings ----------------------------------------------------------------------------------


def _canvas() -> tuple[Image.Image, ImageDraw.ImageDraw]:
    image = Image.new("RGB", (SIZE, SIZE), (255, 255, 255))
    return image, ImageDraw.Draw(image)


def _circle(fill) -> Image.Image:
    image, draw = _canvas()
    draw.ellipse((10, 10, 54, 54), fill=fill)
    return image


def _square() -> Image.Image:
    image, draw = _canvas()
    draw.rectangle((12, 12, 52, 52), fill=(30, 70, 200))
    return image


def _triangle() -> Image.Image:
    image, draw = _canvas()
    draw.polygon([(32, 8), (58, 54), (6, 54)], fill=(30, 160, 60))
    return image


def _sun() -> Image.Image:
    image, draw = _canvas()
    for angle in range(0, 360, 30):
        x, y = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        draw.line((32 + 18 * x, 32 + 18 * y, 32 + 29 * x, 32 + 29 * y), fill=(240, 170, 0), width=3)
    draw.ellipse((18, 18, 46, 46), fill=(250, 210, 0))
    return image


def _checkerboard() -> Image.Image:
    image, draw = _canvas()
    for row in range(8):
        for column in range(8):
            if (row + column) % 2:
                draw.rectangle((column * 8, row * 8, column * 8 + 7, row * 8 + 7), fill=(0, 0, 0))
    return image


def _waves() -> Image.Image:
    image, draw = _canvas()
    draw.rectangle((0, 0, SIZE, SIZE), fill=(200, 230, 255))
    for offset in range(8, SIZE, 12):
        points = [(x, offset + 4 * math.sin(x / 5)) for x in range(SIZE)]
        draw.line(points, fill=(20, 80, 180), width=3)
    return image


def _star() -> Image.Image:
    image, draw = _canvas()
    points = []
    for index in range(10):
        radius = 28 if index % 2 == 0 else 12
        angle = math.radians(-90 + 36 * index)
        points.append((32 + radius * math.cos(angle), 32 + radius * math.sin(angle)))
    draw.polygon(points, fill=(130, 40, 170))
    return image


# --- sounds ------------------------------------------------------------------------------------


def _time() -> np.ndarray:
    return np.arange(int(RATE * SECONDS)) / RATE


def _fade(samples: np.ndarray) -> np.ndarray:
    ramp = np.minimum(1.0, np.minimum(np.arange(samples.size), np.arange(samples.size)[::-1]) / (0.02 * RATE))
    return (0.5 * samples * ramp).astype(np.float32)


def _tone(frequency: float) -> np.ndarray:
    return _fade(np.sin(2 * np.pi * frequency * _time()))


def _chirp() -> np.ndarray:
    t = _time()
    return _fade(np.sin(2 * np.pi * (300 * t + 1400 * t**2)))


def _bell() -> np.ndarray:
    t = _time()
    return _fade(np.exp(-6 * t) * (np.sin(2 * np.pi * 880 * t) + 0.4 * np.sin(2 * np.pi * 2210 * t)))


def _clicks() -> np.ndarray:
    samples = np.zeros_like(_time())
    samples[:: RATE // 10] = 1.0
    samples[1 :: RATE // 10] = -0.6
    return _fade(samples)


def _surf() -> np.ndarray:
    t = _time()
    noise = np.random.default_rng(0).standard_normal(t.size)
    smooth = np.convolve(noise, np.ones(8) / 8, mode="same")  # a gentle low-pass
    return _fade(smooth * (0.6 + 0.4 * np.sin(2 * np.pi * 2 * t)) * 2)


def _doorbell() -> np.ndarray:
    t = _time()
    return _fade(np.where(t < SECONDS / 2, np.sin(2 * np.pi * 660 * t), np.sin(2 * np.pi * 523 * t)))


RECIPES = [
    ("red-circle", "a red circle", lambda: _circle((220, 30, 30)), lambda: _tone(220)),
    ("blue-square", "a blue square", _square, lambda: _tone(440)),
    ("green-triangle", "a green triangle", _triangle, _chirp),
    ("yellow-sun", "a yellow sun with rays", _sun, _bell),
    ("checkerboard", "a black and white checkerboard", _checkerboard, _clicks),
    ("sea-waves", "blue waves on the sea", _waves, _surf),
    ("purple-star", "a purple star", _star, _doorbell),
]


def make_examples(folder: str | Path = EXAMPLES) -> list[Example]:
    """Draws and synthesizes every example into ``folder`` (deterministic: the same bytes each time)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for key, caption, draw, sound in RECIPES:
        draw().save(folder / f"{key}.png", optimize=True)
        soundfile.write(folder / f"{key}.wav", sound(), RATE, subtype="PCM_16")
        entries.append({"key": key, "caption": caption, "image": f"{key}.png", "audio": f"{key}.wav"})
    (folder / "examples.json").write_text(json.dumps(entries, indent=1) + "\n", encoding="utf-8")
    return load_examples(folder)


def load_examples(folder: str | Path = EXAMPLES) -> list[Example]:
    """The examples listed in ``folder/examples.json``."""
    folder = Path(folder)
    entries = json.loads((folder / "examples.json").read_text(encoding="utf-8"))
    return [
        Example(key=e["key"], caption=e["caption"], image=folder / e["image"], audio=folder / e["audio"])
        for e in entries
    ]


if __name__ == "__main__":
    for example in make_examples():
        print(example.key, example.caption)
