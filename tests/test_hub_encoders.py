"""Hub adapters on tiny random models saved in open_clip's hub layout and as a transformers CLAP folder."""

from __future__ import annotations

import io
import json
from pathlib import Path

import librosa
import numpy as np
import open_clip
import pytest
import soundfile
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file
from transformers import AutoTokenizer, ClapConfig, ClapFeatureExtractor, ClapModel

from core.encoders.hub import (
    ClapAudioEncoder,
    ClapParts,
    ClapTextEncoder,
    OpenClipImageEncoder,
    OpenClipParts,
    OpenClipTextEncoder,
    load_clap,
    load_open_clip,
    resolve_local_files_only,
)
from core.encoders.text import packaged_minilm_path
from core.media import load_image

ATOL = 1e-5
TEXTS = ["a red square", "the sound of rain on a tin roof, far away", ""]

# A tiny ViT image tower and a one-layer text tower; the default SimpleTokenizer ships its BPE
# vocabulary inside open_clip, so the text tower keeps the full 49408-token vocabulary.
OPEN_CLIP_CFG = {
    "embed_dim": 8,
    "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 16, "layers": 1, "head_width": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1},
}
# Not open_clip's defaults, so the tests see that the saved preprocessing is the one applied.
OPEN_CLIP_PREPROCESS = {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "resize_mode": "squash"}

CLAP_RATE = 48_000
CLAP_WINDOW_S = 2  # feature extractor window: 2 s → 201 frames, within the tiny spec's 256


def tiny_clap_config(vocab_size: int, enable_fusion: bool = False) -> ClapConfig:
    """A CLAP with a one-layer text tower and a 4-stage Swin audio tower of width 8 → 64."""
    text = dict(
        vocab_size=vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=64, pad_token_id=0,
    )  # pad_token_id matches the BERT tokenizer's [PAD]
    audio = dict(
        num_mel_bins=16, spec_size=64, window_size=4, patch_size=2, patch_stride=2,
        patch_embeds_hidden_size=8, hidden_size=64, depths=[1, 1, 1, 1], num_attention_heads=[2, 2, 2, 2],
        enable_fusion=enable_fusion,
    )  # spec_size / num_mel_bins = freq_ratio 4: a (256 frames, 16 mels) spectrogram fits
    return ClapConfig(text_config=text, audio_config=audio, projection_dim=8)


@pytest.fixture(scope="module")
def tiny_open_clip(tmp_path_factory) -> tuple[Path, torch.nn.Module]:
    """A seeded random open_clip CLIP saved as open_clip_config.json + open_clip_model.safetensors."""
    torch.manual_seed(0)
    model = open_clip.CLIP(**OPEN_CLIP_CFG).eval()
    folder = tmp_path_factory.mktemp("open_clip")
    save_file(model.state_dict(), str(folder / "open_clip_model.safetensors"))
    config = {"model_cfg": OPEN_CLIP_CFG, "preprocess_cfg": OPEN_CLIP_PREPROCESS}
    (folder / "open_clip_config.json").write_text(json.dumps(config))
    return folder, model


@pytest.fixture(scope="module")
def open_clip_parts(tiny_open_clip) -> OpenClipParts:
    return load_open_clip(str(tiny_open_clip[0]))


@pytest.fixture(scope="module")
def tiny_clap(tmp_path_factory) -> tuple[Path, ClapModel]:
    """A seeded random CLAP saved with the packaged MiniLM tokenizer and a matching feature extractor."""
    tokenizer = AutoTokenizer.from_pretrained(packaged_minilm_path(), local_files_only=True)
    torch.manual_seed(0)
    model = ClapModel(tiny_clap_config(len(tokenizer))).eval()
    extractor = ClapFeatureExtractor(
        feature_size=16, sampling_rate=CLAP_RATE, max_length_s=CLAP_WINDOW_S, truncation="rand_trunc"
    )
    folder = tmp_path_factory.mktemp("clap")
    for part in (model, tokenizer, extractor):
        part.save_pretrained(folder)
    return folder, model


@pytest.fixture(scope="module")
def clap_parts(tiny_clap) -> ClapParts:
    return load_clap(str(tiny_clap[0]))


def images() -> list:
    """Four images of different sizes, modes and kinds of input."""
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8))
    rgba = Image.fromarray(rng.integers(0, 256, (33, 20, 4), dtype=np.uint8), mode="RGBA")
    grey = Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8), mode="L")
    buffer = io.BytesIO()
    rgb.rotate(90, expand=True).save(buffer, format="PNG")
    return [rgb, rgba, grey, buffer.getvalue()]


def tone(seconds: float, rate: int = CLAP_RATE, frequency: float = 440.0) -> np.ndarray:
    """A float32 sine with a little seeded noise, ``seconds`` long at ``rate``."""
    t = np.arange(int(seconds * rate)) / rate
    noise = np.random.default_rng(int(frequency)).normal(0, 0.05, t.shape)
    return (0.5 * np.sin(2 * np.pi * frequency * t) + noise).astype(np.float32)


def assert_unit_rows(embeddings: torch.Tensor, batch: int, dim: int) -> None:
    assert embeddings.shape == (batch, dim)
    assert embeddings.dtype == torch.float32
    torch.testing.assert_close(embeddings.norm(dim=-1), torch.ones(batch), atol=ATOL, rtol=0)


# --- open_clip -------------------------------------------------------------------------


def test_open_clip_text_matches_model(tiny_open_clip):
    folder, model = tiny_open_clip
    encoder = OpenClipTextEncoder(str(folder))
    embeddings = encoder.encode(TEXTS)  # (3, 8)
    assert encoder.embed_dim == 8
    assert_unit_rows(embeddings, 3, 8)
    with torch.no_grad():
        tokens = open_clip.tokenize(TEXTS, context_length=16)  # (3, 16)
        expected = model.encode_text(tokens, normalize=True)
    torch.testing.assert_close(embeddings, expected, atol=ATOL, rtol=0)


def test_open_clip_image_uses_saved_preprocessing(tiny_open_clip):
    folder, model = tiny_open_clip
    encoder = OpenClipImageEncoder(str(folder))
    embeddings = encoder.encode(images())  # (4, 8)
    assert_unit_rows(embeddings, 4, 8)
    transform = open_clip.image_transform(
        32, is_train=False, mean=(0.5,) * 3, std=(0.25,) * 3, resize_mode="squash"
    )
    with torch.no_grad():
        pixels = torch.stack([transform(load_image(image)) for image in images()])  # (4, 3, 32, 32)
        expected = model.encode_image(pixels, normalize=True)
    torch.testing.assert_close(embeddings, expected, atol=ATOL, rtol=0)


def test_open_clip_batch_equals_single(open_clip_parts, tmp_path):
    text_encoder = OpenClipTextEncoder(open_clip_parts)
    image_encoder = OpenClipImageEncoder(open_clip_parts)
    assert text_encoder.model is image_encoder.model  # one model shared by both adapters
    batch = text_encoder.encode(TEXTS)
    for i, text in enumerate(TEXTS):
        torch.testing.assert_close(text_encoder.encode(text), batch[i : i + 1], atol=ATOL, rtol=0)
    path = tmp_path / "image.png"
    images()[0].save(path)
    inputs = [*images(), path, str(path)]
    batch = image_encoder.encode(inputs)
    for i, image in enumerate(inputs):
        torch.testing.assert_close(image_encoder.encode(image), batch[i : i + 1], atol=ATOL, rtol=0)
    torch.testing.assert_close(batch[-1], batch[0], atol=ATOL, rtol=0)  # the path holds image 0


def test_open_clip_bad_inputs_raise(open_clip_parts, tmp_path):
    text_encoder = OpenClipTextEncoder(open_clip_parts)
    image_encoder = OpenClipImageEncoder(open_clip_parts)
    with pytest.raises(ValueError, match="strings"):
        text_encoder.encode(["fine", 3])
    with pytest.raises(ValueError, match="empty"):
        text_encoder.encode([])
    with pytest.raises(ValueError, match="PIL images, paths or bytes"):
        image_encoder.encode([np.zeros((8, 8, 3))])
    with pytest.raises(ValueError, match="not found"):
        image_encoder.encode(str(tmp_path / "missing.png"))
    with pytest.raises(ValueError, match="open_clip_config.json"):
        OpenClipTextEncoder(str(tmp_path))
    with pytest.raises(ValueError, match="Hub repo id"):
        OpenClipImageEncoder(str(tmp_path / "no" / "such" / "folder"))


# --- transformers CLAP -------------------------------------------------------------------


def test_clap_text_matches_model(tiny_clap):
    folder, model = tiny_clap
    encoder = ClapTextEncoder(str(folder))
    embeddings = encoder.encode(TEXTS)  # (3, 8)
    assert encoder.embed_dim == 8
    assert_unit_rows(embeddings, 3, 8)
    tokens = AutoTokenizer.from_pretrained(str(folder))(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        output = model.get_text_features(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
    expected = F.normalize(output.pooler_output, dim=-1)  # (3, 8)
    torch.testing.assert_close(embeddings, expected, atol=ATOL, rtol=0)


def test_clap_audio_matches_model(tiny_clap):
    folder, model = tiny_clap
    encoder = ClapAudioEncoder(str(folder))
    sounds = [tone(1.0), tone(0.3, frequency=880.0)]
    embeddings = encoder.encode([(CLAP_RATE, sound) for sound in sounds])  # (2, 8)
    assert encoder.embed_dim == 8
    assert_unit_rows(embeddings, 2, 8)
    features = ClapFeatureExtractor.from_pretrained(str(folder))(
        sounds, sampling_rate=CLAP_RATE, return_tensors="pt"
    )
    with torch.no_grad():
        output = model.get_audio_features(
            input_features=features["input_features"].float(), is_longer=features["is_longer"]
        )
    expected = F.normalize(output.pooler_output, dim=-1)  # (2, 8)
    torch.testing.assert_close(embeddings, expected, atol=ATOL, rtol=0)


def test_clap_batch_equals_single(clap_parts, tmp_path):
    text_encoder = ClapTextEncoder(clap_parts)
    audio_encoder = ClapAudioEncoder(clap_parts)
    assert text_encoder.model is audio_encoder.model
    batch = text_encoder.encode(TEXTS)
    for i, text in enumerate(TEXTS):
        torch.testing.assert_close(text_encoder.encode(text), batch[i : i + 1], atol=ATOL, rtol=0)
    path = tmp_path / "tone.wav"
    soundfile.write(path, tone(0.5, rate=22_050), 22_050, subtype="FLOAT")
    sounds = [(CLAP_RATE, tone(1.0)), (16_000, tone(0.7, rate=16_000, frequency=300.0)), path]
    batch = audio_encoder.encode(sounds)
    for i, sound in enumerate(sounds):
        torch.testing.assert_close(audio_encoder.encode(sound), batch[i : i + 1], atol=ATOL, rtol=0)


def test_clap_audio_resamples_to_48k(clap_parts):
    encoder = ClapAudioEncoder(clap_parts)
    sound = tone(0.8, rate=16_000)
    upsampled = librosa.resample(sound, orig_sr=16_000, target_sr=CLAP_RATE, res_type="soxr_hq")
    torch.testing.assert_close(
        encoder.encode((16_000, sound)), encoder.encode((CLAP_RATE, upsampled)), atol=ATOL, rtol=0
    )


def test_clap_long_sound_keeps_first_window(clap_parts):
    encoder = ClapAudioEncoder(clap_parts)
    long_sound = tone(3.0, frequency=500.0)  # longer than the 2 s window
    first = encoder.encode((CLAP_RATE, long_sound))
    torch.testing.assert_close(encoder.encode((CLAP_RATE, long_sound)), first, atol=0, rtol=0)
    window = long_sound[: CLAP_RATE * CLAP_WINDOW_S]
    torch.testing.assert_close(encoder.encode((CLAP_RATE, window)), first, atol=ATOL, rtol=0)


def test_clap_fused_model_is_deterministic(clap_parts):
    # The "fusion" extractor marks one random sound of a batch as longer; the adapter must not.
    config = tiny_clap_config(len(clap_parts.tokenizer), enable_fusion=True)
    torch.manual_seed(0)
    model = ClapModel(config).eval()
    extractor = ClapFeatureExtractor(
        feature_size=16, sampling_rate=CLAP_RATE, max_length_s=CLAP_WINDOW_S, truncation="fusion"
    )
    encoder = ClapAudioEncoder(ClapParts(model, clap_parts.tokenizer, extractor))
    sounds = [(CLAP_RATE, tone(1.0)), (CLAP_RATE, tone(0.5, frequency=300.0))]
    batch = encoder.encode(sounds)  # (2, 8)
    assert_unit_rows(batch, 2, 8)
    for i, sound in enumerate(sounds):
        torch.testing.assert_close(encoder.encode(sound), batch[i : i + 1], atol=ATOL, rtol=0)


def test_clap_bad_inputs_raise(clap_parts, tmp_path):
    text_encoder = ClapTextEncoder(clap_parts)
    audio_encoder = ClapAudioEncoder(clap_parts)
    with pytest.raises(ValueError, match="strings"):
        text_encoder.encode([None])
    with pytest.raises(ValueError, match="silent"):
        audio_encoder.encode((CLAP_RATE, np.zeros(CLAP_RATE, dtype=np.float32)))
    with pytest.raises(ValueError, match="not found"):
        audio_encoder.encode(str(tmp_path / "missing.wav"))
    with pytest.raises(ValueError, match="path or a"):
        audio_encoder.encode([42])


# --- shared semantics --------------------------------------------------------------------


def test_is_single(open_clip_parts, clap_parts):
    pair = (CLAP_RATE, tone(0.1))
    assert OpenClipTextEncoder(open_clip_parts).is_single("one text")
    assert not ClapTextEncoder(clap_parts).is_single(["a", "b"])
    image_encoder = OpenClipImageEncoder(open_clip_parts)
    assert all(image_encoder.is_single(image) for image in images())
    assert image_encoder.is_single(Path("image.png"))
    assert not image_encoder.is_single(images())
    audio_encoder = ClapAudioEncoder(clap_parts)
    assert audio_encoder.is_single(pair)
    assert audio_encoder.is_single("sound.wav")
    assert not audio_encoder.is_single([pair, pair])
    assert not audio_encoder.is_single(("a.wav", "b.wav"))


def test_local_files_only(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert resolve_local_files_only(str(tmp_path), None)
    assert not resolve_local_files_only("laion/clap-htsat-unfused", None)
    assert not resolve_local_files_only(str(tmp_path), False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_local_files_only("laion/clap-htsat-unfused", None)


def test_adapters_save_a_reference_not_weights(tiny_open_clip, open_clip_parts, tmp_path):
    encoder = OpenClipTextEncoder(open_clip_parts)
    encoder.save_pretrained(tmp_path)
    assert (tmp_path / "config.json").is_file() and not list(tmp_path.glob("*.safetensors"))
    reloaded = OpenClipTextEncoder.from_pretrained(tmp_path)
    assert reloaded.config.name_or_path == str(tiny_open_clip[0])
    torch.testing.assert_close(reloaded.encode(["a red bird"]), encoder.encode(["a red bird"]))
