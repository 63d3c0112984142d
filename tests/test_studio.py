"""The Studio facade on the real embedded preset: weighted fusion of any inputs, loud errors, save/load."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

import core
from core.studio import Encoding

pytestmark = pytest.mark.slow  # every test here uses the real embedded studio

RATE = 22050


def tone(frequency: float = 440.0, seconds: float = 1.0, rate: int = RATE) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


@pytest.fixture(scope="module")
def china(sklearn_images):
    return sklearn_images / "china.jpg"


def assert_shares_are_a_split(encoding: Encoding, inputs: set[str]) -> None:
    assert set(encoding.shares) == inputs
    for share in [*encoding.shares.values(), encoding.prior_share]:
        assert 0.0 <= share <= 1.0
    assert sum(encoding.shares.values()) + encoding.prior_share == pytest.approx(1.0, abs=1e-4)


# --- loading --------------------------------------------------------------------------------


def test_load_studio_offline(studio):
    assert set(studio.encoders) == {"text", "image", "audio"}
    assert {m: e.embed_dim for m, e in studio.encoders.items()} == {"text": 384, "image": 1280, "audio": 384}
    assert studio.preset == "embedded"
    assert studio.device.type == "cpu"


def test_the_shipped_preset_is_trained_and_an_untrained_one_says_so(studio, tiny_studio):
    assert studio.is_trained is True and studio.weights_version.startswith("trained-")
    assert all(p.dtype == torch.float32 for p in studio.pipeline.image_unet.parameters())  # fp16 on disk
    assert tiny_studio.is_trained is False


def test_load_time_is_the_time_load_studio_took():
    import time

    before = time.perf_counter()
    loaded = core.load_studio("embedded")
    wall = time.perf_counter() - before
    assert 0.0 < loaded.load_seconds <= wall  # seconds, measured inside the call
    assert math.isnan(core.Studio(loaded.pipeline).load_seconds)  # built, not loaded: no load time


# --- encoding -------------------------------------------------------------------------------


def test_text_only(studio):
    encoding = studio.encode(text="a cat on a roof")
    assert encoding.mu.shape == encoding.logvar.shape == (64,)
    assert np.isfinite(encoding.mu).all() and np.isfinite(encoding.logvar).all()
    assert encoding.weights == {"text": 1.0}
    assert_shares_are_a_split(encoding, {"text"})


@pytest.mark.parametrize("as_pil", [True, False], ids=["PIL", "path"])
def test_image_only(studio, china, as_pil):
    image = Image.open(china) if as_pil else str(china)
    encoding = studio.encode(image=image)
    assert_shares_are_a_split(encoding, {"image"})


def test_image_pil_and_path_agree(studio, china):
    np.testing.assert_allclose(studio.encode(image=Image.open(china)).mu, studio.encode(image=china).mu, atol=1e-6)


def test_audio_only(studio):
    encoding = studio.encode(audio=(44100, np.stack([tone(rate=44100)] * 2, axis=1)))
    assert_shares_are_a_split(encoding, {"audio"})


def test_all_three_with_weights(studio, china):
    weights = {"text": 2.0, "image": 0.5, "audio": 1}
    encoding = studio.encode(text="a palace at dusk", image=china, audio=(RATE, tone()), weights=weights)
    assert_shares_are_a_split(encoding, {"text", "image", "audio"})
    assert encoding.weights == weights
    assert sum(encoding.relative_shares.values()) == pytest.approx(1.0, abs=1e-6)


def test_more_weight_means_more_share(studio, china):
    low = studio.encode(text="a palace", image=china, weights={"text": 1.0})
    high = studio.encode(text="a palace", image=china, weights={"text": 3.0})
    assert high.shares["text"] > low.shares["text"]
    assert high.shares["image"] < low.shares["image"]


def test_weight_zero_equals_leaving_the_input_out(studio, china):
    without = studio.encode(text="a palace", audio=(RATE, tone()))
    zero = studio.encode(text="a palace", image=china, audio=(RATE, tone()), weights={"image": 0})
    np.testing.assert_array_equal(zero.mu, without.mu)
    np.testing.assert_array_equal(zero.logvar, without.logvar)
    assert zero.shares["image"] == 0.0


def test_weights_of_missing_inputs_are_ignored(studio):
    plain = studio.encode(text="a palace")
    weighted = studio.encode(text="a palace", weights={"image": 5.0, "audio": 0.0})
    np.testing.assert_array_equal(weighted.mu, plain.mu)
    assert weighted.weights == {"text": 1.0}


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({}, "at least one input"),
        ({"weights": {"text": 1.0}}, "at least one input"),
        ({"text": ""}, "empty"),
        ({"text": "   \n\t"}, "empty"),
        ({"text": 42}, "string"),
        ({"text": "a cat", "weights": {"text": -1.0}}, "negative"),
        ({"text": "a cat", "weights": {"text": float("nan")}}, "finite"),
        ({"text": "a cat", "weights": {"text": float("inf")}}, "finite"),
        ({"text": "a cat", "weights": {"text": True}}, "finite number"),
        ({"text": "a cat", "weights": {"text": "1"}}, "finite number"),
        ({"text": "a cat", "weights": {"text": 0}}, "All weights are zero"),
        ({"text": "a cat", "audio": (RATE, tone()), "weights": {"text": 0, "audio": 0.0}}, "All weights are zero"),
        ({"text": "a cat", "weights": {"colour": 1.0}}, "Unknown weight names"),
        ({"audio": (RATE, np.zeros(RATE, dtype=np.float32))}, "silent"),
        ({"audio": (RATE, np.full(RATE, np.nan, dtype=np.float32))}, "NaN"),
        ({"image": b"definitely not an image"}, "as an image"),
    ],
    ids=[
        "no-input", "weights-only", "empty-text", "whitespace-text", "non-string-text", "negative-weight",
        "nan-weight", "inf-weight", "bool-weight", "string-weight", "only-weight-zero", "all-weights-zero",
        "unknown-weight", "silent-audio", "nan-audio", "corrupt-image",
    ],
)
def test_bad_input_raises(studio, inputs, message):
    with pytest.raises(ValueError, match=message):
        studio.encode(**inputs)


def test_unknown_preset_raises():
    with pytest.raises(ValueError, match="neither a preset"):
        core.load_studio("no-such-preset")


# --- save and load --------------------------------------------------------------------------


def test_save_and_load_round_trip(studio, china, tmp_path):
    studio.save_pretrained(tmp_path)
    assert (tmp_path / "model_index.json").is_file()
    # untrained parts are saved as their config alone and rebuilt from the same seed
    assert (tmp_path / "joint" / "config.json").is_file()
    assert (tmp_path / "audio_encoder" / "config.json").is_file()
    assert not list(tmp_path.rglob("*.bin")) and not list(tmp_path.rglob("*.pt"))

    reloaded = core.load_studio(tmp_path)
    assert reloaded.weights_version == studio.weights_version
    inputs = {"text": "a palace", "image": china, "audio": (RATE, tone()), "weights": {"audio": 2.0}}
    expected, actual = studio.encode(**inputs), reloaded.encode(**inputs)
    # Equal up to float rounding: safetensors hands back 8-byte-aligned weights, so the CPU matmul
    # may take another SIMD path than for freshly allocated ones (differences of ~1e-7 seen).
    np.testing.assert_allclose(actual.mu, expected.mu, atol=1e-5, rtol=0)
    np.testing.assert_allclose(actual.logvar, expected.logvar, atol=1e-5, rtol=0)
    assert actual.shares == pytest.approx(expected.shares, abs=1e-6)


def test_trained_and_untrained_studios_keep_their_state_through_a_round_trip(studio, tiny_studio, tmp_path):
    studio.save_pretrained(tmp_path / "trained")
    assert core.load_studio(tmp_path / "trained").is_trained is True
    tiny_studio.save_pretrained(tmp_path / "untrained")
    assert core.load_studio(tmp_path / "untrained").is_trained is False


def test_embedded_preset_fits_the_shipped_size_cap(studio):
    """Trained parts ship as fp16 (the image bank's codes as int8): their parameters and buffers,
    plus the caption tokenizer, stay under 60 MB (60e6 bytes, not MiB)."""
    learned = [c for name, c in studio.pipeline.parts.items() if hasattr(c, "parameters") and name not in ("text_encoder", "image_encoder")]
    tensors = sum(p.numel() * (2 if p.is_floating_point() else p.element_size()) for c in learned for p in [*c.parameters(), *c.buffers()])
    tokenizer = sum(f.stat().st_size for f in (core.studio.ASSETS / "embedded" / "caption_decoder" / "tokenizer").iterdir())
    assert tensors + tokenizer < 60e6
    shipped = sum(f.stat().st_size for f in (core.studio.ASSETS / "embedded").rglob("*.safetensors"))
    assert shipped + tokenizer < 60e6  # the files themselves, headers included


def test_shipped_files_fit_a_space_without_lfs():
    """A Space takes files under 10 MB without LFS; the larger parts ship in shards."""
    folder = core.studio.ASSETS / "embedded"
    over = sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file() and path.stat().st_size >= 10_000_000)
    assert over == []
    assert list((folder / "image_unet").glob("*-of-*.safetensors")) and list((folder / "audio_unet").glob("*-of-*.safetensors"))


def test_the_preset_folder_carries_a_hub_model_card_and_the_repository_its_licence():
    from huggingface_hub import ModelCard

    card = ModelCard.load(core.studio.ASSETS / "embedded" / "README.md")
    assert card.data.library_name == "diffusers" and card.data.pipeline_tag == "text-to-image" and card.data.license
    assert "## Data" in card.text and "## Licence" in card.text
    root = core.studio.ASSETS.parent
    assert (root / "LICENSE").read_text().lstrip().startswith("Apache License")
    assert 'license = "Apache-2.0"' in (root / "pyproject.toml").read_text()


def test_model_calls_from_several_threads_run_on_one_model_thread_in_turn(tiny_studio, monkeypatch):
    """Threads' generate, encode and add_to_gallery run on the one model thread, never two at once;
    errors come back to the caller and the caller's grad mode and context variables go along."""
    import contextvars
    import threading
    import time

    import torch

    from core.studio import MODEL_THREAD

    pipeline = type(tiny_studio.pipeline)
    inside, overlaps, threads_seen, grad_modes, markers = [], [], set(), [], []
    marker = contextvars.ContextVar("marker", default=None)  # as a web request's progress tracker
    original_fuse = pipeline.fuse

    def watched_fuse(self, *args, **kwargs):
        if inside:
            overlaps.append(True)
        inside.append(True)
        threads_seen.add(threading.get_ident())
        grad_modes.append(torch.is_grad_enabled())
        markers.append(marker.get())
        time.sleep(0.05)  # a slow model call: another thread would enter now if it could
        try:
            return original_fuse(self, *args, **kwargs)
        finally:
            inside.pop()

    monkeypatch.setattr(pipeline, "fuse", watched_fuse)
    calls = [
        lambda: tiny_studio.generate("image", text="a red circle", steps=1),
        lambda: tiny_studio.add_to_gallery("circle", text="a red circle"),
        lambda: tiny_studio.encode(text="a blue square"),
        lambda: tiny_studio.generate("image", text="a green circle", steps=1),
    ]
    barrier, errors = threading.Barrier(len(calls)), []

    def client(call):
        barrier.wait()
        try:
            call()
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    clients = [threading.Thread(target=client, args=(call,)) for call in calls]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join()
    assert not errors and not overlaps and len(threads_seen) == 1 and threading.get_ident() not in threads_seen
    marker.set("the caller's")
    with torch.no_grad():
        tiny_studio.encode(text="a red circle")
    assert grad_modes[-1] is False and any(grad_modes[:-1])  # the caller's mode, not the model thread's last
    assert markers[-1] == "the caller's" and markers[0] is None  # and the caller's context variables
    with pytest.raises(ValueError, match="empty"):
        tiny_studio.generate("image", text="   ")  # raised on the model thread, caught here
    assert MODEL_THREAD.run(lambda: MODEL_THREAD.run(threading.get_ident)) in threads_seen  # a nested call runs at once
