"""A public studio (a shared Space): visitors never see each other's work, every request is
bounded, and a cancelled or abandoned run stops and saves nothing."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import httpx
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from studio.guard import Limits, Runs, trim_folder, visitor_key
from studio.service import MAX_SEED
from studio.ui import StudioPage

from .test_app import launch, make_service

pytestmark = pytest.mark.slow  # loads the real packaged encoders
ROOT = Path(__file__).resolve().parent.parent
TOKEN_A, TOKEN_B = "a" * 32, "b" * 32  # two browsers' visitor tokens


@pytest.fixture(scope="module")
def service(tiny_studio, tmp_path_factory):
    return make_service(tiny_studio.pipeline, tmp_path_factory.mktemp("public-history"), max_items_per_owner=50)


@pytest.fixture(scope="module")
def app(service):
    demo = launch(service, public=True)
    try:
        yield demo
    finally:
        demo.close()


def wait_for(condition, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_two_api_clients_never_see_each_others_work(app, service, tmp_path):
    alice, bob = Client(app.local_url, verbose=False), Client(app.local_url, verbose=False)
    picture = tmp_path / "alice-upload.png"
    Image.new("RGB", (32, 32), (200, 30, 30)).save(picture)
    files, recipe = alice.predict(handle_file(picture), 0, 1, 3.0, api_name="/image_to_audio")
    item_id = alice.predict(5, api_name="/history")[0]["id"]
    assert all(entry["id"] != item_id for entry in bob.predict(50, api_name="/history"))
    # Bob holds Alice's recipe, but not her picture: the replay cannot use it
    with pytest.raises(AppError, match="not in your history"):
        bob.predict(recipe, None, None, api_name="/replay")
    assert alice.predict(recipe, None, None, api_name="/replay")[0]  # Alice's own history has it
    # nor can he search his way to it
    _, hits = bob.predict("", handle_file(picture), None, 24, api_name="/search")
    assert all(hit["source"] == "example" for hit in hits)
    _, hits = alice.predict("", handle_file(picture), None, 24, api_name="/search")
    assert any(hit.get("item") == item_id for hit in hits)
    # nor fetch its files by URL, though he guessed the folder
    item = service.history.get(item_id)
    for name in ("input-image.png", item.outputs[0].name):
        answer = httpx.get(f"{app.local_url}gradio_api/file={item.folder / name}")
        assert answer.status_code == 403, name
    # Alice's result reaches her through Gradio's cache, under a name no one else can guess
    assert Path(files).read_bytes() == item.outputs[0].read_bytes() and Path(files).name == "sound-seed0.wav"
    assert str(service.history.folder) not in files


def test_the_page_keeps_each_browser_to_its_own_history(app, service):
    page = StudioPage(service, public=True)
    request = type("Request", (), {"session_hash": "page-session"})()
    made = service.text_to_image("a kite", steps=1, visitor=page.visitor(request, TOKEN_A))
    token, gallery, ids, info, seed = page.welcome(TOKEN_A, request)
    assert token == TOKEN_A and made.item.id in ids
    assert str(service.history.folder) not in info and "private to you" in info
    new_token, _, other_ids, _, other_seed = page.welcome(None, request)  # a first visit gets a fresh token, and a random seed
    assert 0 <= seed <= MAX_SEED and seed != other_seed
    assert new_token not in (TOKEN_A, None) and made.item.id not in other_ids
    _, other_ids, _ = page.history_gallery(TOKEN_B, request)
    assert made.item.id not in other_ids
    # Bob cannot select, load or delete Alice's item, even by its id
    event = type("Select", (), {"index": 0})()
    assert page.select_item([made.item.id], TOKEN_B, event, request)[0] is None
    with pytest.raises(Exception, match="No such history item"):
        page.load_item(made.item.id, TOKEN_B, request)
    page.delete_item(made.item.id, TOKEN_B, request)
    assert made.item.id in service.history
    page.delete_item(made.item.id, TOKEN_A, request)
    assert made.item.id not in service.history
    fresh = type("Request", (), {"session_hash": "fresh-session"})()
    assert page.visitor(fresh, "not a token") == visitor_key("session", "fresh-session")  # a forged token is no one's
    stored = page.welcome(None, request)[0]
    assert page.visitor(request, None) == page.visitor(request, stored)  # a click before the page stored its token


def test_requests_and_uploads_are_bounded_with_a_message(app):
    url = app.local_url
    limits = Limits()
    inline = "data:image/png;base64," + "A" * (limits.request_bytes + 1000)
    answer = httpx.post(f"{url}gradio_api/call/caption", json={"data": [{"url": inline, "path": "x.png", "meta": {"_type": "gradio.FileData"}}, None]})
    assert answer.status_code == 413 and "upload larger files" in answer.json()["error"]
    files = [("files", (f"f{i}.png", b"\x89PNG tiny", "image/png")) for i in range(limits.upload_files + 1)]
    answer = httpx.post(f"{url}gradio_api/upload", files=files)
    assert answer.status_code == 413 and "Too many files" in answer.json()["error"]
    answer = httpx.post(f"{url}gradio_api/upload", files=files[:2])
    assert answer.status_code == 200 and len(answer.json()) == 2


@pytest.fixture
def slow_steps(service, monkeypatch):
    """Every denoising step takes 50 ms more, so a run lasts long enough to be stopped."""
    original = service.studio.generate

    def slow(*args, on_step=None, **kwargs):
        def step(*values):
            time.sleep(0.05)
            on_step(*values)

        return original(*args, on_step=step, **kwargs)

    monkeypatch.setattr(service.studio, "generate", slow)


def test_a_cancelled_api_job_stops_at_its_next_step_and_saves_nothing(app, service, slow_steps):
    client = Client(app.local_url, verbose=False)
    before = len(service.history)
    job = client.submit("a slow one", 0, 100, 3.0, 1, api_name="/text_to_image")
    assert wait_for(lambda: service.runs.running() == 1)
    started = time.monotonic()
    job.cancel()
    assert wait_for(lambda: service.runs.running() == 0, timeout=5)
    assert time.monotonic() - started < 3  # 100 steps take 5 s or more; it stopped at the next one
    time.sleep(0.3)
    assert len(service.history) == before
    assert client.predict("the next one", 0, 1, 3.0, 1, api_name="/text_to_image")[0]  # the studio is free again


def test_a_client_that_drops_its_stream_stops_its_run(app, service, slow_steps):
    url, before = app.local_url, len(service.history)
    session = "dropping-client"
    fn_index = next(i for i, f in app.fns.items() if f.api_name == "text_to_image")
    joined = httpx.post(f"{url}gradio_api/queue/join", json={"data": ["a slow one", 0, 100, 3.0, 1, False, None, True], "fn_index": fn_index, "session_hash": session})
    assert joined.status_code == 200

    def listen():
        with httpx.stream("GET", f"{url}gradio_api/queue/data", params={"session_hash": session}, timeout=30) as stream:
            for line in stream.iter_lines():
                if "progress" in line:
                    return  # leaves mid-run: the connection closes

    listener = threading.Thread(target=listen)
    listener.start()
    assert wait_for(lambda: service.runs.running() == 1)
    listener.join(20)
    assert wait_for(lambda: service.runs.running() == 0, timeout=5)
    time.sleep(0.3)
    assert len(service.history) == before


def test_runs_stop_by_session_and_by_event_only_within_their_session():
    runs = Runs()
    first, second = runs.start("s1", "e1"), runs.start("s1", "e2")
    assert runs.stop_event("s2", "e1") == 0 and not first.is_set()  # another session cannot name it
    assert runs.stop_event("s1", "e1") == 1 and first.is_set() and not second.is_set()
    assert runs.stop_session("s1") == 2 and second.is_set()
    runs.finish("s1", first), runs.finish("s1", second)
    assert runs.running() == 0


def test_the_upload_cache_is_trimmed_oldest_first_sparing_young_files(tmp_path):
    for i in range(5):
        path = tmp_path / f"{i}" / "upload.bin"
        path.parent.mkdir()
        path.write_bytes(bytes(100))
        stamp = time.time() - 1000 + i * 100
        os.utime(path, (stamp, stamp))
    assert trim_folder(tmp_path, 250, grace_s=0) == 200
    assert sorted(p.parent.name for p in tmp_path.rglob("upload.bin")) == ["3", "4"]
    assert trim_folder(tmp_path, 0, grace_s=10_000) == 200  # all younger than the grace: kept


def test_recipes_keep_their_limits_on_replay(app):
    client = Client(app.local_url, verbose=False)
    base = {"kind": "generate", "output": "image", "inputs": {"text": "a cat"}, "weights": {"text": 1.0}, "seed": 0, "steps": 1, "guidance": 3.0, "num_outputs": 1}
    cases = [
        ({"num_outputs": 16}, "variants must be from 1 to 4"),
        ({"steps": 1000}, "steps must be from 1 to 100"),
        ({"guidance": 50}, "guidance must be a number from 0 to 20"),
        ({"best_first": "yes"}, "best_first must be true or false"),
        ({"inputs": "x"}, "inputs must be an object"),
        ({"weights": 5}, "weights must be an object"),
        ({"inputs": {"image_sha256": 5}}, "64 hexadecimal digits"),
        ({"inputs": {"text": "x" * 5000}}, "keep it under"),
    ]
    for change, message in cases:
        with pytest.raises(AppError, match=message):
            client.predict({**base, **change}, None, None, api_name="/replay")
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(AppError, match="(?i)recipe"):
        client.predict(json.dumps({"kind": "generate", "x": "y"})[:-1] + ', "deep": ' + deep + "}", None, None, api_name="/replay")


def test_the_longest_prompt_round_trips_through_its_png(service):
    from studio.recipes import read_recipe

    made = service.text_to_image("a" * 999 + "é", steps=1, visitor="browser:x")
    assert read_recipe(made.files[0])["inputs"]["text"] == "a" * 999 + "é"
    with pytest.raises(ValueError, match="keep it under 1,000"):
        service.text_to_image("a" * 1001, steps=1)
    with pytest.raises(ValueError, match="lone surrogate"):
        service.text_to_image("a cat \ud800", steps=1)
    for bad in (float("nan"), float("inf"), -float("inf"), "3", [3], True):
        with pytest.raises(ValueError, match="seed must be a whole number"):
            service.text_to_image("a cat", seed=bad, steps=1)


def test_a_signed_in_visitor_is_known_by_their_hugging_face_name_on_any_device(service):
    page = StudioPage(service, public=True)

    def request(session_hash: str, oauth: dict | None):
        raw = type("Raw", (), {"session": {"oauth_info": oauth} if oauth else {}})()
        return type("Request", (), {"session_hash": session_hash, "request": raw})()

    signed_in = {"userinfo": {"preferred_username": "ada"}, "expires_at": time.time() + 3600}
    laptop, phone = request("laptop", signed_in), request("phone", signed_in)
    assert page.visitor(laptop, TOKEN_A) == page.visitor(phone, TOKEN_B) == visitor_key("user", "ada")
    expired = {**signed_in, "expires_at": time.time() - 1}
    assert page.visitor(request("laptop", expired), TOKEN_A) == visitor_key("browser", TOKEN_A)  # signed out: the browser's own
    assert StudioPage(service).visitor(laptop, TOKEN_A) is None  # a local run: one shared history


def test_a_file_sent_inline_obeys_the_upload_cap(app):
    limit = Limits().upload_file_bytes
    inline = "data:image/png;base64," + "A" * (limit * 4 // 3 + 4000)  # decodes to just over the cap, under the body cap
    answer = httpx.post(f"{app.local_url}gradio_api/call/caption", json={"data": [{"path": inline, "meta": {"_type": "gradio.FileData"}}, None]})
    event = answer.json()["event_id"]
    stream = httpx.get(f"{app.local_url}gradio_api/call/caption/{event}", timeout=60).text
    assert "over 20 MB, the upload limit" in stream


def test_uploads_wait_while_the_cache_is_full_of_young_files(tmp_path):
    import asyncio

    from studio.guard import Guard

    (tmp_path / "recent.bin").write_bytes(bytes(500))
    reached = []

    async def inner(scope, receive, send):
        reached.append(scope["path"])

    guard = Guard(inner, Runs(), Limits(cache_bytes=100, cache_grace_s=3600), private_folders=[], cache_folder=tmp_path)
    sent = []

    async def call(path: str):
        scope = {"type": "http", "method": "POST", "path": path, "headers": [(b"content-length", b"10")], "query_string": b""}

        async def receive():
            return {"type": "http.request", "body": b"0123456789", "more_body": False}

        async def send(message):
            sent.append(message)

        await guard(scope, receive, send)

    asyncio.run(call("/gradio_api/upload"))
    assert sent[0]["status"] == 507 and b"upload space is full" in sent[1]["body"] and not reached
    old = time.time() - 7200
    os.utime(tmp_path / "recent.bin", (old, old))  # an hour past the grace: trimmed, and the upload goes through
    sent.clear()
    asyncio.run(call("/gradio_api/upload"))
    assert reached == ["/gradio_api/upload"] and not (tmp_path / "recent.bin").exists()


def test_a_signed_in_visitor_on_a_space_keeps_their_history_on_any_device(tiny_studio, tmp_path, monkeypatch):
    import base64
    import hashlib

    import gradio as gr
    import gradio.oauth
    import itsdangerous

    settings = {"OAUTH_CLIENT_ID": "client", "OAUTH_CLIENT_SECRET": "secret", "OAUTH_SCOPES": "openid profile", "OPENID_PROVIDER_URL": "https://huggingface.co"}
    for name, value in settings.items():  # what a Space with hf_oauth: true sets
        monkeypatch.setenv(name, value)
        monkeypatch.setattr(gradio.oauth, name, value)
    monkeypatch.setenv("SPACE_ID", "you/fusion-studio")
    monkeypatch.setattr(gradio.oauth, "get_space", lambda: "you/fusion-studio")  # Gradio's real OAuth routes, not its local mock
    service = make_service(tiny_studio.pipeline, tmp_path / "history")
    demo = launch(service, public=True)
    try:
        assert any(isinstance(block, gr.LoginButton) for block in demo.blocks.values())
        # the session cookie Gradio's OAuth callback would set for "ada" (signed with the Space's secret)
        session = {"oauth_info": {"userinfo": {"preferred_username": "ada"}, "expires_at": time.time() + 3600}}
        signer = itsdangerous.TimestampSigner(hashlib.sha256(b"secret-v4").hexdigest())
        cookie = signer.sign(base64.b64encode(json.dumps(session).encode())).decode()
        laptop = Client(demo.local_url, verbose=False, headers={"Cookie": f"session={cookie}"})
        laptop.predict("ada's kite", 0, 1, 3.0, 1, api_name="/text_to_image")
        phone = Client(demo.local_url, verbose=False, headers={"Cookie": f"session={cookie}"})  # another device, another session
        assert [entry["recipe"]["inputs"]["text"] for entry in phone.predict(10, api_name="/history")] == ["ada's kite"]
        stranger = Client(demo.local_url, verbose=False)
        assert stranger.predict(10, api_name="/history") == []
    finally:
        demo.close()
