"""Recipes inside PNG and WAV files, the bundled examples, and the page's small pictures."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import soundfile
from PIL import Image

from core.data.manifest import MANIFEST_NAME
from studio.examples import CORPUS, EXAMPLES, load_examples, make_examples
from studio.media import caption_card, join_sounds, waveform_thumbnail
from studio.recipes import png_with_recipe, read_recipe, riff_chunks, wav_with_recipe

RECIPE = {"kind": "generate", "output": "image", "inputs": {"text": "un café ☕"}, "seed": 3, "steps": 2}


def test_png_keeps_pixels_and_recipe(tmp_path):
    picture = Image.fromarray(np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8))
    path = tmp_path / "out.png"
    path.write_bytes(png_with_recipe(picture, RECIPE))
    assert read_recipe(path) == RECIPE
    with Image.open(path) as reopened:
        assert reopened.tobytes() == picture.tobytes()


def test_wav_keeps_samples_and_recipe_in_a_list_info_chunk(tmp_path):
    wave = (0.5 * np.sin(np.arange(2205) / 7)).astype(np.float32)
    path = tmp_path / "out.wav"
    path.write_bytes(wav_with_recipe(22050, wave, RECIPE))
    assert read_recipe(path) == RECIPE
    chunks = dict(riff_chunks(path.read_bytes()))
    assert chunks[b"LIST"][:4] == b"INFO"
    samples, rate = soundfile.read(path, dtype="float32")  # other readers still see plain audio
    assert rate == 22050 and np.abs(samples - wave).max() < 1e-4


def test_files_without_a_recipe_and_other_formats(tmp_path):
    plain = tmp_path / "plain.png"
    Image.new("RGB", (4, 4)).save(plain)
    assert read_recipe(plain) is None
    plain_wav = tmp_path / "plain.wav"
    soundfile.write(plain_wav, np.ones(100, dtype=np.float32) * 0.1, 8000)
    assert read_recipe(plain_wav) is None
    jpeg = tmp_path / "photo.jpg"
    Image.new("RGB", (4, 4)).save(jpeg)
    with pytest.raises(ValueError, match="neither a PNG nor a WAV"):
        read_recipe(jpeg)
    with pytest.raises(ValueError, match="not found"):
        read_recipe(tmp_path / "missing.png")


def test_a_forged_recipe_chunk_that_is_not_json_is_ignored(tmp_path):
    buffer = io.BytesIO()
    soundfile.write(buffer, np.ones(10, dtype=np.float32) * 0.1, 8000, format="WAV")
    from studio.recipes import _append_chunk, _chunk

    forged = _append_chunk(buffer.getvalue(), _chunk(b"LIST", b"INFO" + _chunk(b"ICMT", b"{not json")))
    (tmp_path / "forged.wav").write_bytes(forged)
    assert read_recipe(tmp_path / "forged.wav") is None


def test_bundled_examples_are_small_licensed_and_copy_again_from_the_corpus(tmp_path):
    bundled = load_examples()
    assert len(bundled) >= 6
    entries = json.loads((EXAMPLES / "examples.json").read_text())
    assert all(entry["licence"] and entry["origin"] and entry["source"] == "tuxpaint" for entry in entries)
    for example in bundled:
        assert Image.open(example.image).size == (128, 128)
        info = soundfile.info(str(example.audio))
        assert info.channels == 1 and info.duration <= 2.0 and example.image.stat().st_size + example.audio.stat().st_size < 110_000
    assert sum(p.stat().st_size for p in EXAMPLES.iterdir()) < 750_000  # 128-px pictures, 2-s sounds
    if not (CORPUS / MANIFEST_NAME).is_file():
        pytest.skip(f"no corpus in {CORPUS} to copy from (build it with studio-data)")
    remade = make_examples(tmp_path)
    for old, new in zip(bundled, remade, strict=True):
        assert old.caption == new.caption
        assert old.image.read_bytes() == new.image.read_bytes() and old.audio.read_bytes() == new.audio.read_bytes()


def test_thumbnails_and_joined_sounds():
    assert waveform_thumbnail(np.sin(np.arange(5000) / 9)).size == (128, 128)
    assert waveform_thumbnail(np.zeros(0)).size == (128, 128)
    assert caption_card("a red bird on a branch").mode == "RGB"
    rate, joined = join_sounds([(100, np.ones(10)), (100, np.ones(5))], gap_seconds=0.1)
    assert rate == 100 and joined.shape == (25,) and joined[10:20].sum() == 0
    with pytest.raises(ValueError, match="one sample rate"):
        join_sounds([(100, np.ones(3)), (200, np.ones(3))])
