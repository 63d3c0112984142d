"""Fuzzes every public API endpoint of a running app (tiny studio) with bad input, as raw HTTP.

Each endpoint gets at least ``PER_ENDPOINT`` generated bad inputs (seeded, so every run sends the
same ones): NaN, infinities, huge, negative, fractional, boolean, string, list, dict and null
numbers; lone surrogates, 1 MB strings and wrong types for text; missing files, paths outside the
upload folder, data: URLs and tiny corrupt uploads (truncated, 0x0, 64000x1 and 100000x100000
PNGs, random bytes named .wav, empty files) for media; malformed and deeply nested recipes for
``/replay`` and ``/read_recipe``. Requests go through ``POST /gradio_api/call/<api_name>`` and the
event stream of ``GET /gradio_api/call/<api_name>/<event_id>`` with httpx, not gradio_client,
which would check types before sending.

Every input must end in a success or in an error event whose message is non-empty, shorter than
500 characters and free of server paths and tracebacks; nothing may print a traceback or log an
error while it is handled (``capfd`` sees what gradio prints with ``traceback.print_exc``, a
logging handler what is logged); a few inputs (numbers out of range or not whole where a whole
number is due, paths outside the upload folder, unknown outputs, a use_image_prior that is not
true or false) must be refused; gradio must not end up holding a directory or a file outside its
cache as one of its own to delete. The test fails with a per-endpoint summary of what broke and
the first inputs that broke it; ``FUZZ_LOG=<file>`` also writes every input's outcome there.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import math
import os
import random
import re
import struct
import tempfile
import threading
import time
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile
from PIL import Image

from studio.service import (
    MAX_FRAMES,
    MAX_GUIDANCE,
    MAX_HITS,
    MAX_SEED,
    MAX_STEPS,
    MAX_TEMPERATURE,
    MAX_VARIANTS,
    MAX_WEIGHT,
)
from tests.test_app import launch, make_service, png_header_only

ROOT = Path(__file__).resolve().parent.parent
PER_ENDPOINT = 200  # at least this many inputs per endpoint
RANDOM_COMBOS = 40  # at least this many multi-field random inputs per endpoint, after the one-field ones
SEED = 1234
FUZZ_LOG = os.environ.get("FUZZ_LOG")  # a file to write every input's outcome to, one JSON line each (for debugging)
CALL_TIMEOUT = 60.0  # seconds for one input, from POST to the last event
TOTAL_BUDGET = 900.0  # give up (and fail) past this, rather than hang a CI job
MAX_MESSAGE = 500
RECIPE_KEY = "fusion-studio-recipe"
DEPTH = 100_000
MB = 1 << 20
META = {"_type": "gradio.FileData"}
ENDPOINTS = ["/text_to_image", "/image_to_audio", "/caption", "/mix", "/search", "/morph", "/replay", "/read_recipe", "/shares", "/history"]
GENERATING = {"/text_to_image", "/image_to_audio", "/caption", "/mix", "/morph", "/replay"}


# --- inputs ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bad:
    """One value for one field: a short label for the report, the value, and whether it must be refused."""

    label: str
    value: Any
    refuse: bool = False


@dataclass
class Case:
    endpoint: str
    args: list[Any]
    label: str
    refuse: bool


def _describe(value: Any) -> str:
    if isinstance(value, str):
        if len(value) > 60:
            return f"str({len(value)} chars, {value[:12]!r}...)"
        return repr(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**12:
        return f"{'-' if value < 0 else ''}1e{len(str(abs(value))) - 1}(int)"
    text = json.dumps(value, allow_nan=True, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def numbers_out_of(low: float, high: float, whole: bool, value: Any) -> bool:
    """Whether a value sent for a number from ``low`` to ``high`` must be refused (booleans and
    None aside: gradio or the studio may read them as 1/0 or the default)."""
    if value is None or isinstance(value, bool):
        return False
    if isinstance(value, (list, dict)):
        return True
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return True
    if not math.isfinite(value) or not low <= value <= high:
        return True
    return whole and value != int(value)


def number_pool(low: float, high: float, whole: bool, rng: random.Random) -> list[Bad]:
    values: list[tuple[str, Any]] = [
        ("NaN", math.nan), ("Infinity", math.inf), ("-Infinity", -math.inf), ("1e308", 1e308), ("-1e308", -1e308),
        ("1e30(int)", 10**30), ("-1e20(int)", -(10**20)), ("2**63", 2**63), ("-1", -1), ("-0.5", -0.5), ("0.5", 0.5), ("2.5", 2.5),
        ("1e-300", 1e-300), ("true", True), ("false", False), ("'1'", "1"), ("'abc'", "abc"), ("''", ""), ("'NaN'", "NaN"),
        ("'1e999'", "1e999"), ("[1]", [1]), ("[]", []), ('{"a":1}', {"a": 1}), ("{}", {}), ("null", None), ("lone surrogate", "\ud800"),
        ("1MB str", "9" * MB), ("below min", low - 1), ("above max", high + 1), ("just above max", high + 0.001 if not whole else high + 1),
        ("random float", rng.uniform(-1e6, 1e6)),
    ]
    return [Bad(label, value, numbers_out_of(low, high, whole, value)) for label, value in values]


def number_junk(low: float, high: float, whole: bool, rng: random.Random) -> Bad:
    kind = rng.randrange(6)
    if kind == 0:
        value: Any = rng.uniform(-1e12, 1e12)
    elif kind == 1:
        value = rng.randint(-(2**70), 2**70)
    elif kind == 2:
        value = rng.random() * 10 ** rng.randint(-300, 300) * rng.choice([-1, 1])
    elif kind == 3:
        value = "".join(rng.choice("0123456789.eE+-naifINF x") for _ in range(rng.randint(0, 12)))
    elif kind == 4:
        value = [rng.random() for _ in range(rng.randint(0, 3))]
    else:
        value = {"value": rng.random()}
    return Bad(_describe(value), value, numbers_out_of(low, high, whole, value))


def text_pool() -> list[Bad]:
    values: list[tuple[str, Any]] = [
        ("null", None), ("''", ""), ("blank", "   \t\n"), ("lone surrogate", "\ud800"), ("surrogate inside", "a red \udc00 bird"),
        ("reversed surrogates", "\udfff\ud800"), ("1MB ascii", "x" * MB), ("1MB accents", "é" * MB), ("NUL", "\x00"),
        ("NUL inside", "a\x00b"), ("RTL override", "\u202ea kite"), ("html", "<script>alert(1)</script>"), ("format", "{0}%s%n{}"),
        ("path-like", "../../../../etc/passwd"), ("emoji", "🎨" * 1000), ("123", 123), ("1.5", 1.5), ("NaN", math.nan), ("true", True),
        ("[]", []), ('["a"]', ["a"]), ('{"a":1}', {"a": 1}), ("FileData /etc/passwd", {"path": "/etc/passwd", "meta": META}),
    ]
    return [Bad(label, value) for label, value in values]


def text_junk(rng: random.Random) -> Bad:
    length = rng.choice([1, 5, 40, 300])
    chars = [chr(rng.choice([rng.randrange(0x20, 0x7F), rng.randrange(0xD800, 0xE000), rng.randrange(0x80, 0x10FFFF), rng.randrange(0, 0x20)])) for _ in range(length)]
    value = "".join(chars)
    return Bad(f"random text({length})", value)


def output_pool() -> list[Bad]:
    values: list[tuple[str, Any, bool]] = [
        ("'video'", "video", True), ("''", "", True), ("null", None, False), ("'IMAGE'", "IMAGE", False), ("' image'", " image", False),
        ("'audio'", "audio", False), ("lone surrogate", "\ud800", True), ("1MB str", "v" * MB, True), ("5", 5, True), ("[]", [], True),
        ('["image"]', ["image"], True), ('{"a":1}', {"a": 1}, True), ("NaN", math.nan, True), ("true", True, True),
        ("html", "<b>x</b>", True),
    ]
    return [Bad(label, value, refuse) for label, value, refuse in values]


def switch_pool(strict: bool) -> list[Bad]:
    """Checkbox values; with ``strict``, anything but true/false/null must be refused (use_image_prior)."""
    values = [("'yes'", "yes"), ("'false'", "false"), ("'true'", "true"), ("1", 1), ("0", 0), ("2", 2), ("null", None), ("[]", []),
              ("{}", {}), ("NaN", math.nan), ("lone surrogate", "\ud800")]
    return [Bad(label, value, strict and value is not None) for label, value in values]


# --- files -----------------------------------------------------------------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(size=(4, 4), color=(200, 40, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def _png_with_chunk(chunk: bytes) -> bytes:
    """A 4x4 PNG with ``chunk`` right after IHDR (where Pillow reads text chunks on open)."""
    png = _png()
    split = 8 + 25  # signature + IHDR
    return png[:split] + chunk + png[split:]


def _itxt(text: bytes, compressed: bool = True) -> bytes:
    body = zlib.compress(text) if compressed else text
    return _png_chunk(b"iTXt", RECIPE_KEY.encode() + b"\x00" + (b"\x01" if compressed else b"\x00") + b"\x00" + b"\x00" + b"\x00" + body)


def _png_recipe(text: str | bytes) -> bytes:
    return _png_with_chunk(_itxt(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text))


def _wav(seconds: float = 0.25, rate: int = 16000) -> bytes:
    buffer = io.BytesIO()
    samples = (0.3 * np.sin(2 * np.pi * 330 * np.arange(int(seconds * rate)) / rate)).astype(np.float32)
    soundfile.write(buffer, samples, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _riff_chunk(kind: bytes, data: bytes, size: int | None = None) -> bytes:
    return kind + struct.pack("<I", len(data) if size is None else size) + data + (b"\x00" if len(data) % 2 else b"")


def _wav_with(chunk: bytes) -> bytes:
    wav = _wav()
    body = wav[12:] + chunk
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body


def _wav_recipe(text: str | bytes) -> bytes:
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    return _wav_with(_riff_chunk(b"LIST", b"INFO" + _riff_chunk(b"ICMT", data + b"\x00")))


def _wav_header(channels: int, rate: int, bits: int, data_size: int, data: bytes = b"") -> bytes:
    fmt = struct.pack("<HHIIHH", 1, channels, rate, (rate * channels * bits // 8) & 0xFFFFFFFF, (channels * bits // 8) & 0xFFFF, bits)
    body = b"WAVE" + _riff_chunk(b"fmt ", fmt) + b"data" + struct.pack("<I", data_size) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _nested(depth: int, kind: str = "list") -> str:
    if kind == "list":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


def _deep_value(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


BASE_RECIPE_TEXT = '{"kind":"generate","inputs":{"text":"a kite"},"output":"image","weights":{"text":1.0},"seed":0,"steps":1,"guidance":3.0,"num_outputs":1}'


def fixed_files() -> dict[str, bytes]:
    """Named files to upload: corrupt media, and PNGs and WAVs with malformed recipes inside."""
    rng = random.Random(SEED)
    good_png, good_wav = _png(), _wav()
    bomb_text = zlib.compress(b" " * 50_000_000, 9)
    files = {
        "good.png": good_png,
        "good.wav": good_wav,
        "one-pixel.png": _png((1, 1)),
        "truncated.png": good_png[:40],
        "signature-only.png": b"\x89PNG\r\n\x1a\n",
        "zero-by-zero.png": png_header_only(0, 0),
        "wide-64000x1.png": png_header_only(64000, 1),
        "bomb-100000x100000.png": png_header_only(100000, 100000),
        "bomb-20000x20000.png": png_header_only(20000, 20000),
        "random.png": rng.randbytes(2048),
        "random.wav": rng.randbytes(4096),
        "riff-random.wav": b"RIFF" + struct.pack("<I", 4000) + b"WAVE" + rng.randbytes(3992),
        "empty.png": b"",
        "empty.wav": b"",
        "text.png": b"this is not a picture",
        "text.wav": b"not a sound at all",
        "png-named.wav": good_png,
        "wav-named.png": good_wav,
        "wav-header-only.wav": _wav_header(1, 16000, 16, 0),
        "wav-huge-data-claim.wav": _wav_header(1, 16000, 16, 0xFFFFFFF0, b"\x00" * 10),
        "wav-zero-channels.wav": _wav_header(0, 16000, 16, 8, b"\x00" * 8),
        "wav-zero-rate.wav": _wav_header(1, 0, 16, 8, b"\x00" * 8),
        "wav-huge-rate.wav": _wav_header(1, 0xFFFFFFFF, 16, 8, b"\x00" * 8),
        "wav-65535-channels.wav": _wav_header(65535, 16000, 16, 8, b"\x00" * 8),
        "wav-one-sample.wav": _wav(seconds=1 / 16000),
        "wav-silent.wav": _wav_header(1, 8000, 16, 16000, b"\x00" * 16000),
        # recipes inside PNGs
        "recipe-ok.png": _png_recipe(BASE_RECIPE_TEXT),
        "recipe-nested-list.png": _png_recipe(_nested(DEPTH)),
        "recipe-nested-dict.png": _png_recipe(_nested(DEPTH, "dict")),
        "recipe-nested-unclosed.png": _png_recipe("[" * DEPTH),
        "recipe-kind-then-nested.png": _png_recipe('{"kind":"generate","x":' + _nested(DEPTH) + "}"),
        "recipe-nested-300.png": _png_recipe(json.dumps({"kind": "generate", "deep": _deep_value(300)})),
        "recipe-not-json.png": _png_recipe("{oops"),
        "recipe-list.png": _png_recipe("[1, 2]"),
        "recipe-string.png": _png_recipe('"kind"'),
        "recipe-no-kind.png": _png_recipe('{"a": 1}'),
        "recipe-nan.png": _png_recipe('{"kind": NaN, "seed": Infinity}'),
        "recipe-lone-surrogate.png": _png_recipe('{"kind": "generate", "inputs": {"text": "\\ud800"}}'),
        "recipe-bad-utf8.png": _png_recipe(b'{"kind": "\xff\xfe"}'),
        "recipe-2MB.png": _png_recipe('{"kind":"generate","pad":"' + "x" * (2 * MB) + '"}'),
        "recipe-zip-bomb.png": _png_with_chunk(_png_chunk(b"iTXt", RECIPE_KEY.encode() + b"\x00\x01\x00\x00\x00" + bomb_text)),
        "recipe-bad-zlib.png": _png_with_chunk(_png_chunk(b"iTXt", RECIPE_KEY.encode() + b"\x00\x01\x00\x00\x00" + b"not zlib")),
        "recipe-bad-crc.png": _png_with_chunk(_itxt(BASE_RECIPE_TEXT.encode())[:-4] + b"\x00\x00\x00\x00"),
        "recipe-short-chunk.png": _png_with_chunk(struct.pack(">I", 0x7FFFFFFF) + b"iTXt" + RECIPE_KEY.encode()),
        "recipe-text-chunk.png": _png_with_chunk(_png_chunk(b"tEXt", RECIPE_KEY.encode() + b"\x00" + _nested(DEPTH).encode())),
        # recipes inside WAVs
        "recipe-ok.wav": _wav_recipe(BASE_RECIPE_TEXT),
        "recipe-nested-list.wav": _wav_recipe(_nested(DEPTH)),
        "recipe-nested-dict.wav": _wav_recipe(_nested(DEPTH, "dict")),
        "recipe-nested-300.wav": _wav_recipe(json.dumps({"kind": "generate", "deep": _deep_value(300)})),
        "recipe-not-json.wav": _wav_recipe("{oops"),
        "recipe-bad-utf8.wav": _wav_recipe(b'{"kind": "generate", "x": "\xff\xfe"}'),
        "recipe-2MB.wav": _wav_recipe('{"kind":"generate","pad":"' + "x" * (2 * MB) + '"}'),
        "list-size-overflow.wav": _wav_with(b"LIST" + struct.pack("<I", 0xFFFFFFFF) + b"INFO" + _riff_chunk(b"ICMT", b"{}")),
        "list-too-short.wav": _wav_with(_riff_chunk(b"LIST", b"IN")),
        "icmt-size-overflow.wav": _wav_with(_riff_chunk(b"LIST", b"INFO" + b"ICMT" + struct.pack("<I", 0xFFFFFFFF) + b"{")),
        "riff-only.wav": b"RIFF\x04\x00\x00\x00WAVE",
    }
    # a 9000x9000 one-bit picture: 81 megapixels in a few KB
    buffer = io.BytesIO()
    Image.new("1", (9000, 9000)).save(buffer, format="PNG")
    files["huge-9000x9000.png"] = buffer.getvalue()
    return files


def mutated_files(rng: random.Random, count: int) -> dict[str, bytes]:
    """Byte flips and truncations of recipe-bearing PNGs and WAVs."""
    sources = [_png_recipe(BASE_RECIPE_TEXT), _wav_recipe(BASE_RECIPE_TEXT)]
    files = {}
    for i in range(count):
        data = bytearray(rng.choice(sources))
        suffix = ".png" if data[:4] == b"\x89PNG" else ".wav"
        how = rng.randrange(3)
        if how == 0:
            data = data[: rng.randrange(len(data))]
        else:
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            if how == 2:  # also a size field
                offset = rng.randrange(max(len(data) - 4, 1))
                data[offset : offset + 4] = struct.pack("<I", rng.choice([0, 0xFFFFFFFF, 0x7FFFFFFF, rng.randrange(2**32)]))
        files[f"mutant-{i:03d}{suffix}"] = bytes(data)
    return files


@dataclass
class Uploads:
    """Uploaded files by name (their paths in gradio's upload folder) and the pools built on them."""

    paths: dict[str, str]
    upload_root: Path
    output_file: str  # a PNG the app made (in gradio's cache)
    history_folder: Path

    def fd(self, name: str) -> dict[str, Any]:
        return {"path": self.paths[name], "orig_name": name, "meta": META}

    def media_pool(self, kind: str) -> list[Bad]:
        """Values for an image/audio/file field: every upload plus outside paths, data: URLs and wrong types."""
        pool = [Bad("null", None)]
        names = [n for n in self.paths if not n.startswith("mutant-")]
        if kind == "image":
            names = [n for n in names if n.endswith(".png") or n.startswith("recipe-ok")]
        elif kind == "audio":
            names = [n for n in names if n.endswith(".wav") or n in ("good.png", "text.png", "empty.png")]
        pool += [Bad(f"upload:{n}", self.fd(n)) for n in names]
        outside = {
            "/etc/passwd": "/etc/passwd",
            "app.py": str(ROOT / "app.py"),
            "repo image": str(ROOT / "assets" / "examples" / "red-apple.png"),
            "history folder": str(self.history_folder),
            "traversal": f"{self.upload_root}/../../etc/passwd",
            "relative traversal": "../../../../etc/passwd",
        }
        pool += [Bad(f"outside path: {label}", {"path": path, "meta": META}, True) for label, path in outside.items()]
        png64 = base64.b64encode(_png()).decode()
        wav64 = base64.b64encode(_wav()).decode()
        pool += [
            Bad("missing in upload folder", {"path": f"{self.upload_root}/no-such-dir/missing.png", "meta": META}),
            Bad("missing path", {"path": "/no/such/file.png", "meta": META}, True),
            Bad("upload folder itself", {"path": str(self.upload_root), "meta": META}),
            Bad("app output (in cache)", {"path": self.output_file, "meta": META}),
            Bad("data: URL as path", {"path": f"data:image/png;base64,{png64}", "meta": META}),
            Bad("data: URL wav as path", {"path": f"data:audio/wav;base64,{wav64}", "meta": META}),
            Bad("data: URL in url", {"path": "x.png", "url": f"data:image/png;base64,{png64}", "meta": META}),
            Bad("data: URL string", f"data:image/png;base64,{png64}"),
            Bad("data: bad base64", {"path": "data:image/png;base64,!!!!", "meta": META}),
            Bad("plain path string", self.paths["good.png"]),
            Bad("/etc/passwd string", "/etc/passwd", True),
            Bad("FileData without meta", {"path": "/etc/passwd"}, True),
            Bad("FileData path=5", {"path": 5, "meta": META}),
            Bad("FileData path=null", {"path": None, "meta": META}),
            Bad("FileData path=''", {"path": "", "meta": META}),
            Bad("FileData path=lone surrogate", {"path": "\ud800", "meta": META}),
            Bad("FileData only meta", {"meta": META}),
            Bad("FileData 1MB path", {"path": "p" * MB, "meta": META}),
            Bad("5", 5), Bad("true", True), Bad("''", ""), Bad("lone surrogate", "\ud800"), Bad("NaN", math.nan), Bad("[]", []),
            Bad("[FileData]", [self.fd("good.png")]), Bad("{}", {}), Bad("1MB str", "f" * MB),
        ]
        return pool

    def mutants(self) -> list[Bad]:
        return [Bad(f"upload:{n}", self.fd(n)) for n in self.paths if n.startswith("mutant-")]


# --- recipes for /replay --------------------------------------------------------------------------


def recipe_mutations(base: dict[str, Any], rng: random.Random) -> dict[str, list[Bad]]:
    """For each recipe key, values that break it (``refuse``: the service's limits say no)."""

    def numbers(low, high, whole, extra=()):
        pool = number_pool(low, high, whole, rng)
        return pool + [Bad(label, value, numbers_out_of(low, high, whole, value)) for label, value in extra]

    return {
        "inputs": [Bad(label, value) for label, value in [
            ("'x'", "x"), ("5", 5), ("[]", []), ("null", None), ("{}", {}), ('{"image_sha256":5}', {"image_sha256": 5}),
            ('{"image_sha256":[]}', {"image_sha256": []}), ("unknown image sha", {"text": "a", "image_sha256": "0" * 64}),
            ('{"audio_sha256":{"a":1}}', {"audio_sha256": {"a": 1}}), ("sha /etc/passwd", {"image_sha256": "/etc/passwd"}),
            ("sha traversal", {"audio_sha256": "../../../etc/passwd"}), ('{"text":5}', {"text": 5}), ('{"text":["a"]}', {"text": ["a"]}),
            ("text lone surrogate", {"text": "\ud800"}), ("text 1MB", {"text": "x" * MB}), ("sha 1MB", {"image_sha256": "0" * MB}),
        ]],
        "weights": [Bad(label, value, refuse) for label, value, refuse in [
            ("5", 5, False), ("'x'", "x", False), ("[]", [], False), ("[1]", [1], False), ("null", None, False), ("{}", {}, False),
            ('{"text":"a"}', {"text": "a"}, True), ('{"text":NaN}', {"text": math.nan}, True), ('{"text":-1}', {"text": -1}, True),
            ('{"text":1e9}', {"text": 1e9}, True), ('{"text":Infinity}', {"text": math.inf}, True), ('{"video":1}', {"video": 1}, False),
            ('{"text":0}', {"text": 0}, True), ('{"text":[1]}', {"text": [1]}, True), ('{"image":1}', {"image": 1.0}, False),
        ]],
        "seed": numbers(0, MAX_SEED, True),
        "steps": numbers(1, MAX_STEPS, True, [("1e9", 10**9), ("101", 101), ("1000", 1000)]),
        "guidance": numbers(0, MAX_GUIDANCE, False, [("50", 50), ("1e9", 1e9)]),
        "num_outputs": numbers(1, MAX_VARIANTS, True, [("1e6", 10**6), ("5", 5), ("0", 0)]),
        "temperature": numbers(0, MAX_TEMPERATURE, False, [("5", 5)]),
        "output": output_pool() + [Bad("'sound'", "sound"), Bad("'caption'", "caption")],
        "best_first": [Bad("'yes'", "yes"), Bad("1", 1), Bad("null", None), Bad("[]", []), Bad("'false'", "false")],
        "use_image_prior": [Bad("'no'", "no", True), Bad("0", 0, True), Bad("null", None), Bad("'false'", "false", True), Bad("{}", {}, True)],
        "scheduler": [Bad("'bogus'", "bogus"), Bad("5", 5), Bad("[]", []), Bad("{}", {}), Bad("lone surrogate", "\ud800")],
        "caption_method": [Bad("'x'", "x"), Bad("5", 5), Bad("[]", []), Bad("{}", {})],
        "kind": [Bad("'interpolate'", "interpolate"), Bad("5", 5), Bad("null", None), Bad("'x'", "x"), Bad("[]", [])],
        "order": [Bad("'x'", "x"), Bad("[99]", [99]), Bad("null", None), Bad("[NaN]", [math.nan])],
        "version": [Bad("'x'", "x"), Bad("1e9", 10**9), Bad("null", None)],
        "variant": [Bad("'x'", "x"), Bad("-1", -1), Bad("NaN", math.nan)],
        "deep": [Bad("nested 300", _deep_value(300)), Bad("nested 50", _deep_value(50))],
    }


MORPH_MUTATIONS = {
    "mix_a": [Bad("'x'", "x"), Bad("5", 5), Bad("null", None), Bad("{}", {}), Bad('{"inputs":"x"}', {"inputs": "x", "weights": {}}),
              Bad('{"weights":5}', {"inputs": {"text": "a"}, "weights": 5}), Bad('{"inputs":{"text":5}}', {"inputs": {"text": 5}, "weights": {}}),
              Bad("image sha 5", {"inputs": {"image_sha256": 5}, "weights": {}}), Bad("unknown image sha", {"inputs": {"image_sha256": "0" * 64}, "weights": {}}),
              Bad("weights NaN", {"inputs": {"text": "a"}, "weights": {"text": math.nan}}, True), Bad("[]", [])],
    "n": [Bad("1e6", 10**6, True), Bad("1", 1, True), Bad("9", MAX_FRAMES + 1, True), Bad("'x'", "x", True), Bad("2.5", 2.5, True),
          Bad("NaN", math.nan, True), Bad("null", None), Bad("-1", -1, True)],
    "steps": [Bad("1e9", 10**9, True), Bad("101", MAX_STEPS + 1, True), Bad("0", 0, True), Bad("'1'", "1"), Bad("NaN", math.nan, True)],
    "guidance": [Bad("50", 50, True), Bad("NaN", math.nan, True), Bad("'x'", "x", True), Bad("-1", -1, True)],
    "seed": [Bad("-1", -1, True), Bad("'x'", "x", True), Bad("Infinity", math.inf, True), Bad("1e30(int)", 10**30, True)],
    "output": [Bad("'video'", "video", True), Bad("5", 5, True), Bad("null", None)],
    "use_image_prior": [Bad("'no'", "no", True), Bad("1", 1, True)],
}


def recipe_pool(base: dict[str, Any], morph: dict[str, Any], rng: random.Random) -> list[Bad]:
    """Values of the recipe field of /replay: not-recipes, deep JSON text, and base recipes with one key broken."""
    pool = [
        Bad("'x'", "x"), Bad("'{oops'", "{oops"), Bad("''", ""), Bad("'null'", "null"), Bad("'[]'", "[]"), Bad("'5'", "5"),
        Bad("list nested 1e5 (text)", _nested(DEPTH)), Bad("dict nested 1e5 (text)", _nested(DEPTH, "dict")),
        Bad("unclosed [ x1e5 (text)", "[" * DEPTH), Bad("unclosed { x1e5 (text)", "{" * DEPTH),
        Bad("kind then nested 1e5 (text)", '{"kind":"generate","x":' + _nested(DEPTH) + "}"),
        Bad("nested 300 (JSON)", {"kind": "generate", "deep": _deep_value(300)}), Bad("text 1MB", "r" * MB),
        Bad("base as text", json.dumps(base)), Bad("5", 5), Bad("NaN", math.nan), Bad("true", True), Bad("[]", []), Bad("[base]", [base]),
        Bad("null", None), Bad("lone surrogate", "\ud800"), Bad("{}", {}), Bad("kind only", {"kind": "generate"}),
        Bad("interpolate only", {"kind": "interpolate"}), Bad("base, text with lone surrogate", json.dumps(base).replace("a kite", "\ud800")),
    ]
    for key, bads in recipe_mutations(base, rng).items():
        pool += [Bad(f"{{{key}={bad.label}}}", {**base, key: bad.value}, bad.refuse) for bad in bads]
        if key in base:
            pool.append(Bad(f"{{no {key}}}", {k: v for k, v in base.items() if k != key}))
    for key, bads in MORPH_MUTATIONS.items():
        pool += [Bad(f"morph{{{key}={bad.label}}}", {**morph, key: bad.value}, bad.refuse) for bad in bads]
        if key in morph:
            pool.append(Bad(f"morph{{no {key}}}", {k: v for k, v in morph.items() if k != key}))
    return pool


def recipe_junk(base: dict[str, Any], morph: dict[str, Any], rng: random.Random) -> Bad:
    """A base recipe with one to three keys broken or dropped, as an object or as JSON text."""
    table = recipe_mutations(base, rng) if rng.random() < 0.75 else MORPH_MUTATIONS
    recipe = dict(base if table is not MORPH_MUTATIONS else morph)
    parts, refuse = [], False
    for key in rng.sample(sorted(table), rng.randint(1, 3)):
        if key in recipe and rng.random() < 0.15:
            del recipe[key]
            parts.append(f"no {key}")
        else:
            bad = rng.choice(table[key])
            recipe[key] = bad.value
            parts.append(f"{key}={bad.label}")
            refuse |= bad.refuse
    prefix = "morph" if table is MORPH_MUTATIONS else ""
    if rng.random() < 0.3:
        return Bad(f"{prefix}text{{{', '.join(parts)}}}", json.dumps(recipe, allow_nan=True), refuse)
    return Bad(f"{prefix}{{{', '.join(parts)}}}", recipe, refuse)


# --- endpoints ----------------------------------------------------------------------------------


@dataclass
class FieldSpec:
    name: str
    pool: list[Bad]
    junk: Any = None  # rng -> Bad, for the random combinations


def endpoint_fields(endpoint: str, uploads: Uploads, base_recipe: dict, morph_recipe: dict, rng: random.Random) -> tuple[list[Any], list[FieldSpec]]:
    """The endpoint's cheap valid arguments (steps 1) and, per field, its bad values."""

    def number(name, low, high, whole, sample: int | None = None):
        """A number field; with ``sample``, only that many of its bad values are tried alone (a pool another field covers)."""
        pool = number_pool(low, high, whole, rng)
        return FieldSpec(name, pool if sample is None else rng.sample(pool, sample), lambda r: number_junk(low, high, whole, r))

    def text(name, sample: int | None = None):
        pool = text_pool()
        return FieldSpec(name, pool if sample is None else rng.sample(pool, sample), text_junk)

    image_pool, audio_pool, mutants = uploads.media_pool("image"), uploads.media_pool("audio"), uploads.mutants()

    def media(name, pool, sample: int | None = None):
        """A media field; the second image or sound of an endpoint tries a sample of the pool alone."""
        alone = pool if sample is None else [pool[0]] + rng.sample(pool[1:], sample)
        return FieldSpec(name, alone, lambda r: r.choice(pool + mutants))

    # /mix shares these checks with /text_to_image, which tries every bad value of each alone
    shared = 15 if endpoint == "/mix" else None
    seed, steps = number("seed", 0, MAX_SEED, True, shared), number("steps", 1, MAX_STEPS, True, shared)
    guidance, variants = number("guidance", 0, MAX_GUIDANCE, False, shared), number("variants", 1, MAX_VARIANTS, True, shared)
    temperature = number("temperature", 0, MAX_TEMPERATURE, False, shared)
    best_first = FieldSpec("best_first", switch_pool(False))
    snap = FieldSpec("use_image_prior", switch_pool(True))
    output = FieldSpec("output", output_pool())
    weights = [number("text_weight", 0, MAX_WEIGHT, False), number("image_weight", 0, MAX_WEIGHT, False, 10), number("audio_weight", 0, MAX_WEIGHT, False, 10)]
    good_png, good_wav = uploads.fd("good.png"), uploads.fd("good.wav")
    if endpoint == "/text_to_image":
        return ["a kite", 0, 1, 3.0, 1, False, 0.0, True], [text("prompt"), seed, steps, guidance, variants, best_first, temperature, snap]
    if endpoint == "/image_to_audio":
        return [good_png, 0, 1, 3.0], [media("image", image_pool), seed, steps, guidance]
    if endpoint == "/caption":
        return [good_png, None], [media("image", image_pool), media("audio", audio_pool)]
    if endpoint == "/mix":
        fields = [text("text"), weights[0], media("image", image_pool), weights[1], media("audio", audio_pool, 15), weights[2], output, seed, steps,
                  guidance, variants, best_first, temperature, snap]
        return ["a kite", 1.0, None, 1.0, None, 1.0, "image", 0, 1, 3.0, 1, False, 0.0, True], fields
    if endpoint == "/search":
        return ["a kite", None, None, 3], [text("text"), media("image", image_pool), media("audio", audio_pool), number("k", 1, MAX_HITS, True)]
    if endpoint == "/morph":
        fields = [text("text_a"), media("image_a", image_pool), media("audio_a", audio_pool), text("text_b", 8), media("image_b", image_pool, 12),
                  media("audio_b", audio_pool, 12), output, number("frames", 2, MAX_FRAMES, True), seed, steps, snap]
        return ["a cat", None, None, "a drum", None, None, "image", 2, 0, 1, True], fields
    if endpoint == "/replay":
        recipe = FieldSpec("recipe", recipe_pool(base_recipe, morph_recipe, rng), lambda r: recipe_junk(base_recipe, morph_recipe, r))
        return [base_recipe, None, None], [recipe, media("image", image_pool, 15), media("audio", audio_pool, 15)]
    if endpoint == "/read_recipe":
        file_pool = uploads.media_pool("file")
        return [uploads.fd("recipe-ok.png")], [FieldSpec("file", file_pool, lambda r: r.choice(mutants))]
    if endpoint == "/shares":
        fields = [text("text"), weights[0], media("image", image_pool, 15), weights[1], media("audio", audio_pool, 15), weights[2]]
        return ["a kite", 1.0, good_png, 1.0, good_wav, 1.0], fields
    if endpoint == "/history":
        return [5], [number("limit", 1, 1000, True)]
    raise AssertionError(endpoint)


def make_cases(endpoint: str, uploads: Uploads, base_recipe: dict, morph_recipe: dict) -> list[Case]:
    """Every bad value of every field alone, then random combinations (also of random junk), until
    there are at least ``PER_ENDPOINT`` and at least ``RANDOM_COMBOS`` combinations."""
    rng = random.Random(f"{SEED}:{endpoint}")
    base, fields = endpoint_fields(endpoint, uploads, base_recipe, morph_recipe, rng)
    cases = []
    for index, spec in enumerate(fields):
        for bad in spec.pool:
            args = list(base)
            args[index] = bad.value
            cases.append(Case(endpoint, args, f"{spec.name}={bad.label}", bad.refuse))
    combos = 0
    while len(cases) < PER_ENDPOINT or combos < RANDOM_COMBOS:
        args, labels, refuse = list(base), [], False
        for index in sorted(rng.sample(range(len(fields)), rng.randint(1, min(3, len(fields))))):
            spec = fields[index]
            bad = spec.junk(rng) if spec.junk is not None and rng.random() < 0.5 else rng.choice(spec.pool)
            args[index] = bad.value
            labels.append(f"{spec.name}={bad.label}")
            refuse |= bad.refuse
        cases.append(Case(endpoint, args, ", ".join(labels), refuse))
        combos += 1
    return cases


# --- talking to the app -----------------------------------------------------------------------------


@dataclass
class Outcome:
    kind: str  # "success", "error" (with a message) or "broken"
    message: str | None = None
    data: Any = None


def call(client: httpx.Client, endpoint: str, args: list[Any], timeout: float = CALL_TIMEOUT) -> Outcome:
    """POST /gradio_api/call/<name>, then read its event stream up to ``complete`` or ``error``."""
    name = endpoint.lstrip("/")
    body = json.dumps({"data": args}, allow_nan=True)  # NaN and Infinity travel as JSON5-style literals, as browsers cannot but clients can
    deadline = time.monotonic() + timeout
    try:
        response = client.post(f"gradio_api/call/{name}", content=body.encode("utf-8"), headers={"content-type": "application/json"})
    except httpx.HTTPError as error:
        return Outcome("broken", f"POST failed: {type(error).__name__}: {error}")
    if response.status_code != 200:
        try:
            answer = response.json()
            detail = answer.get("detail", answer.get("error"))
        except (ValueError, AttributeError):
            detail = None
        if 400 <= response.status_code < 500 and isinstance(detail, str) and detail.strip():
            return Outcome("error", detail)
        return Outcome("broken", f"HTTP {response.status_code}: {response.text[:150]}")
    try:
        event_id = response.json()["event_id"]
    except (ValueError, KeyError, TypeError):
        return Outcome("broken", f"POST answered without an event id: {response.text[:150]}")
    event = None
    try:
        with client.stream("GET", f"gradio_api/call/{name}/{event_id}") as stream:
            for line in stream.iter_lines():
                if time.monotonic() > deadline:
                    return Outcome("broken", f"timeout: no result after {timeout:.0f} s")
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:") and event in ("complete", "error"):
                    try:
                        data = json.loads(line[5:].strip())
                    except ValueError:
                        return Outcome("broken", f"unreadable {event} event: {line[:100]}")
                    if event == "complete":
                        return Outcome("success", data=data)
                    if isinstance(data, dict):
                        return Outcome("error", data.get("error"))
                    return Outcome("error", data)
    except httpx.TimeoutException:
        return Outcome("broken", f"timeout: no result after {timeout:.0f} s")
    except httpx.HTTPError as error:
        return Outcome("broken", f"event stream failed: {type(error).__name__}")
    return Outcome("broken", f"the event stream ended without a result (last event {event!r})")


def upload(client: httpx.Client, files: dict[str, bytes]) -> dict[str, str]:
    items = list(files.items())
    paths: dict[str, str] = {}
    for start in range(0, len(items), 8):  # the app takes at most 8 files per upload
        batch = items[start : start + 8]
        response = client.post("gradio_api/upload", files=[("files", (n, data, "application/octet-stream")) for n, data in batch])
        assert response.status_code == 200, response.text
        paths.update(zip([n for n, _ in batch], response.json(), strict=True))
    return paths


# --- what the server printed ----------------------------------------------------------------------


class Records(logging.Handler):
    """Keeps log records at ERROR or above and any with a traceback (failures), and counts warnings (not failures)."""

    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.warnings: dict[str, int] = {}
        self._seen: set[int] = set()

    def emit(self, record: logging.LogRecord) -> None:
        if id(record) in self._seen:  # a record reaches every logger it propagates through
            return
        self._seen.add(id(record))
        if record.levelno >= logging.ERROR or record.exc_info:
            self.records.append(record)
        elif record.levelno >= logging.WARNING:
            key = re.sub(r"\b\d[\w-]{7,}", "<id>", f"{record.name}: {record.getMessage()}")[:150]  # one line per kind, not per item
            self.warnings[key] = self.warnings.get(key, 0) + 1

    def take(self) -> list[str]:
        taken, self.records = self.records, []
        if len(self._seen) > 10_000:
            self._seen.clear()
        texts = []
        for record in taken:
            text = f"log {record.name} {record.levelname}: {record.getMessage()}"
            if record.exc_info:
                text += "\n" + "".join(logging.Formatter().formatException(record.exc_info))
            texts.append(text)
        return texts


FRAME = re.compile(r'^\s*File "([^"]+)", line (\d+), in (\S+)', re.M)


def _exception_of(block: str, frames: list[re.Match]) -> str:
    """The exception's type as printed below the last frame (its message may span lines)."""
    rest = block[frames[-1].end() :] if frames else block
    for line in rest.splitlines()[1:]:  # the frame's source lines are indented; the exception is not
        if line.strip() and not line.startswith((" ", "\t")):
            return line.split(":", 1)[0].strip()
    return "?"


def summarize_traceback(blocks: list[str]) -> str:
    """A chain of tracebacks (cause first) as 'Final (from Cause) at studio/x.py:12 fn': the
    innermost frame in the app's own code anywhere in the chain, else gradio's, else the last."""
    parsed = [(block, list(FRAME.finditer(block))) for block in blocks]
    final, cause = _exception_of(*parsed[-1]), _exception_of(*parsed[0])
    found = [m.groups() for _, frames in parsed for m in frames]
    ours = [f for f in found if f[0].startswith(str(ROOT)) and "/.venv/" not in f[0] and "/tests/" not in f[0]]
    gradio = [f for f in [m.groups() for m in parsed[-1][1]] if "/gradio/" in f[0]]
    path, line, function = (ours or gradio or found or [("?", "?", "?")])[-1]
    path = path.removeprefix(str(ROOT) + "/")
    if "site-packages/" in path:
        path = path.split("site-packages/", 1)[1]
    caused = f" (from {cause})" if cause != final else ""
    return f"traceback {final}{caused} at {path}:{line} {function}"


CHAINED = ("the following exception occurred:", "direct cause of the following exception:")


def tracebacks_in(text: str) -> list[str]:
    """One summary per printed traceback chain ('During handling...' and 'direct cause' blocks join the next)."""
    if "Traceback (most recent call last)" not in text:
        return []
    chunks = [c for c in re.split(r"\n(?=Traceback \(most recent call last\):)", text) if "Traceback (most recent call last)" in c]
    summaries: list[str] = []
    chain: list[str] = []
    for chunk in chunks:
        chain.append(chunk)
        if not chunk.rstrip().endswith(CHAINED):
            summaries.append(summarize_traceback(chain))
            chain = []
    if chain:
        summaries.append(summarize_traceback(chain))
    return summaries


# --- checks -----------------------------------------------------------------------------------------


def new_cache_entries(demo, upload_root: Path, seen: set[str]) -> list[str]:
    """Problems with the paths gradio registered since the last look as its own, to delete later
    (``delete_cache``, and at shutdown): a directory makes ``os.remove`` fail, a path outside its
    cache would delete a file it does not own. Such a path is taken off again, so that the next
    input doing the same is caught too and nothing is deleted."""
    problems = []
    for temp_set in getattr(demo, "temp_file_sets", []):
        for _ in range(3):
            try:
                new = set(temp_set) - seen
                break
            except RuntimeError:  # changed size while copied
                continue
        else:
            continue
        for path in new:
            if os.path.isdir(path):
                problems.append("gradio registered a directory of its cache for deletion (os.remove fails at shutdown)")
                temp_set.discard(path)
            elif not os.path.abspath(path).startswith(str(upload_root) + os.sep):
                problems.append(f"gradio registered a file outside its cache for deletion ({Path(path).name})")
                temp_set.discard(path)
            else:
                seen.add(path)
    return problems



def forbidden_in_messages(history_folder: Path, upload_root: Path) -> list[str]:
    return sorted({"/tmp/", tempfile.gettempdir() + "/", str(history_folder), str(upload_root), str(ROOT), "site-packages", "Traceback"})


def judge(outcome: Outcome, case: Case, forbidden: list[str]) -> list[str]:
    """The ways this outcome breaks the rules (empty: fine)."""
    problems = []
    if outcome.kind == "broken":
        problems.append(outcome.message.split(":")[0] if outcome.message.startswith(("timeout", "HTTP")) else outcome.message[:80])
    elif outcome.kind == "error":
        message = outcome.message
        if not isinstance(message, str) or not message.strip():
            problems.append(f"error without a message ({json.dumps(message)})")
        else:
            if len(message) >= MAX_MESSAGE:
                problems.append("message too long")
            problems += [f"message contains {bad!r}" for bad in forbidden if bad in message]
    elif case.refuse:
        problems.append("accepted an input that must be refused")
    return problems


@dataclass
class Tally:
    tried: int = 0
    success: int = 0
    clear: int = 0
    seconds: float = 0.0
    failures: list[tuple[str, list[str], str]] = field(default_factory=list)  # label, problems, detail


def report(tallies: dict[str, Tally], seconds: float, notes: list[str], warnings: dict[str, int]) -> str:
    lines = [f"API fuzz: {sum(t.tried for t in tallies.values())} inputs in {seconds:.0f} s"]
    for endpoint in ENDPOINTS:
        t = tallies.get(endpoint)
        if t is None:
            continue
        lines.append(f"{endpoint}: {t.tried} tried in {t.seconds:.0f} s, {t.success} success, {t.clear} clear error, {len(t.failures)} failures")
        groups: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for label, problems, detail in t.failures:  # one group per combination of problems
            groups[" + ".join(dict.fromkeys(problems))].append((label, detail))
        for problem, examples in sorted(groups.items(), key=lambda kv: -len(kv[1])):
            lines.append(f"  [{len(examples)}x] {problem}")
            for label, detail in examples[:3]:
                text = f"{label}" + (f"  → {detail}" if detail else "")
                lines.append(f"      - {text[:200]}")
    if warnings:
        lines.append(f"logged warnings (not failures), {sum(warnings.values())} in all:")
        lines += [f"  [{count}x] {text}" for text, count in sorted(warnings.items(), key=lambda kv: -kv[1])[:5]]
    lines += notes
    return "\n".join(lines)


# --- the app -----------------------------------------------------------------------------------------


LOGGERS = ("", "uvicorn", "uvicorn.error", "uvicorn.access")  # uvicorn's loggers do not propagate to the root


@pytest.fixture(scope="module")
def fuzz_app(tiny_studio, tmp_path_factory):
    """The app on its own history folder; closing it must log no error either (what the fuzz left
    behind, such as files registered for deletion, shows there)."""
    folder = tmp_path_factory.mktemp("fuzz-history")
    service = make_service(tiny_studio.pipeline, folder)
    demo = launch(service, public=True)  # as on a Space
    try:
        yield service, demo, folder
    finally:
        closing = Records()
        for name in LOGGERS:
            logging.getLogger(name).addHandler(closing)
        try:
            demo.close()
        finally:
            for name in LOGGERS:
                logging.getLogger(name).removeHandler(closing)
            stop = getattr(service, "stop_indexing", None)
            if stop is not None:
                stop()
        errors = [s for text in closing.take() for s in tracebacks_in(text) or [text.splitlines()[0][:150]]]
        if errors:
            pytest.fail("closing the app after the fuzz logged errors:\n  " + "\n  ".join(dict.fromkeys(errors)), pytrace=False)


def _stop_everything(service) -> None:
    """After a timeout: ask every generation in hand to stop at its next step (as Stop does)."""
    service.runs.stop_all()


def test_every_endpoint_answers_bad_input_with_a_result_or_a_clear_message(fuzz_app, capfd):
    service, demo, history_folder = fuzz_app
    started = time.monotonic()
    records = Records()
    loggers = [logging.getLogger(name) for name in LOGGERS]
    for logger in loggers:
        logger.addHandler(records)
    thread_errors: list[str] = []
    previous_hook = threading.excepthook

    def hook(args):
        import traceback

        thread_errors.append("Exception in thread\n" + "".join(traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback)))
        previous_hook(args)

    threading.excepthook = hook
    tallies: dict[str, Tally] = {}
    notes: list[str] = []
    log = open(FUZZ_LOG, "w", encoding="utf-8") if FUZZ_LOG else None  # noqa: SIM115
    try:
        with httpx.Client(base_url=demo.local_url, timeout=httpx.Timeout(CALL_TIMEOUT, connect=10)) as client:
            # a real generation and morph first: their recipes are the base of the /replay inputs
            made = call(client, "/text_to_image", ["a kite", 0, 1, 3.0, 1, False, 0.0, True])
            assert made.kind == "success", f"the app does not work at all: {made}"
            morphed = call(client, "/morph", ["a cat", None, None, "a drum", None, None, "image", 2, 0, 1, True])
            assert morphed.kind == "success", f"the app does not work at all: {morphed}"
            base_recipe, morph_recipe = made.data[1], morphed.data[3]
            files = {**fixed_files(), **mutated_files(random.Random(SEED), 120)}
            paths = upload(client, files)
            upload_root = Path(paths["good.png"]).parent.parent
            uploads = Uploads(paths, upload_root, made.data[0][0]["path"], history_folder)
            forbidden = forbidden_in_messages(history_folder, upload_root)
            registered: set[str] = set()
            new_cache_entries(demo, upload_root, registered)
            capfd.readouterr()
            records.take()
            for endpoint in ENDPOINTS:
                tally = tallies[endpoint] = Tally()
                cases = make_cases(endpoint, uploads, base_recipe, morph_recipe)
                timeouts = 0
                endpoint_started = time.monotonic()
                for case in cases:
                    if time.monotonic() - started > TOTAL_BUDGET:
                        notes.append(f"STOPPED: past the {TOTAL_BUDGET:.0f} s budget during {endpoint}")
                        break
                    outcome = call(client, endpoint, case.args)
                    if outcome.kind == "broken" and outcome.message.startswith("timeout"):
                        _stop_everything(service)
                        timeouts += 1
                    if outcome.kind == "success" and endpoint in GENERATING:
                        service.wait_indexed(30)  # its history item is indexed now, not during the next input
                    out, err = capfd.readouterr()
                    problems = judge(outcome, case, forbidden)
                    printed = tracebacks_in(out + "\n" + err) + [s for text in records.take() for s in tracebacks_in(text) or [text.splitlines()[0][:120]]]
                    printed += [s for text in thread_errors for s in tracebacks_in(text)]
                    thread_errors.clear()
                    problems += printed + new_cache_entries(demo, upload_root, registered)
                    tally.tried += 1
                    if problems:
                        detail = outcome.message if outcome.kind != "success" else "success"
                        detail = json.dumps(detail)[:100] if detail is not None else "null"
                        tally.failures.append((case.label, problems, detail))
                    elif outcome.kind == "success":
                        tally.success += 1
                    else:
                        tally.clear += 1
                    tally.seconds = time.monotonic() - endpoint_started
                    if log is not None:
                        log.write(json.dumps({"endpoint": endpoint, "input": case.label, "outcome": outcome.kind, "message": outcome.message,
                                              "problems": problems}, allow_nan=True) + "\n")
                    if timeouts >= 3:
                        notes.append(f"STOPPED {endpoint} after 3 timeouts")
                        break
            # and the app still serves
            after = call(client, "/text_to_image", ["still here", 0, 1, 3.0, 1, False, 0.0, True])
            if after.kind != "success":
                notes.append(f"AFTER THE FUZZ the app no longer serves: {after}")
    finally:
        if log is not None:
            log.close()
        threading.excepthook = previous_hook
        for logger in loggers:
            logger.removeHandler(records)
    summary = report(tallies, time.monotonic() - started, notes, records.warnings)
    with capfd.disabled():
        print("\n" + summary)
    failed = sum(len(t.failures) for t in tallies.values())
    if failed or notes or any(t.tried < PER_ENDPOINT for t in tallies.values()):
        pytest.fail(summary, pytrace=False)
