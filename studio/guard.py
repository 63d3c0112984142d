"""What keeps a public studio safe below the page: who a visitor is, which runs to stop, and an
ASGI middleware that bounds every request.

``Runs`` holds a stop flag per running generation, by session and by Gradio event id, so the
page's Stop button, ``job.cancel()`` from ``gradio_client`` (a POST to ``/gradio_api/cancel``)
and a client that disconnects all end a run at its next step.

``Guard`` wraps the app (``launch(app_kwargs={"middleware": [...]})``, see ``ui.launch_options``):

- files under the history folder are never served by URL (``/gradio_api/file=...``); visitors
  get their results through Gradio's cache, under names no one else can guess;
- a request body is at most ``Limits.request_bytes`` (a file sent inline as a ``data:`` URL
  obeys the upload cap) and an upload at most ``Limits.upload_files`` files of
  ``Limits.upload_file_bytes``; more is refused with a message before it is read;
- before each upload the upload cache is trimmed, oldest first, to ``Limits.cache_bytes``, and
  the upload is refused while the cache stays full of files younger than ``Limits.cache_grace_s``;
- a cancel request and a dropped event stream stop the runs they belong to.

Everything here is plain ASGI and standard library: it reads only the request line, headers
and (for ``/cancel``) a small JSON body.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote

MB = 1 << 20  # as Gradio counts "20mb"


@dataclass(frozen=True)
class Limits:
    """The bounds a public studio holds to (see the module docstring)."""

    upload_file_bytes: int = 20 * MB  # as Gradio's max_file_size
    upload_files: int = 8  # per upload request (the page sends one at a time)
    request_bytes: int = 28 * MB  # one inline file of upload_file_bytes, base64-encoded, and the rest
    cache_bytes: int = 2_000 * MB  # uploads and results waiting in Gradio's cache
    cache_grace_s: float = 120.0  # never trim a file younger than this (a request may be using it)

    @property
    def upload_request_bytes(self) -> int:
        return self.upload_files * self.upload_file_bytes + MB  # the files and the multipart framing


# --- visitors ----------------------------------------------------------------------------------


def visitor_key(kind: str, secret: str) -> str:
    """An opaque owner key for the history: a hash, so no token or name is written to disk."""
    return f"{kind}:{hashlib.sha256(f'{kind}:{secret}'.encode('utf-8', 'replace')).hexdigest()[:32]}"


def new_visitor_token() -> str:
    return secrets.token_urlsafe(24)


def is_visitor_token(value: object) -> bool:
    return isinstance(value, str) and 24 <= len(value) <= 64 and value.replace("-", "").replace("_", "").isalnum()


def signed_in_user(request) -> str | None:
    """The Hugging Face user signed in through the Space's OAuth (``hf_oauth: true``), if any."""
    raw = getattr(request, "request", None)
    try:
        session = raw.session  # only present where Gradio installed its session middleware for OAuth
    except (AssertionError, AttributeError):
        return None
    info = session.get("oauth_info") if isinstance(session, dict) else None
    if not isinstance(info, dict) or info.get("expires_at", 0) < time.time():
        return None
    name = (info.get("userinfo") or {}).get("preferred_username")
    return name if isinstance(name, str) and name else None


# --- runs --------------------------------------------------------------------------------------


class Runs:
    """Stop flags of running generations, by session hash and by event id."""

    def __init__(self):
        self._lock = threading.Lock()
        self._runs: dict[str, dict[threading.Event, str | None]] = {}  # session → {stop: event id}

    def start(self, session: str, event_id: str | None = None) -> threading.Event:
        stop = threading.Event()
        with self._lock:
            self._runs.setdefault(session, {})[stop] = event_id
        return stop

    def finish(self, session: str, stop: threading.Event) -> None:
        with self._lock:
            runs = self._runs.get(session, {})
            runs.pop(stop, None)
            if not runs:
                self._runs.pop(session, None)

    def stop_session(self, session: str) -> int:
        """Stops every run of ``session``; returns how many."""
        with self._lock:
            stops = list(self._runs.get(session, {}))
        for stop in stops:
            stop.set()
        return len(stops)

    def stop_event(self, session: str, event_id: str) -> int:
        """Stops the run of Gradio event ``event_id`` (only within its own session)."""
        with self._lock:
            stops = [stop for stop, event in self._runs.get(session, {}).items() if event == event_id]
        for stop in stops:
            stop.set()
        return len(stops)

    def stop_all(self) -> int:
        """Stops every run (a server shutting down)."""
        with self._lock:
            stops = [stop for runs in self._runs.values() for stop in runs]
        for stop in stops:
            stop.set()
        return len(stops)

    def running(self) -> int:
        with self._lock:
            return sum(len(runs) for runs in self._runs.values())


# --- the middleware ----------------------------------------------------------------------------


class _Refused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class Guard:
    """ASGI middleware: private history files, bounded requests and uploads, cancels that stop runs."""

    def __init__(self, app, runs: Runs, limits: Limits, private_folders: Iterable[str | os.PathLike], cache_folder: str | os.PathLike):
        self.app = app
        self.runs = runs
        self.limits = limits
        self.private_folders = [Path(folder).resolve() for folder in private_folders]
        self.cache_folder = Path(cache_folder)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path, method = scope.get("path", ""), scope.get("method", "GET")
        try:
            if "/file=" in path and self._is_private(path.split("/file=", 1)[1]):
                raise _Refused(403, "File not allowed.")
            if method == "POST" and path.endswith("/cancel"):
                receive = await self._note_cancel(receive)
            elif method == "POST":
                receive = await self._bounded(scope, receive, path.endswith("/upload"))
        except _Refused as refusal:
            return await _answer(send, refusal.status, refusal.message)
        if method == "GET" and path.endswith("/queue/data"):
            session = (parse_qs(scope.get("query_string", b"").decode("latin-1")).get("session_hash") or [""])[0]
            return await self._stream(scope, receive, send, session)
        started = False

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except _Refused as refusal:  # a body that grew past its cap while Gradio read it
            if not started:
                await _answer(send, refusal.status, refusal.message)

    def _is_private(self, requested: str) -> bool:
        for form in {requested, unquote(requested)}:  # as routed, and decoded once more
            try:
                target = Path(form).resolve()
            except (OSError, ValueError, RuntimeError):
                return True
            if any(target == folder or folder in target.parents for folder in self.private_folders):
                return True
        return False

    async def _bounded(self, scope, receive, upload: bool):
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope.get("headers", [])}
        limits = self.limits
        cap = limits.upload_request_bytes if upload else limits.request_bytes
        what = (f"An upload may hold {limits.upload_files} files of {limits.upload_file_bytes // MB} MB"
                if upload else f"A request may carry {limits.request_bytes // MB} MB; upload larger files through /gradio_api/upload (at most {limits.upload_file_bytes // MB} MB each)")
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > cap:
            raise _Refused(413, f"The request is too large ({int(length) / MB:.1f} MB). {what}.")
        if upload:  # the walk runs off the event loop
            left = await asyncio.to_thread(trim_folder, self.cache_folder, limits.cache_bytes, limits.cache_grace_s)
            if left > limits.cache_bytes:
                raise _Refused(507, "The studio's upload space is full right now; try again in a few minutes.")
        boundary = _boundary(headers.get("content-type", "")) if upload else None
        seen, parts, tail = 0, 0, b""

        async def counting_receive():
            nonlocal seen, parts, tail
            message = await receive()
            if message["type"] == "http.request":
                body = message.get("body", b"")
                seen += len(body)
                if seen > cap:
                    raise _Refused(413, f"The request is too large (over {cap / MB:.0f} MB). {what}.")
                if boundary:
                    window = tail + body
                    parts += window.count(boundary)
                    tail = window[-(len(boundary) - 1):] if len(boundary) > 1 else b""
                    if parts - 1 > limits.upload_files:  # the closing delimiter counts once more
                        raise _Refused(413, f"Too many files in one upload. {what}.")
            return message

        return counting_receive

    async def _note_cancel(self, receive):
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > 10_000:
                raise _Refused(413, "A cancel request is a small JSON object: session_hash, fn_index, event_id.")
        try:
            request = json.loads(body)
            if isinstance(request, dict) and isinstance(request.get("session_hash"), str) and isinstance(request.get("event_id"), str):
                self.runs.stop_event(request["session_hash"], request["event_id"])
        except (ValueError, RecursionError):
            pass  # Gradio answers a malformed cancel itself
        sent = False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        return replay

    async def _stream(self, scope, receive, send, session: str):
        """The event stream: a client that drops it mid-way stops its session's runs."""
        finished = False

        async def watching_receive():
            message = await receive()
            if message["type"] == "http.disconnect" and not finished and session:
                self.runs.stop_session(session)
            return message

        async def watching_send(message):
            nonlocal finished
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                finished = True
            await send(message)

        await self.app(scope, watching_receive, watching_send)


async def _answer(send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode("utf-8")
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _boundary(content_type: str) -> bytes | None:
    for part in content_type.split(";"):
        key, _, value = part.strip().partition("=")
        if key.lower() == "boundary" and value:
            return b"--" + value.strip('"').encode("latin-1")
    return None


# --- the cache ---------------------------------------------------------------------------------


def _files(folder: Path) -> list[tuple[float, int, Path]]:
    found = []
    for root, _, names in os.walk(folder):
        for name in names:
            path = Path(root) / name
            try:
                status = path.stat()
            except OSError:
                continue
            found.append((status.st_mtime, status.st_size, path))
    return found


def trim_folder(folder: str | os.PathLike, max_bytes: int, grace_s: float = 0.0) -> int:
    """Deletes the oldest files under ``folder`` until at most ``max_bytes`` remain, sparing files
    younger than ``grace_s`` seconds; returns the bytes left."""
    files = sorted(_files(Path(folder)))
    total = sum(size for _, size, _ in files)
    now = time.time()
    for mtime, size, path in files:
        if total <= max_bytes or now - mtime < grace_s:
            break
        try:
            path.unlink()
            total -= size
        except OSError:
            pass
    return total
