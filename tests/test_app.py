"""The studio app: the service behind the page, and the public API called through gradio_client.

A tiny untrained studio (real encoders, tiny decoders) stands in for the embedded preset, so
every endpoint runs in well under a second.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import time
import zlib
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile
from gradio_client import handle_file
from PIL import Image

from core import Studio
from core.bench import free_port, serving
from core.decoders.vocoder import Vocoder
from studio.history import History
from studio.recipes import read_recipe
from studio.service import Cancelled, StudioService

pytestmark = pytest.mark.slow  # loads the real packaged encoders
ROOT = Path(__file__).resolve().parent.parent
STEPS = 2
REQUIRED_ENDPOINTS = {"/text_to_image", "/image_to_audio", "/caption", "/mix", "/search", "/replay"}
ALL_ENDPOINTS = REQUIRED_ENDPOINTS | {"/morph", "/read_recipe", "/shares", "/history"}


# --- helpers shared with test_browser.py --------------------------------------------------------


def make_service(pipeline, folder: Path, **history_options) -> StudioService:
    """A service over a fresh facade (own gallery and media memory) around ``pipeline``."""
    pipeline._vocoder = Vocoder(method="griffin-lim", griffin_lim_iters=4)  # HiFi-GAN takes seconds to load
    service = StudioService(Studio(pipeline), History(folder, **history_options))
    service.start_indexing()
    return service


def launch(service: StudioService, queue_size: int = 8, public: bool = False, **options):
    """The app on a free local port, not blocking (close it with ``demo.close()``)."""
    from studio.ui import build_ui, launch_options

    demo = build_ui(service, public=public)
    demo.queue(max_size=queue_size, default_concurrency_limit=1)
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True, **launch_options(service, public=public), **options)
    return demo


def tone(seconds: float = 0.5, rate: int = 16000) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * 330 * np.arange(int(seconds * rate)) / rate)).astype(np.float32)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width x height`` pixels but holds almost no data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")


def pixels(path) -> bytes:
    with Image.open(path) as image:
        return image.tobytes()


# --- the service, without a server ------------------------------------------------------------


@pytest.fixture(scope="module")
def service(tiny_studio, tmp_path_factory):
    return make_service(tiny_studio.pipeline, tmp_path_factory.mktemp("history"))


def test_mix_writes_media_with_recipes_and_a_history_item(service):
    picture = Image.new("RGB", (30, 20), (200, 40, 40))
    result = service.mix(text="a red bird", image=picture, weights={"text": 2.0, "image": 0.5}, output="image", seed=5, steps=STEPS, variants=2)
    assert [p.name for p in result.files] == ["a-red-bird-seed5.png", "a-red-bird-seed6.png"]  # downloads keep these names
    assert read_recipe(result.files[1]) == {**result.recipe, "variant": 1}
    assert result.recipe["weights"] == {"text": 2.0, "image": 0.5}
    assert sum(result.shares.values()) == pytest.approx(1.0, abs=1e-4)
    item = service.history.get(result.item.id)
    assert {"thumb.png", "input-image.png"} <= set(item.files)
    assert service.history.find_media(result.recipe["inputs"]["image_sha256"]) == item.path("input-image.png")


def test_replay_after_a_restart_finds_media_in_the_history(service, tmp_path):
    first = service.mix(image=Image.new("RGB", (8, 8), "blue"), audio=(16000, tone()), output="sound", seed=3, steps=STEPS)
    morph = service.morph({"text": "a cat", "image": Image.new("RGB", (9, 9), "green")}, {"text": "a drum"}, frames=3, output="image", seed=1, steps=STEPS)
    # a new facade and a new history on the same folder: nothing remembered but the disk
    restarted = StudioService(Studio(service.studio.pipeline), History(service.history.folder), examples=[])
    again = restarted.replay(read_recipe(first.files[0]))
    assert soundfile.read(again.files[0])[0].tobytes() == soundfile.read(first.files[0])[0].tobytes()
    morph_again = restarted.replay(json.dumps(morph.recipe))
    assert [pixels(p) for p in morph_again.files] == [pixels(p) for p in morph.files]


def test_best_first_keeps_each_file_with_its_own_recipe_and_restores(service):
    plain = service.text_to_image("a red bird", seed=5, steps=STEPS, variants=3)
    ranked = service.text_to_image("a red bird", seed=5, steps=STEPS, variants=3, best_first=True)
    order = ranked.recipe["order"]
    assert sorted(order) == [0, 1, 2] and plain.recipe["order"] == [0, 1, 2]
    assert [pixels(p) for p in ranked.files] == [pixels(plain.files[i]) for i in order]
    # each file names its own seed offset (variant v drew with seed + v), whatever its place
    assert [read_recipe(f) for f in ranked.files] == [{**ranked.recipe, "variant": v} for v in order]
    assert service.recipe_fields(ranked.recipe)["best_first"] is True
    assert service.recipe_fields(plain.recipe)["best_first"] is False
    varied = service.text_to_image("a red bird", seed=5, steps=STEPS, variants=2, temperature=0.75)
    assert varied.recipe["temperature"] == 0.75 and service.recipe_fields(varied.recipe)["temperature"] == 0.75
    assert plain.recipe["temperature"] == service.default_temperature("image") == 0.0
    # the image prior's switch is kept in the recipe and restored to the page (the tiny studio's
    # prior is untrained, so its pixels are the same either way: tests/test_embedding_prior.py checks the draws)
    blend = service.text_to_image("a red bird", seed=5, steps=STEPS, use_image_prior=False)
    assert blend.recipe["use_image_prior"] is False and service.recipe_fields(blend.recipe)["use_image_prior"] is False
    assert plain.recipe["use_image_prior"] is True and service.recipe_fields(plain.recipe)["use_image_prior"] is True
    assert service.recipe_fields({k: v for k, v in blend.recipe.items() if k != "use_image_prior"})["use_image_prior"] is True
    assert service.recipe_fields({**blend.recipe, "use_image_prior": None})["use_image_prior"] is True  # only false turns it off
    morph = service.morph({"text": "a cat"}, {"text": "a drum"}, frames=2, seed=1, steps=STEPS, use_image_prior=False)
    assert morph.recipe["use_image_prior"] is False and service.recipe_fields(morph.recipe)["use_image_prior"] is False
    assert service.replay(morph.recipe).recipe["use_image_prior"] is False


def test_recipe_fields_restore_inputs_or_say_what_to_upload(service):
    result = service.mix(text="a violin", audio=(16000, tone()), weights={"audio": 0.3}, output="caption", seed=9)
    fields = service.recipe_fields(result.recipe)
    assert fields["text"] == "a violin" and fields["output"] == "caption" and fields["seed"] == 9
    assert fields["weights"]["audio"] == pytest.approx(0.3) and fields["audio"] is not None and fields["note"] == ""
    unknown = {**result.recipe, "inputs": {"audio_sha256": "f" * 64}}
    assert "Upload again: the sound" in service.recipe_fields(unknown)["note"]


def test_search_covers_examples_then_history(service):
    assert service.wait_indexed()
    hits = service.search(text="a purple star", k=24)
    sources = {hit["source"] for hit in hits}
    assert "example" in sources and "history" in sources  # earlier tests put items in the history
    assert [hit["rank"] for hit in hits] == list(range(len(hits)))
    assert all(Path(hit["thumb"]).is_file() for hit in hits)


def test_stop_ends_a_generation_and_frees_the_studio(service):
    before = len(service.history)

    def stop_at_step_two(step, total, *preview):
        if step == 2:
            raise Cancelled()

    with pytest.raises(Cancelled):
        service.mix(text="a long one", output="image", steps=20, on_step=stop_at_step_two)
    assert len(service.history) == before
    assert service.mix(text="next", steps=1).files  # the lock was released


def test_the_page_streams_progress_and_stops_on_request(service):
    import gradio as gr

    from studio.ui import StudioPage

    page = StudioPage(service)
    page.c = {k: k for k in ("progress", "preview", "gallery", "captions", "meter", "recipe")} | {"sounds": ["s0", "s1", "s2", "s3"]}
    request = type("Request", (), {"session_hash": "abc"})()
    updates = list(page.create("a bird", 1, None, 1, None, 1, "image", 0, 3, 3.0, 1, False, None, True, None, request))
    assert "Step 1 of 3" in updates[1]["progress"] and updates[-1]["recipe"]["steps"] == 3
    assert "finishing" in updates[-2]["progress"] and "Done: 3 steps" in updates[-1]["progress"]  # "Done" only once the result is there
    assert updates[-1]["gallery"]["value"][0][1] == "variant 1 · seed 0"
    stopped = page.create("a bird", 1, None, 1, None, 1, "image", 0, 100, 3.0, 1, False, None, True, None, request)
    next(stopped)
    page.stop(request)
    assert "Stopped" in list(stopped)[-1]["progress"]
    ranked = list(page.create("a bird", 1, None, 1, None, 1, "image", 0, 2, 3.0, 3, True, 0.5, True, None, request))[-1]
    first = ranked["recipe"]["order"][0]
    assert ranked["gallery"]["value"][0][1] == f"variant 1 · seed {first}" and ranked["recipe"]["temperature"] == 0.5
    failing = page.create("", 1, None, 1, None, 1, "image", 0, 3, 3.0, 1, False, None, True, None, request)
    assert "waiting" in next(failing)["progress"] and next(failing)["progress"] == ""  # the bar is cleared beside the error
    with pytest.raises(gr.Error, match="(?i)prompt|input|nothing"):  # bad input reaches the page as a clear message
        next(failing)
    with pytest.raises(gr.Error, match="use_image_prior must be true or false"):  # not cast: "false" would read as true
        list(page.create("a bird", 1, None, 1, None, 1, "image", 0, 3, 3.0, 1, False, None, "false", None, request))


def test_the_page_meter_history_and_restore_helpers(service, tmp_path):
    from studio.ui import StudioPage

    page = StudioPage(service)
    meter = page.measure("a bird", 1.0, None, 1.0, str(ROOT / "assets" / "examples" / "dog.wav"), 2.0)
    assert set(meter) == {"text", "sound", "chance"} and sum(meter.values()) == pytest.approx(1.0, abs=1e-4)  # plain words
    assert page.measure("", 1.0, None, 1.0, None, 1.0) is None  # nothing to fuse yet: a blank meter, no error
    made = service.text_to_image("a kite", steps=1)
    recipe, banner, message = page.offer_recipe(str(made.files[0]))
    assert recipe["inputs"]["text"] == "a kite" and banner["visible"] and "made by the studio" in message
    assert page.offer_recipe(str(ROOT / "assets" / "examples" / "red-apple.png"))[0] is None  # no recipe, no offer
    gallery, ids, info = page.history_gallery()
    assert ids[0] == made.item.id and len(gallery) == len(ids) and f"{len(service.history)} items" in info
    page.delete_item(made.item.id)
    assert made.item.id not in service.history and not made.item.folder.exists()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.mix(), "at least one input"),
        (lambda s: s.text_to_image("   "), "prompt is empty"),
        (lambda s: s.mix(text="a", weights={"text": float("nan")}), "text weight must be a number"),
        (lambda s: s.mix(text="a", weights={"text": 0.0}), "All weights are zero"),
        (lambda s: s.mix(text="a", output="video"), "Unknown output"),
        (lambda s: s.mix(text="a", variants=2.5), "whole number"),
        (lambda s: s.mix(text="a", best_first="yes"), "best_first must be true or false"),
        (lambda s: s.mix(text="a", temperature=5), "temperature must be a number from 0 to 2"),
        (lambda s: s.mix(text="a", use_image_prior="no"), "use_image_prior must be true or false"),
        (lambda s: s.morph({"text": "a"}, {"text": "b"}, use_image_prior=1), "use_image_prior must be true or false"),
        (lambda s: s.morph({"text": "a"}, {"text": " "}), "second mix is empty"),
        (lambda s: s.replay("{oops"), "not valid JSON"),
        (lambda s: s.replay({"kind": "generate", "inputs": {"image_sha256": "0" * 64}, "output": "image"}), "not in your history"),
    ],
)
def test_bad_calls_raise_value_errors_that_say_what_to_fix(service, call, message):
    with pytest.raises(ValueError, match=message):
        call(service)


# --- the API, through gradio_client ----------------------------------------------------------


@pytest.fixture(scope="module")
def app(service):
    demo = launch(service, mcp_server=True)
    from gradio_client import Client

    try:
        yield demo, Client(demo.local_url, verbose=False)
    finally:
        demo.close()


def test_every_action_is_a_documented_public_endpoint_and_helpers_are_private(app):
    demo, client = app
    api = client.view_api(return_format="dict", print_info=False)
    assert set(api["named_endpoints"]) == ALL_ENDPOINTS and not api["unnamed_endpoints"]
    for name in ALL_ENDPOINTS:
        fn = next(f for f in demo.fns.values() if f.api_name == name.lstrip("/"))
        assert fn.fn.__doc__ and "Args:" in fn.fn.__doc__, name
        assert all(p["parameter_name"] not in ("request", "progress") for p in api["named_endpoints"][name]["parameters"])
    private = {f.name for f in demo.fns.values() if f.api_visibility == "private"}
    assert {"create", "stop", "dice", "measure", "restore", "load_item"} <= private
    for name, endpoint in api["named_endpoints"].items():
        for parameter in endpoint["parameters"]:
            assert parameter["python_type"]["description"], (name, parameter["parameter_name"])  # every parameter says what it is
            if parameter["parameter_name"] in ("seed", "steps", "variants", "k", "frames", "limit"):
                assert parameter["type"]["type"] == "integer", (name, parameter["parameter_name"])
            assert parameter["example_input"] != "Hello!!", (name, parameter["parameter_name"])


def test_text_to_image_read_recipe_and_replay_give_identical_pixels(app):
    _, client = app
    files, recipe = client.predict("a red fire truck", 4, STEPS, 3.0, 2, api_name="/text_to_image")
    assert len(files) == 2 and recipe["seed"] == 4 and recipe["num_outputs"] == 2
    stored = client.predict(handle_file(files[1]), api_name="/read_recipe")
    assert stored["variant"] == 1 and stored["inputs"] == {"text": "a red fire truck"}
    again, _, replayed = client.predict(stored, None, None, api_name="/replay")
    assert [pixels(p) for p in again] == [pixels(p) for p in files]
    assert replayed == recipe
    ranked, recipe = client.predict("a red fire truck", 4, STEPS, 3.0, 2, True, 0.0, api_name="/text_to_image")
    assert recipe["best_first"] is True and [pixels(p) for p in ranked] == [pixels(files[i]) for i in recipe["order"]]
    varied, recipe = client.predict("a red fire truck", 4, STEPS, 3.0, 2, True, 0.5, api_name="/text_to_image")
    assert recipe["temperature"] == 0.5 and [pixels(p) for p in varied] != [pixels(p) for p in ranked]
    assert recipe["use_image_prior"] is True
    _, blend = client.predict("a red fire truck", 4, STEPS, 3.0, 1, False, 0.0, False, api_name="/text_to_image")
    assert blend["use_image_prior"] is False
    again, _, _ = client.predict(recipe, None, None, api_name="/replay")
    assert [pixels(p) for p in again] == [pixels(p) for p in varied]


def test_image_to_audio_caption_mix_morph_shares_search_history(app, tmp_path):
    _, client = app
    picture = ROOT / "assets" / "examples" / "red-apple.png"
    sound_path = tmp_path / "tone.wav"
    soundfile.write(sound_path, tone(), 16000)
    wav, recipe = client.predict(handle_file(picture), 2, STEPS, 3.0, api_name="/image_to_audio")
    samples, rate = soundfile.read(wav)
    assert rate == 22050 and samples.ndim == 1 and read_recipe(wav)["output"] == "audio"
    caption, recipe = client.predict(handle_file(picture), handle_file(sound_path), api_name="/caption")
    assert isinstance(caption, str) and recipe["output"] == "caption" and set(recipe["weights"]) == {"image", "audio"}
    files, captions, shares, recipe = client.predict(
        "a bell", 1.0, handle_file(picture), 0.5, handle_file(sound_path), 2.0, "sound", 7, STEPS, 2.0, 2, api_name="/mix"
    )
    assert [Path(f).suffix for f in files] == [".wav", ".wav"] and captions == []
    assert set(shares) == {"text", "image", "audio", "prior"} and recipe["weights"] == {"text": 1.0, "image": 0.5, "audio": 2.0}
    strip, sequence, text, recipe = client.predict("a cat", None, None, "a drum", handle_file(picture), None, "image", 3, 0, STEPS, api_name="/morph")
    assert len(strip) == 3 and sequence is None and recipe["kind"] == "interpolate"
    _, sequence, _, _ = client.predict("a cat", None, None, "a drum", None, None, "sound", 2, 0, STEPS, api_name="/morph")
    assert soundfile.info(sequence).duration > 0
    _, _, text, _ = client.predict("a cat", None, None, "a drum", None, None, "caption", 2, 0, 1, api_name="/morph")
    assert len(text.splitlines()) == 2
    shares = client.predict("a bell", 1.0, handle_file(picture), 3.0, None, 1.0, api_name="/shares")
    assert shares["image"] > 0 and sum(shares.values()) == pytest.approx(1.0, abs=1e-4)
    gallery, hits = client.predict("a yellow sun", None, None, 3, api_name="/search")
    assert len(gallery) == len(hits) == 3 and all(hit["score"] <= hits[0]["score"] for hit in hits)
    history = client.predict(5, api_name="/history")
    assert len(history) == 5 and history[0]["kind"] == "interpolate" and history[0]["recipe"]["output"] == "caption"


def test_bad_input_gets_a_clear_error_and_the_app_keeps_serving(app, tmp_path):
    from gradio_client.exceptions import AppError

    _, client = app
    corrupt, huge, bomb = tmp_path / "corrupt.png", tmp_path / "huge.png", tmp_path / "bomb.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\nthis is not a picture")
    Image.new("1", (9000, 9000)).save(huge)  # 81 megapixels in 10 KB
    bomb.write_bytes(png_header_only(20000, 20000))
    notes, silence, plain = tmp_path / "notes.wav", tmp_path / "silence.wav", tmp_path / "plain.png"
    notes.write_text("not a sound at all")
    soundfile.write(silence, np.zeros(8000, dtype=np.float32), 8000)
    Image.new("RGB", (4, 4)).save(plain)
    cases = [
        ((handle_file(corrupt), 0, STEPS, 3.0), "/image_to_audio", "Could not read the upload as an image"),
        ((handle_file(huge), 0, STEPS, 3.0), "/image_to_audio", "too large"),
        ((handle_file(bomb), 0, STEPS, 3.0), "/image_to_audio", "too large to open safely"),
        ((None, handle_file(notes)), "/caption", "as a sound"),
        ((None, handle_file(silence)), "/caption", "silent"),
        ((None, None), "/caption", "Upload an image or a sound"),
        (("", 0, STEPS, 3.0, 1), "/text_to_image", "prompt is empty"),
        (("a", -1.0, None, 1.0, None, 1.0, "image", 0, STEPS, 3.0, 1), "/mix", "text weight must be a number from 0 to 10"),
        (("a", 1e9, None, 1.0, None, 1.0, "image", 0, STEPS, 3.0, 1), "/mix", "from 0 to 10"),
        (("a", 1.0, None, 1.0, None, 1.0, "image", 0, STEPS, 3.0, 50), "/mix", "variants must be from 1 to 4"),
        (("a", 1.0, None, 1.0, None, 1.0, "image", 0, 0, 3.0, 1), "/mix", "steps must be from 1 to 100"),
        (("<b>a</b>", 1.0, None, 1.0, None, 1.0, "<video>", 0, STEPS, 3.0, 1), "/mix", "Unknown output '&lt;video&gt;'"),
        (({"kind": "nonsense"}, None, None), "/replay", "Not a studio recipe"),
        ((handle_file(plain),), "/read_recipe", "holds no studio recipe"),
    ]
    for args, endpoint, message in cases:
        with pytest.raises(AppError, match=message):
            client.predict(*args, api_name=endpoint)
    files, _ = client.predict("still here", 0, 1, 3.0, 1, api_name="/text_to_image")
    assert len(files) == 1


def test_launch_is_safe_and_the_queue_is_bounded(app, service):
    demo, _ = app
    assert demo.ssr_mode is False
    assert demo.max_file_size == 20 * 1024 * 1024
    assert demo.allowed_paths == [str(service.history.folder)]
    assert demo._queue.max_size == 8
    generating = [f for f in demo.fns.values() if f.api_name in ("text_to_image", "image_to_audio", "caption", "mix", "morph", "replay") or f.name == "create"]
    assert len(generating) == 7
    assert all(f.concurrency_limit == 1 and f.concurrency_id == "generate" for f in generating)
    for outside in ("/etc/passwd", str(ROOT / "app.py")):
        response = httpx.get(f"{demo.local_url}gradio_api/file={outside}")
        assert response.status_code in (403, 404), outside


def test_a_full_queue_refuses_requests_and_the_rest_complete(service):
    from gradio_client import Client

    demo = launch(service, queue_size=1)  # one running and one waiting; the rest are refused
    try:
        client = Client(demo.local_url, verbose=False)
        jobs = [client.submit(f"job {i}", 0, 60, 3.0, 1, api_name="/text_to_image") for i in range(4)]
        outcomes = []
        for job in jobs:
            try:
                job.result()
                outcomes.append("done")
            except Exception as error:  # gradio_client's QueueError
                outcomes.append(str(error))
        assert "done" in outcomes and any("Queue is full" in outcome for outcome in outcomes), outcomes
    finally:
        demo.close()


def test_the_mcp_server_lists_the_public_tools(app):
    demo, _ = app
    schema = httpx.get(f"{demo.local_url}gradio_api/mcp/schema", timeout=30).json()
    names = {tool["name"] for tool in schema}
    assert {"text_to_image", "image_to_audio", "caption", "mix", "search", "replay"} <= names
    assert not names & {"create", "dice", "measure", "stop"}
    described = next(tool for tool in schema if tool["name"] == "text_to_image")
    assert "prompt" in described["inputSchema"]["properties"] and described["description"]


# --- app.py itself ------------------------------------------------------------------------------

def test_app_py_serves_the_embedded_studio(tmp_path):
    """``python app.py`` (what ``make run`` runs) serves the page and its MCP server. How fast it
    starts is measured by ``studio-bench --startup``, not here."""
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    command = [sys.executable, str(ROOT / "app.py"), "--port", str(port), "--history", str(tmp_path / "history"), "--mcp"]
    with serving(command, port, timeout=120, env=env) as ready:  # raises with the app's output if it fails to serve
        print(f"app.py answered after {ready:.1f} s")
        assert httpx.get(f"http://127.0.0.1:{port}/gradio_api/mcp/schema", timeout=30).status_code == 200
        assert (tmp_path / "history" / "items").is_dir()


def test_each_output_starts_from_its_own_default_guidance(tiny_studio, tmp_path):
    import gradio as gr

    from studio.ui import StudioPage, build_ui

    pipeline = tiny_studio.pipeline
    saved = dict(pipeline.config.default_guidance)
    pipeline.register_to_config(default_guidance={"image": 7.0, "audio": 2.0, "caption": 1.0})
    try:
        service = make_service(pipeline, tmp_path)
        page = StudioPage(service)
        assert (page.default_guidance("image"), page.default_guidance("sound"), page.default_guidance("caption")) == (7.0, 2.0, 1.0)
        sliders = [b for b in build_ui(service).blocks.values() if isinstance(b, gr.Slider) and b.label == "Guidance"]
        assert sorted({s.value for s in sliders}) == [2.0, 7.0]  # Create and the API start at the image's, Hear at the sound's
        # a handler called without guidance (from Python, not the page) uses the studio's default for its output too
        assert page.text_to_image("a kite", steps=1)[1]["guidance"] == 7.0
        assert page.text_to_image("a kite")[1]["steps"] == service.default_steps("image")  # and the studio's steps
        assert page.image_to_audio(str(ROOT / "assets" / "examples" / "red-apple.png"), steps=1)[1]["guidance"] == 2.0
        assert page.mix(text="a kite", output="sound", steps=1)[-1]["guidance"] == 2.0
    finally:
        pipeline.register_to_config(default_guidance=saved)


def test_the_indexer_stops_after_the_job_in_hand(tiny_studio, tmp_path):
    service = make_service(tiny_studio.pipeline, tmp_path)
    assert service.wait_indexed(timeout=120)
    indexed = set(service.gallery)
    service.stop_indexing()
    assert not service._indexer.is_alive()  # joined, so nothing is cut off at exit
    made = service.text_to_image("a kite", steps=1)  # still made and saved, no longer indexed
    assert made.item.id in service.history and set(service.gallery) == indexed
    service.stop_indexing()  # a second stop (the one at exit) is harmless


def test_a_service_nobody_holds_is_freed_and_its_indexer_ends(tiny_studio, tmp_path):
    import gc
    import weakref

    service = make_service(tiny_studio.pipeline, tmp_path)
    assert service.wait_indexed(timeout=120)
    thread, ref = service._indexer, weakref.ref(service)
    del service
    for _ in range(50):  # the thread lets go of it just after answering wait_indexed
        gc.collect()
        if ref() is None:
            break
        time.sleep(0.1)
    assert ref() is None  # neither the thread nor the exit hook keeps it alive
    thread.join(10)
    assert not thread.is_alive()
