"""Loading and checking user media: every image mode and sound format, and loud errors for bad input."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
import soundfile
from PIL import Image, ImageFile

from core import media
from core.media import load_audio, load_image, to_mono_float

WHITE, RED, BLACK = (255, 255, 255), (255, 0, 0), (0, 0, 0)


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width x height`` greyscale pixels but holds almost no data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 16))
        + chunk(b"IEND", b"")
    )


# --- images ---------------------------------------------------------------------------------


def test_rgba_composites_on_white():
    image = Image.new("RGBA", (3, 1), (255, 0, 0, 0))  # fully transparent red
    image.putpixel((1, 0), (255, 0, 0, 255))
    image.putpixel((2, 0), (255, 0, 0, 128))
    rgb = load_image(image)
    assert rgb.mode == "RGB" and rgb.size == (3, 1)
    assert rgb.getpixel((0, 0)) == WHITE
    assert rgb.getpixel((1, 0)) == RED
    red, green, blue = rgb.getpixel((2, 0))  # half red over white
    assert red == 255 and 120 <= green <= 135 and green == blue


def test_la_composites_on_white():
    image = Image.new("LA", (2, 1), (0, 0))  # transparent black
    image.putpixel((1, 0), (0, 255))
    rgb = load_image(image)
    assert rgb.mode == "RGB"
    assert rgb.getpixel((0, 0)) == WHITE
    assert rgb.getpixel((1, 0)) == BLACK


def test_greyscale_expands_to_rgb():
    rgb = load_image(Image.new("L", (4, 3), 100))
    assert rgb.mode == "RGB" and rgb.size == (4, 3)
    assert rgb.getpixel((2, 1)) == (100, 100, 100)


def test_palette_transparency_composites_on_white():
    image = Image.new("P", (2, 1), 0)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0, 0, 0] * 254)
    image.putpixel((1, 0), 1)
    image.info["transparency"] = 0  # palette entry 0 (black) is transparent
    reloaded = Image.open(io.BytesIO(png_bytes(image)))  # as a browser upload would arrive
    assert reloaded.mode == "P" and "transparency" in reloaded.info
    rgb = load_image(reloaded)
    assert rgb.getpixel((0, 0)) == WHITE
    assert rgb.getpixel((1, 0)) == RED


def test_16_bit_greyscale_is_rescaled_not_clipped():
    levels = np.array([[0, 1000, 30000, 65535]], dtype=np.uint16)
    image = Image.fromarray(levels)
    assert image.mode.startswith("I;16")
    rgb = np.asarray(load_image(image))
    grey = rgb[0, :, 0]
    assert grey[0] == 0 and grey[-1] == 255
    assert np.all(np.diff(grey.astype(int)) > 0)  # the order of levels survives
    assert np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])


def test_16_bit_png_file(tmp_path):
    path = tmp_path / "depth.png"
    Image.fromarray(np.array([[0, 65535]], dtype=np.uint16)).save(path)
    rgb = load_image(path)
    assert rgb.mode == "RGB"
    assert rgb.getpixel((0, 0)) == BLACK and rgb.getpixel((1, 0)) == WHITE


def test_cmyk_converts_to_rgb():
    image = Image.new("CMYK", (2, 1), (0, 0, 0, 0))  # no ink: white
    image.putpixel((1, 0), (0, 255, 255, 0))  # magenta + yellow: red
    rgb = load_image(image)
    assert rgb.mode == "RGB"
    assert rgb.getpixel((0, 0)) == WHITE
    assert rgb.getpixel((1, 0)) == RED


@pytest.mark.parametrize("as_string", [False, True])
def test_path(tmp_path, as_string):
    path = tmp_path / "red.png"
    Image.new("RGBA", (5, 4), (255, 0, 0, 255)).save(path)
    rgb = load_image(str(path) if as_string else path)
    assert rgb.mode == "RGB" and rgb.size == (5, 4)
    assert rgb.getpixel((0, 0)) == RED


def test_encoded_png_bytes():
    rgb = load_image(png_bytes(Image.new("L", (6, 2), 0)))
    assert rgb.mode == "RGB" and rgb.size == (6, 2)
    assert rgb.getpixel((5, 1)) == BLACK


def test_corrupt_bytes_raise():
    with pytest.raises(ValueError, match="Could not read .* as an image"):
        load_image(b"\x89PNG this is not really a picture")


def test_truncated_png_raises():
    data = png_bytes(Image.effect_noise((64, 64), 50))
    with pytest.raises(ValueError, match="as an image"):
        load_image(data[: len(data) // 2])


def test_text_file_raises(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("just some words")
    with pytest.raises(ValueError, match="notes.png.*PNG, JPEG"):
        load_image(path)


def test_missing_path_raises(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        load_image(tmp_path / "nowhere.png")


def test_image_over_the_pixel_limit_is_refused_before_decoding(tmp_path, monkeypatch):
    monkeypatch.setattr(media, "MAX_IMAGE_PIXELS", 100)
    path = tmp_path / "big.png"
    Image.new("RGB", (20, 20), RED).save(path)

    def no_decoding(self):
        raise AssertionError("the pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(ValueError, match="too large.*20x20.*Downscale"):
        load_image(path)


def test_pil_image_over_the_pixel_limit_is_refused(monkeypatch):
    monkeypatch.setattr(media, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(ValueError, match="too large"):
        load_image(Image.new("RGB", (11, 10)))


def test_header_over_the_default_limit_is_refused():
    with pytest.raises(ValueError, match="too large"):
        load_image(png_header_only(9000, 8000))  # 72 Mpx > 64 Mpx


def test_header_far_over_the_limit_is_a_value_error():
    with pytest.raises(ValueError, match="too large"):
        load_image(png_header_only(20000, 10000))  # 200 Mpx


# --- sounds ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("samples", "expected"),
    [
        (np.array([-32768, 0, 16384, 32767], dtype=np.int16), [-1.0, 0.0, 0.5, 32767 / 32768]),
        (np.array([0, 64, 128, 255], dtype=np.uint8), [-1.0, -0.5, 0.0, 127 / 128]),
        (np.array([-(2**31), 0, 2**30, 2**31 - 1], dtype=np.int32), [-1.0, 0.0, 0.5, 1.0]),
        (np.array([-1.0, -0.25, 0.0, 0.75], dtype=np.float64), [-1.0, -0.25, 0.0, 0.75]),
    ],
    ids=["int16", "uint8", "int32", "float64"],
)
def test_samples_scale_to_unit_range(samples, expected):
    mono = to_mono_float(samples)
    assert mono.dtype == np.float32
    np.testing.assert_allclose(mono, expected, atol=1e-6)
    rate, loaded = load_audio((8000, samples))
    assert rate == 8000 and loaded.dtype == np.float32
    np.testing.assert_allclose(loaded, expected, atol=1e-6)


@pytest.mark.parametrize("channels_first", [False, True], ids=["(N, 2)", "(2, N)"])
def test_stereo_channels_are_averaged(channels_first):
    left, right = np.full(100, 0.5), np.full(100, -0.1)
    stereo = np.stack([left, right], axis=0 if channels_first else 1)
    rate, mono = load_audio((16000, stereo))
    assert rate == 16000 and mono.shape == (100,)
    np.testing.assert_allclose(mono, 0.2, atol=1e-6)


def test_wav_file(tmp_path):
    path = tmp_path / "tone.wav"
    left = np.round(8000 * np.sin(np.linspace(0, 40, 1600))).astype(np.int16)
    soundfile.write(path, np.stack([left, left // 2], axis=1), 16000, subtype="PCM_16")
    rate, mono = load_audio(path)
    assert rate == 16000 and mono.shape == (1600,) and mono.dtype == np.float32
    np.testing.assert_allclose(mono, (left + left // 2) / 2 / 32768, atol=1e-4)
    assert load_audio(str(path))[1].shape == (1600,)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_raise(bad):
    samples = np.full(1000, 0.1)
    samples[10] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        load_audio((22050, samples))


@pytest.mark.parametrize(
    "samples", [np.zeros(1000), np.full(1000, 1e-6), np.zeros(1000, dtype=np.int16)], ids=["zeros", "-120dB", "int16"]
)
def test_silence_raises(samples):
    with pytest.raises(ValueError, match="silent"):
        load_audio((22050, samples))


def test_empty_raises():
    with pytest.raises(ValueError, match="empty"):
        load_audio((22050, np.zeros(0, dtype=np.float32)))


def test_empty_stereo_says_empty():
    with pytest.raises(ValueError, match="empty"):
        load_audio((22050, np.zeros((0, 2), dtype=np.float32)))


@pytest.mark.parametrize("rate", [0, 999, 500_000, -22050, 22050.0, "22050", None])
def test_bad_sample_rate_raises(rate):
    with pytest.raises(ValueError, match="Sample rate"):
        load_audio((rate, np.full(1000, 0.1)))


def test_three_axes_raise():
    with pytest.raises(ValueError, match="1 or 2 axes"):
        load_audio((22050, np.full((100, 2, 2), 0.1)))


def test_non_numeric_samples_raise():
    with pytest.raises(ValueError, match="numbers"):
        load_audio((22050, np.array(["a", "b"])))


def test_not_a_pair_raises():
    with pytest.raises(ValueError, match="path or a"):
        load_audio([22050, np.full(100, 0.1)])


def test_too_long_raises(monkeypatch):
    monkeypatch.setattr(media, "MAX_AUDIO_SECONDS", 1.0)
    assert load_audio((1000, np.full(1000, 0.1)))[1].shape == (1000,)  # exactly at the limit
    with pytest.raises(ValueError, match="2 s long.*limit is 1 s"):
        load_audio((1000, np.full(2000, 0.1)))


def test_non_audio_file_raises(tmp_path):
    path = tmp_path / "song.wav"
    path.write_text("not a sound at all")
    with pytest.raises(ValueError, match="song.wav.*as a sound.*WAV"):
        load_audio(path)


def test_missing_sound_file_raises(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        load_audio(tmp_path / "nowhere.wav")
