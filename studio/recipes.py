"""Recipes that travel with the media: PNG text chunks and WAV ``LIST/INFO`` chunks.

A generated PNG holds its recipe as JSON in an ``iTXt`` chunk named ``fusion-studio-recipe``;
a generated WAV holds it in the comment (``ICMT``) of a ``LIST/INFO`` chunk, which audio
editors show and keep. ``read_recipe`` gets it back from either, so uploading a file the
studio made restores how it was made. Only the standard library, Pillow and soundfile are used.
"""

from __future__ import annotations

import io
import json
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
from PIL import Image, PngImagePlugin

RECIPE_KEY = "fusion-studio-recipe"
SOFTWARE = "Fusion Studio"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_RECIPE_CHARS = 20_000  # a recipe is a few hundred characters (two prompts at most); anything longer is not one


def recipe_json(recipe: dict[str, Any]) -> str:
    """The recipe as compact, key-sorted JSON (the same recipe always gives the same bytes)."""
    return json.dumps(recipe, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# --- PNG ---------------------------------------------------------------------------------------


def png_with_recipe(image: Image.Image, recipe: dict[str, Any]) -> bytes:
    """Encodes ``image`` as PNG with ``recipe`` in an ``iTXt`` chunk."""
    info = PngImagePlugin.PngInfo()
    info.add_itxt(RECIPE_KEY, recipe_json(recipe), zip=True)
    info.add_text("Software", SOFTWARE)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def _png_recipe(path: Path) -> dict[str, Any] | None:
    """Walks the PNG's chunks for the recipe's ``iTXt`` without decoding a pixel (a decompression
    bomb or a truncated file costs nothing), inflating at most ``MAX_RECIPE_CHARS`` bytes."""
    data = path.read_bytes()
    offset = len(PNG_SIGNATURE)
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I", data[offset : offset + 4])[0], data[offset + 4 : offset + 8]
        payload = data[offset + 8 : offset + 8 + size]
        if kind == b"IEND":
            break
        if kind == b"iTXt" and payload.startswith(RECIPE_KEY.encode("latin-1") + b"\x00"):
            return _parse_itxt(payload[len(RECIPE_KEY) + 1 :])
        offset += 12 + size  # length, type, data, CRC
    return None


def _parse_itxt(body: bytes) -> dict[str, Any] | None:
    # compression flag, compression method, language tag \0, translated keyword \0, text
    if len(body) < 2:
        return None
    compressed, rest = body[0], body[2:]
    parts = rest.split(b"\x00", 2)
    if len(parts) != 3:
        return None
    text = parts[2]
    if compressed:
        inflater = zlib.decompressobj()
        try:
            text = inflater.decompress(text, MAX_RECIPE_CHARS * 4 + 1)
        except zlib.error:
            return None
        if inflater.unconsumed_tail:
            return None  # far longer than any recipe
    return _parse(text.decode("utf-8", errors="replace"))


# --- WAV ---------------------------------------------------------------------------------------


def wav_with_recipe(sample_rate: int, samples: np.ndarray, recipe: dict[str, Any]) -> bytes:
    """Encodes mono float ``samples`` as 16-bit WAV with ``recipe`` in a ``LIST/INFO`` chunk."""
    buffer = io.BytesIO()
    soundfile.write(buffer, np.asarray(samples, dtype=np.float32), int(sample_rate), format="WAV", subtype="PCM_16")
    info = b"INFO" + _chunk(b"ISFT", _zstring(SOFTWARE)) + _chunk(b"ICMT", _zstring(recipe_json(recipe)))
    return _append_chunk(buffer.getvalue(), _chunk(b"LIST", info))


def _zstring(text: str) -> bytes:
    return text.encode("utf-8") + b"\x00"


def _chunk(kind: bytes, data: bytes) -> bytes:
    # RIFF chunks are padded to an even length; the size field excludes the pad byte
    return kind + struct.pack("<I", len(data)) + data + (b"\x00" if len(data) % 2 else b"")


def _append_chunk(wav: bytes, chunk: bytes) -> bytes:
    if wav[:4] != b"RIFF" or wav[8:12] != b"WAVE":
        raise ValueError("Not a RIFF/WAVE file.")
    body = wav[12:] + chunk
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body


def riff_chunks(data: bytes, offset: int = 12):
    """Yields ``(chunk id, payload)`` for each chunk from ``offset`` (12: the top level of a WAV)."""
    while offset + 8 <= len(data):
        kind, size = data[offset : offset + 4], struct.unpack("<I", data[offset + 4 : offset + 8])[0]
        yield kind, data[offset + 8 : offset + 8 + size]
        offset += 8 + size + (size % 2)


def _wav_recipe(path: Path) -> dict[str, Any] | None:
    data = path.read_bytes()
    for kind, payload in riff_chunks(data):
        if kind != b"LIST" or payload[:4] != b"INFO":
            continue
        for sub_kind, sub_payload in riff_chunks(payload, offset=4):
            if sub_kind == b"ICMT":
                recipe = _parse(sub_payload.rstrip(b"\x00").decode("utf-8", errors="replace"))
                if recipe is not None:
                    return recipe
    return None


# --- reading any file --------------------------------------------------------------------------


def read_recipe(path: str | os.PathLike) -> dict[str, Any] | None:
    """The recipe stored in a PNG or WAV the studio made; ``None`` if the file holds none.

    Raises:
        ValueError: the file is missing, too large, or neither a PNG nor a WAV.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"File not found: {path.name!r}.")
    if path.stat().st_size > 200_000_000:
        raise ValueError(f"{path.name!r} is too large to be a studio file.")
    with path.open("rb") as handle:
        head = handle.read(12)
    if head.startswith(PNG_SIGNATURE):
        return _png_recipe(path)
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return _wav_recipe(path)
    raise ValueError(f"{path.name!r} is neither a PNG nor a WAV file; recipes travel only in those.")


def _parse(text: str) -> dict[str, Any] | None:
    if len(text) > MAX_RECIPE_CHARS:
        return None
    try:
        recipe = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return None
    return recipe if isinstance(recipe, dict) and "kind" in recipe else None
