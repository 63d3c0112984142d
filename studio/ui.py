"""The studio's page (Gradio Blocks) and its public API.

Tabs: Create (any weighted mix → images, sounds or captions, with a contribution meter, seed
dice, steps, guidance, variants, step-by-step progress and Stop), Describe, Hear, Search,
Morph and History. Every action is also a public named API endpoint with a docstring
(``/text_to_image``, ``/image_to_audio``, ``/caption``, ``/mix``, ``/search``, ``/morph``,
``/replay``, ``/read_recipe``, ``/shares``, ``/history``); page-only helpers are private.

Handlers take and return plain values and call ``StudioService``; a ``ValueError`` becomes a
``gr.Error`` with the same (HTML-escaped) message, so bad input never stops the app.
"""

from __future__ import annotations

import contextlib
import functools
import html
import inspect
import os
import queue
import random
import secrets
import threading
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image, UnidentifiedImageError
from starlette.middleware import Middleware

from .api_docs import document_api
from .examples import Example
from .guard import Guard, Limits, is_visitor_token, new_visitor_token, signed_in_user, visitor_key
from .mcp import serve_media
from .refusals import LIMITS, guard_inputs, user_error
from .service import (
    MAX_FRAMES,
    MAX_GUIDANCE,
    MAX_HITS,
    MAX_SEED,
    MAX_STEPS,
    MAX_TEMPERATURE,
    MAX_VARIANTS,
    MAX_WEIGHT,
    OUTPUTS,
    Cancelled,
    Result,
    StudioService,
)

TITLE = "Fusion Studio"
INTRO = (
    "Mix a text, an image and a sound, each with a weight, and get images, sounds or captions. "
    "The meter shows how much each input shapes the result."
)
OUTPUT_CHOICES = ["image", "sound", "caption"]
CREATE_FIELDS = [
    "text", "text_weight", "image", "image_weight", "audio", "audio_weight", "output", "seed", "steps", "guidance", "variants", "best_first", "temperature",
    "use_image_prior",
]
MORPH_FIELDS = ["text_a", "image_a", "audio_a", "text_b", "image_b", "audio_b", "output", "frames", "seed", "steps", "use_image_prior"]
SNAP_INFO = "On: each image is a new drawing of the training picture nearest to the inputs (sharper). Off: of their blend (softer)."
DELETE_CACHE = (600, 3600)  # every 10 minutes, Gradio deletes cached uploads and results older than an hour
VISITOR_KEY = "fusion-studio-visitor"  # the browser's localStorage key of an anonymous visitor's token
PROGRESS = gr.Progress()  # gradio hands each call its own tracker in place of this default
GENERATE = "generate"  # the concurrency group of everything that runs the models
STOPPED = "<small>Stopped.</small>"
CSS = """
#progress .bar {height: 8px; background: #e5e7eb; border-radius: 4px; overflow: hidden}
#progress .bar > div {height: 100%; background: #6366f1; transition: width .2s}
.pixelated img {image-rendering: pixelated}
@media (max-width: 640px) {
  .tab-container button {padding: 0 6px !important}
  #create-actions {position: fixed; left: 0; right: 0; bottom: 0; z-index: 50; margin: 0; padding: 8px 16px;
                   background: var(--background-fill-primary); box-shadow: 0 -2px 8px rgba(0, 0, 0, .15)}
  #create-actions > button {min-width: 0 !important}
  #create-actions #stop {flex: 0 0 72px}
  .gradio-container {padding-bottom: 72px !important}
}
"""  # on a phone all six tabs fit, and Create and Stop stay at the bottom of the screen
# on a phone the results are below the inputs: Create scrolls down to the progress bar and what follows
SCROLL_TO_RESULTS = "() => { if (window.innerWidth <= 640) document.querySelector('#progress')?.scrollIntoView({behavior: 'smooth'}); }"
PIXELATED = ["pixelated"]  # small generated images are enlarged crisply (nearest neighbour), not blurred
MEDIA_HEIGHT = 240  # an upload's preview keeps this height instead of collapsing
# asked in the browser before the item goes; declining stops the event before it reaches the server
CONFIRM_DELETE = "(item, token) => { if (!confirm('Delete this item and its files for good?')) throw new Error('kept'); return [item, token]; }"
METER_NAMES = {"text": "text", "image": "image", "audio": "sound", "prior": "chance"}
EXAMPLE_PROMPTS = [["a red fire truck"], ["a yellow sun"], ["a cat"], ["a violin"], ["a green apple"]]


def SafeImage(**options) -> gr.Image:  # noqa: N802  (reads like the component it makes)
    """A ``gr.Image`` whose unreadable or oversized uploads become a clear ``gr.Error``.

    The instance's ``preprocess`` is wrapped rather than subclassed: a ``gr.Image`` subclass
    would make gradio write a ``.pyi`` stub beside this file.
    """
    options.setdefault("image_mode", None)  # hand the file over as uploaded: the studio checks its size before decoding a pixel
    image = gr.Image(**options)
    preprocess = image.preprocess

    def checked(payload):
        try:
            return preprocess(payload)
        except Image.DecompressionBombError as error:
            raise user_error("The image is too large to open safely; downscale it below 8000x8000 pixels.") from error
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
            raise user_error("Could not read the upload as an image; use a PNG, JPEG, GIF, BMP or WebP file.") from error

    image.preprocess = checked
    return image


def user_errors(fn):
    """Turns a ``ValueError`` from the studio (and a stopped run) into a ``gr.Error`` (generators too)."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def generator(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except ValueError as error:
                raise user_error(str(error)) from error
            except Cancelled as error:
                raise user_error("Stopped.") from error

        return generator

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ValueError as error:
            raise user_error(str(error)) from error
        except Cancelled as error:
            raise user_error("Stopped.") from error

    return wrapper


def progress_html(step: int, total: int, note: str = "", done: bool = False) -> str:
    """The progress bar; the last step says "finishing" until the result is there (a sound is still being vocoded)."""
    percent = 100 * step / max(total, 1)
    label = f"Done: {total} steps" if done else f"Step {step} of {total}" + (", finishing" if step >= total else "")
    return f'<div class="bar"><div style="width:{percent:.0f}%"></div></div><small>{label}{html.escape(note)}</small>'


def _snap(value):
    """The image-prior switch as sent: left out (None) means on; anything but true or false
    reaches the service, which says what to fix."""
    return True if value is None else value


def _weights(text_weight, image_weight, audio_weight) -> dict[str, float]:
    return {"text": text_weight, "image": image_weight, "audio": audio_weight}


def _recipe_summary(recipe: dict[str, Any]) -> str:
    output = {"audio": "sound"}.get(recipe.get("output"), recipe.get("output"))
    kind = "a morph of" if recipe.get("kind") == "interpolate" else "a"
    return f"{kind} {output} · seed {recipe.get('seed')} · {recipe.get('steps')} steps · guidance {recipe.get('guidance')}"


class StudioPage:
    """The page's handlers: each calls the service and returns plain values for the components."""

    def __init__(self, service: StudioService, public: bool = False):
        self.service = service
        self.public = public
        self.runs = service.runs
        self._tokens: dict[str, str] = {}  # page session → its browser's token, for events sent before the page stored it

    def visitor(self, request: gr.Request | None, token: Any = None) -> str | None:
        """Whose work this is. A local run has one user (``None``: the whole history); a public
        one keys each visitor's history by their Hugging Face sign-in, else by the token their
        browser keeps, else (an MCP client) by the bearer token it sends, else (an API client)
        by its session."""
        if not self.public:
            return None
        user = signed_in_user(request)
        if user:
            return visitor_key("user", user)
        session = getattr(request, "session_hash", None)
        token = token if is_visitor_token(token) else self._tokens.get(session or "")
        if token:
            return visitor_key("browser", token)
        if _header(request, "mcp-protocol-version"):  # an MCP client: Gradio's stateless MCP server calls the API alike for all of them
            bearer = _header(request, "authorization")  # the same token is the same visitor; without one, nothing stays listable
            return visitor_key("token", bearer) if bearer else visitor_key("call", secrets.token_hex(16))
        return visitor_key("session", session) if session else visitor_key("call", secrets.token_hex(16))

    @contextlib.contextmanager
    def running(self, request: gr.Request | None):
        """A stop flag for one run, set by Stop, an API cancel of its event or a dropped client."""
        session = _session(request)
        stop = self.runs.start(session, _event_id())
        try:
            yield stop
        finally:
            self.runs.finish(session, stop)

    # --- public endpoints ---------------------------------------------------------------------

    @user_errors
    def text_to_image(
        self, prompt: str, seed: float = 0, steps: float | None = None, guidance: float | None = None, variants: float = 1, best_first: bool = False,
        temperature: float | None = None, use_image_prior: bool = True, progress=PROGRESS, request: gr.Request = None,
    ):
        """Makes images from a text prompt.

        Args:
            prompt: what to draw, e.g. "a red fire truck".
            seed: fixes the randomness (variant i uses seed + i).
            steps: denoising steps (1 to 100; default: the studio's for the output).
            guidance: classifier-free guidance (0 to 20; default: the studio's for the output).
            variants: how many images (1 to 4).
            best_first: order the images by how well each matches the prompt, best first.
            temperature: variety, 0 to 2: each image's latent is drawn this many posterior standard deviations from the mean (default: the studio's).
            use_image_prior: images snap to the nearest training picture (sharper); false draws the blend of the inputs (softer).
        Returns:
            PNG files with their recipe inside, and the recipe.
        """
        with self.running(request) as stop:
            result = self.service.text_to_image(
                prompt, seed=seed, steps=steps, guidance=guidance, variants=variants, best_first=_switch(best_first), temperature=temperature,
                use_image_prior=_snap(use_image_prior), on_step=self._on_step(progress), visitor=self.visitor(request), stop=stop,
            )
        return [str(p) for p in result.files], result.recipe

    @user_errors
    def image_to_audio(
        self, image: str, seed: float = 0, steps: float | None = None, guidance: float | None = None, token: str | None = None, progress=PROGRESS,
        request: gr.Request = None,
    ):
        """Hears an image: makes a sound from it.

        Args:
            image: the image to hear (through MCP: an http(s) URL or a data: URI).
            seed: fixes the randomness.
            steps: denoising steps (1 to 100; default: the studio's for the output).
            guidance: classifier-free guidance (0 to 20; default: the studio's for the output).
        Returns:
            A WAV file with its recipe inside, and the recipe.
        """
        with self.running(request) as stop:
            result = self.service.image_to_audio(
                image, seed=seed, steps=steps, guidance=guidance, on_step=self._on_step(progress), visitor=self.visitor(request, token), stop=stop,
            )
        return str(result.files[0]), result.recipe

    @user_errors
    def caption(self, image: str | None = None, audio: str | None = None, token: str | None = None, request: gr.Request = None):
        """Describes an image, a sound or both in words.

        Args:
            image: an image to describe, optional if a sound is given (through MCP: an http(s) URL or a data: URI).
            audio: a sound to describe, optional if an image is given (through MCP: an http(s) URL or a data: URI).
        Returns:
            The caption and the recipe.
        """
        with self.running(request) as stop:
            result = self.service.describe(image=image, audio=audio, visitor=self.visitor(request, token), stop=stop)
        return "\n".join(result.captions), result.recipe

    @user_errors
    def mix(
        self,
        text: str | None = None,
        text_weight: float = 1.0,
        image: str | None = None,
        image_weight: float = 1.0,
        audio: str | None = None,
        audio_weight: float = 1.0,
        output: str = "image",
        seed: float = 0,
        steps: float | None = None,
        guidance: float | None = None,
        variants: float = 1,
        best_first: bool = False,
        temperature: float | None = None,
        use_image_prior: bool = True,
        progress=PROGRESS,
        request: gr.Request = None,
    ):
        """Fuses any weighted mix of text, image and sound and makes images, sounds or captions.

        Args:
            text: a prompt (empty: no text).
            text_weight: the text's weight (0 to 10; 0 leaves it out).
            image: an image, optional (through MCP: an http(s) URL or a data: URI).
            image_weight: the image's weight (0 to 10).
            audio: a sound, optional (through MCP: an http(s) URL or a data: URI).
            audio_weight: the sound's weight (0 to 10).
            output: "image", "sound" or "caption".
            seed: fixes the randomness (variant i uses seed + i).
            steps: denoising steps (1 to 100; default: the studio's for the output).
            guidance: classifier-free guidance (0 to 20; default: the studio's for the output).
            variants: how many outputs (1 to 4).
            best_first: order the outputs by how well each matches the inputs, best first.
            temperature: variety, 0 to 2: each output's latent is drawn this many posterior standard deviations from the mean (default: the studio's).
            use_image_prior: images snap to the nearest training picture (sharper); false draws the blend of the inputs (softer).
        Returns:
            Media files (PNG or WAV, each with its recipe inside), captions, each input's share of the fused latent, and the recipe.
        """
        with self.running(request) as stop:
            result = self.service.mix(
                text=text, image=image, audio=audio, weights=_weights(text_weight, image_weight, audio_weight), output=output,
                seed=seed, steps=steps, guidance=guidance, variants=variants, best_first=_switch(best_first), temperature=temperature,
                use_image_prior=_snap(use_image_prior), on_step=self._on_step(progress), visitor=self.visitor(request), stop=stop,
            )
        return [str(p) for p in result.files], result.captions, result.shares, result.recipe

    @user_errors
    def search(
        self, text: str | None = None, image: str | None = None, audio: str | None = None, k: float = 8, token: str | None = None, request: gr.Request = None,
    ):
        """Finds the examples and history items nearest to any mix of text, image and sound.

        Args:
            text: a text query (optional).
            image: an image query (optional).
            audio: a sound query (optional).
            k: how many results (1 to 24).
        Returns:
            The hits as a gallery, and as a list of dicts (key, source, caption, score, rank).
        """
        hits = self.service.search(text=text, image=image, audio=audio, k=k, visitor=self.visitor(request, token))
        gallery = [(hit["thumb"], f"{hit['caption']} · {hit['source']} · {hit['score']:.3f}") for hit in hits if hit.get("thumb")]
        table = [{key: hit.get(key) for key in ("key", "source", "caption", "score", "rank", "item")} for hit in hits]
        return gallery, table

    @user_errors
    def morph(
        self,
        text_a: str | None = None,
        image_a: str | None = None,
        audio_a: str | None = None,
        text_b: str | None = None,
        image_b: str | None = None,
        audio_b: str | None = None,
        output: str = "image",
        frames: float = 5,
        seed: float = 0,
        steps: float = 25,
        use_image_prior: bool = True,
        token: str | None = None,
        progress=PROGRESS,
        request: gr.Request = None,
    ):
        """Morphs between two mixes: an image strip, a sound sequence or a list of captions.

        Args:
            text_a: the first mix's text.
            image_a: the first mix's image.
            audio_a: the first mix's sound.
            text_b: the second mix's text.
            image_b: the second mix's image.
            audio_b: the second mix's sound.
            output: "image", "sound" or "caption".
            frames: how many steps along the way (2 to 8).
            seed: fixes the randomness (the same for every frame).
            steps: denoising steps (1 to 100).
            use_image_prior: each frame snaps to the nearest training picture, so the strip steps from picture to picture; false morphs the blend smoothly.
        Returns:
            The image strip, the sound sequence, the captions (one per line) and the recipe.
        """
        mix_a = {"text": text_a, "image": image_a, "audio": audio_a}
        mix_b = {"text": text_b, "image": image_b, "audio": audio_b}
        with self.running(request) as stop:
            result = self.service.morph(
                mix_a, mix_b, frames=frames, output=output, seed=seed, steps=steps, on_step=self._on_step(progress, "frames"),
                use_image_prior=_snap(use_image_prior), visitor=self.visitor(request, token), stop=stop,
            )
        images = [str(p) for p in result.files if p.suffix == ".png"]
        sounds = [str(p) for p in result.files if p.suffix == ".wav"]
        return images, (sounds[0] if sounds else None), "\n".join(result.captions), result.recipe

    @user_errors
    def replay(self, recipe: Any, image: str | None = None, audio: str | None = None, progress=PROGRESS, request: gr.Request = None):
        """Makes a recipe again: the same output, byte for byte, on the same machine.

        Args:
            recipe: the recipe (a JSON object or its text), e.g. from /read_recipe or a result.
            image: the image the recipe used, if the studio's history does not hold it.
            audio: the sound the recipe used, if the studio's history does not hold it.
        Returns:
            Media files (with their recipe inside), captions, and the recipe.
        """
        with self.running(request) as stop:
            result = self.service.replay(recipe, image=image, audio=audio, visitor=self.visitor(request), on_step=self._on_step(progress), stop=stop)
        return [str(p) for p in result.files], result.captions, result.recipe

    @user_errors
    def read_recipe(self, file: str | None):
        """Reads the recipe inside a PNG or WAV that the studio made.

        Args:
            file: a PNG or WAV made by the studio.
        Returns:
            The recipe.
        """
        if file is None:
            raise ValueError("Upload a PNG or WAV made by the studio.")
        return self.service.read_recipe(file)

    @user_errors
    def shares(self, text: str | None = None, text_weight: float = 1.0, image: str | None = None, image_weight: float = 1.0, audio: str | None = None, audio_weight: float = 1.0):
        """Each input's share of the fused latent (the contribution meter), and the prior's.

        Args:
            text: a prompt (optional).
            text_weight: the text's weight (0 to 10).
            image: an image (optional).
            image_weight: the image's weight (0 to 10).
            audio: a sound (optional).
            audio_weight: the sound's weight (0 to 10).
        Returns:
            A dict of input → share; with "prior" they sum to 1.
        """
        return self.service.shares(text=text, image=image, audio=audio, weights=_weights(text_weight, image_weight, audio_weight))

    @user_errors
    def history(self, limit: float = 20, request: gr.Request = None):
        """The newest items of the studio's history, each with its recipe.

        Args:
            limit: how many items (1 to 1000).
        Returns:
            A list of dicts: id, created, kind, output, captions, recipe.
        """
        return self.service.history_list(limit, visitor=self.visitor(request))

    # --- the Create tab ---------------------------------------------------------------------

    def default_guidance(self, output: str) -> float:
        """The studio's default guidance for what the page calls ``output`` (image, sound, caption)."""
        return self.service.default_guidance(OUTPUTS.get(output, "image"))

    @user_errors
    def create(self, text, text_weight, image, image_weight, audio, audio_weight, output, seed, steps, guidance, variants, best_first, temperature, use_image_prior,
               token, request: gr.Request):
        """Create with live progress: yields a progress bar per denoising step, then the results."""
        updates: queue.Queue = queue.Queue()
        visitor = self.visitor(request, token)
        session = _session(request)
        stop = self.runs.start(session, _event_id())

        def on_step(step, total, *preview):
            updates.put(("step", step, total, preview[0] if preview else None))

        def work():
            try:
                updates.put(("done", self.service.mix(
                    text=text, image=image, audio=audio, weights=_weights(text_weight, image_weight, audio_weight),
                    output=output, seed=seed, steps=steps, guidance=guidance, variants=variants, best_first=_switch(best_first), temperature=temperature,
                    use_image_prior=_snap(use_image_prior), on_step=on_step, visitor=visitor, stop=stop,
                )))
            except BaseException as error:  # handed to the page below
                updates.put(("error", error))
            finally:
                self.runs.finish(session, stop)

        threading.Thread(target=work, name="create", daemon=True).start()
        yield {self.c["progress"]: progress_html(0, _whole(steps), " (waiting for the studio)")}
        while True:
            kind, *payload = updates.get()
            if kind == "step":
                step, total, preview = payload
                update = {self.c["progress"]: progress_html(step, total)}
                if isinstance(preview, Image.Image):
                    update[self.c["preview"]] = gr.update(value=preview, visible=True)
                yield update
            elif kind == "error":
                if isinstance(payload[0], Cancelled):
                    yield {self.c["progress"]: STOPPED}
                    return
                yield {self.c["progress"]: "", self.c["preview"]: gr.update(visible=False)}  # no stale "Step 0 of 25" beside the error
                raise payload[0]
            else:
                yield self._show_result(payload[0])
                return

    def _show_result(self, result: Result) -> dict:
        c = self.c
        output = result.recipe.get("output")
        order = result.recipe.get("order") or list(range(len(result.files)))  # best_first reorders the variants
        images = [(str(p), f"variant {i + 1} · seed {result.recipe['seed'] + order[i]}") for i, p in enumerate(result.files) if p.suffix == ".png"]
        sounds = [str(p) for p in result.files if p.suffix == ".wav"]
        update = {
            c["progress"]: progress_html(result.recipe.get("steps", 1), result.recipe.get("steps", 1), done=True),
            c["preview"]: gr.update(visible=False),
            c["gallery"]: gr.update(value=images or None, visible=output == "image"),
            c["captions"]: gr.update(value="\n".join(result.captions), visible=output == "caption"),
            c["meter"]: _meter(result.shares),
            c["recipe"]: result.recipe,
        }
        for i, player in enumerate(c["sounds"]):
            update[player] = gr.update(value=sounds[i] if i < len(sounds) else None, visible=i < len(sounds))
        return update

    @staticmethod
    def _on_step(progress: gr.Progress, unit: str = "steps"):
        """Reports each step (or morph frame) to the progress bar (the service honours Stop)."""

        def on_step(step, total, *_):
            progress((step, total), desc="denoising" if unit == "steps" else "morphing", unit=unit)

        return on_step

    def stop(self, request: gr.Request) -> None:
        """Asks this user's running generations to stop at their next step."""
        self.runs.stop_session(_session(request))

    def forget(self, request: gr.Request) -> None:
        """The page was closed: stop its work and forget its session."""
        self.runs.stop_session(_session(request))
        self._tokens.pop(_session(request), None)

    def measure(self, text, text_weight, image, image_weight, audio, audio_weight):
        """The contribution meter for the current inputs (blank while they cannot be fused)."""
        try:
            return _meter(self.service.shares(text=text, image=image, audio=audio, weights=_weights(text_weight, image_weight, audio_weight)))
        except ValueError:
            return None

    @staticmethod
    def dice() -> int:
        return random.randrange(MAX_SEED)

    # --- recipes: restoring from a file or the history -------------------------------------

    def offer_recipe(self, file):
        """An uploaded file made by the studio: offer to restore its recipe."""
        if not file:
            return None, gr.update(visible=False), ""
        try:
            recipe = self.service.read_recipe(file)
        except ValueError:
            return None, gr.update(visible=False), ""
        return recipe, gr.update(visible=True), f"This file was made by the studio: {_recipe_summary(recipe)}."

    @user_errors
    def restore(self, recipe, token=None, request: gr.Request = None):
        """Loads a recipe into Create (or Morph) and switches to that tab."""
        if not recipe:
            raise ValueError("There is no recipe to restore.")
        fields = self.service.recipe_fields(recipe, visitor=self.visitor(request, token))
        return self._fill(fields)

    def _fill(self, fields: dict[str, Any]) -> dict:
        c, note = self.c, fields["note"] or "Recipe restored."
        common = {c["restore_row"]: gr.update(visible=False), c["restore_note"]: note}
        if fields["kind"] == "interpolate":
            m = self.m
            return {
                **common, c["tabs"]: gr.Tabs(selected="morph"),
                m["text_a"]: fields["text_a"], m["image_a"]: _path(fields["image_a"]), m["audio_a"]: _path(fields["audio_a"]),
                m["text_b"]: fields["text_b"], m["image_b"]: _path(fields["image_b"]), m["audio_b"]: _path(fields["audio_b"]),
                m["output"]: fields["output"], m["frames"]: fields["frames"], m["seed"]: fields["seed"], m["steps"]: fields["steps"],
                m["use_image_prior"]: fields["use_image_prior"],
            }
        weights = fields["weights"]
        return {
            **common, c["tabs"]: gr.Tabs(selected="create"),
            c["text"]: fields["text"], c["text_weight"]: weights["text"],
            c["image"]: _path(fields["image"]), c["image_weight"]: weights["image"],
            c["audio"]: _path(fields["audio"]), c["audio_weight"]: weights["audio"],
            c["output"]: fields["output"], c["seed"]: fields["seed"], c["steps"]: fields["steps"],
            c["guidance"]: fields["guidance"], c["variants"]: fields["variants"], c["best_first"]: fields["best_first"],
            c["temperature"]: fields["temperature"], c["use_image_prior"]: fields["use_image_prior"],
        }

    # --- the History tab ---------------------------------------------------------------------

    def welcome(self, token, request: gr.Request = None):
        """The page opened: the browser's visitor token (a new one the first time), its history,
        and a random seed for Create (the recipe keeps whichever seed is used)."""
        token = token if is_visitor_token(token) else new_visitor_token()
        session = getattr(request, "session_hash", None)
        if self.public and session:
            self._tokens[session] = token
        return (token, *self.history_gallery(token, request), self.dice())

    def history_gallery(self, token=None, request: gr.Request = None):
        """Thumbnails of this visitor's newest items and their ids."""
        history, visitor = self.service.history, self.visitor(request, token)
        items = history.items(limit=60, owner=visitor)
        gallery = []
        for item in items:
            if "thumb.png" in item.files:
                gallery.append((str(item.path("thumb.png")), _item_label(item)))
        ids = [item.id for item in items if "thumb.png" in item.files]
        if visitor is None:
            where = f" in `{history.folder}`"
            cap = f"cap: {history.max_items} items, {history.max_bytes / 1e6:.0f} MB"
        else:  # a public studio never shows a server path, and counts only the visitor's own items
            where = ", private to you" + (" (sign in to keep it across devices)" if visitor.startswith("browser:") else "")
            cap = f"cap: {history.max_items_per_owner} items, {history.max_bytes_per_owner / 1e6:.0f} MB"
        count = len(history.items(owner=visitor))
        info = f"{count} items, {history.total_bytes_of(visitor) / 1e6:.1f} MB{where} ({cap}; oldest go first)."
        return gallery, ids, info

    def select_item(self, ids: list[str], token, event: gr.SelectData, request: gr.Request = None):
        """Shows the selected history item: its recipe, files and captions."""
        try:
            item = self.service.history.get(ids[event.index], owner=self.visitor(request, token))
        except (ValueError, IndexError, TypeError, KeyError):
            return None, "That item is gone; refresh the history.", None, None, ""
        details = f"**{_item_label(item)}** · {item.created} · {_recipe_summary(item.recipe)}"
        files = [str(p) for p in item.outputs] + [str(p) for p in self.service.item_media(item).values()]
        captions = "\n".join(item.meta.get("captions", []))
        return item.id, details, item.recipe, files or None, captions

    @user_errors
    def load_item(self, item_id: str | None, token=None, request: gr.Request = None):
        """Loads the selected item's recipe (and its saved inputs) back into Create or Morph."""
        if not item_id:
            raise ValueError("Select an item of the history first.")
        visitor = self.visitor(request, token)
        item = self.service.history.get(item_id, owner=visitor)
        fields = self.service.recipe_fields(item.recipe, visitor=visitor)
        for role, path in self.service.item_media(item).items():  # the item's own inputs, even if hashed alike elsewhere
            fields[role.replace("-", "_")] = path
        if not all(path.is_file() for path in self.service.item_media(item).values()):
            raise ValueError("That item is gone; refresh the history.")  # deleted since it was selected
        fields["note"] = ""
        return self._fill(fields)

    @user_errors
    def delete_item(self, item_id: str | None, token=None, request: gr.Request = None):
        if not item_id:
            raise ValueError("Select an item of the history first.")
        self.service.history.delete(item_id, owner=self.visitor(request, token))
        return None


def _morph_panels(output: str):
    """Morph shows the panel of what it makes: the image strip, the sound sequence or the captions."""
    return gr.update(visible=output == "image"), gr.update(visible=output == "sound"), gr.update(visible=output == "caption")


def _meter(shares: dict[str, float]) -> dict[str, float]:
    """Each input's share in plain words: text, image, sound, and chance (the prior's share)."""
    return {METER_NAMES.get(name, name): float(share) for name, share in shares.items()}


def _path(path) -> str | None:
    return str(path) if path else None


def _session(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or "anonymous"


def _header(request: gr.Request | None, name: str) -> str | None:
    try:
        value = request.headers.get(name) if request is not None else None
    except AttributeError:
        return None
    return value if isinstance(value, str) and value else None


def _event_id() -> str | None:
    """The Gradio event being processed (what an API cancel names), if any."""
    from gradio.context import LocalContext

    return LocalContext.event_id.get(None)


def _switch(value):
    """A checkbox as sent: left out (None) means off; anything but true or false reaches the service, which says what to fix."""
    return False if value is None else value


def _whole(steps) -> int:
    return int(steps) if isinstance(steps, (int, float)) and not isinstance(steps, bool) and 1 <= steps <= MAX_STEPS else 1


def _item_label(item) -> str:
    captions = item.meta.get("captions") or []
    if captions:
        return captions[0][:40]
    recipe = item.recipe
    inputs = recipe.get("inputs") or recipe.get("mix_a", {}).get("inputs", {})
    output = {"audio": "sound"}.get(item.meta.get("output"), item.meta.get("output"))
    if recipe.get("kind") == "interpolate":
        output = f"{output} morph"
    if inputs.get("text"):
        return f"{output}: {inputs['text'][:32]}"
    media = [name for key, name in (("image_sha256", "an image"), ("audio_sha256", "a sound")) if key in inputs]
    return f"{output} from {' and '.join(media)}" if media else str(output)


# --- layout ----------------------------------------------------------------------------------


def build_ui(service: StudioService, concurrency_limit: int = 1, public: bool = False, secret: str | None = None) -> gr.Blocks:
    """The studio's page and API for ``service``; generation runs ``concurrency_limit`` at a time.

    ``public`` (a shared Space) keeps each visitor's history private: by their Hugging Face
    sign-in where the Space has one, else by a token kept in their browser (encrypted with
    ``secret``, default ``$FUSION_STUDIO_SECRET`` or one kept in the history folder), else by
    their API session.
    """
    page = StudioPage(service, public=public)
    steps, guidance = service.default_steps("image"), service.default_guidance("image")
    run = {"concurrency_limit": concurrency_limit, "concurrency_id": GENERATE}
    private = {"api_visibility": "private"}
    with gr.Blocks(title=TITLE, delete_cache=DELETE_CACHE) as demo:
        gr.Markdown(f"# {TITLE}\n{INTRO}")
        visitor = gr.BrowserState(None, storage_key=VISITOR_KEY, secret=secret or browser_secret(service.history.folder))
        if public and os.environ.get("OAUTH_CLIENT_ID") and os.environ.get("SPACE_ID"):  # a Space with hf_oauth: signing in keeps the history across devices
            gr.LoginButton()
        if not service.is_trained:
            gr.Markdown("*These weights are not trained yet: outputs are noise, but every control works.*")
        with gr.Tabs() as tabs:
            c = page.c = {"tabs": tabs}
            with gr.Tab("Create", id="create"):
                _create_tab(c, steps, guidance, service.default_temperature("image"))
            with gr.Tab("Describe", id="describe"):
                d = _describe_tab(service.examples)
            with gr.Tab("Hear", id="hear"):
                h = _hear_tab(service.default_steps("audio"), service.default_guidance("audio"), service.examples)
            with gr.Tab("Search", id="search"):
                s = _search_tab()
            with gr.Tab("Morph", id="morph"):
                m = page.m = _morph_tab(steps)
            with gr.Tab("History", id="history"):
                hist = _history_tab()
        api = _api_components(steps, guidance, service.default_temperature("image"))
        document_api(api, d, h, s, m)

        history_outputs = [hist["gallery"], hist["ids"], hist["info"]]

        def then_refresh(event):
            return event.then(page.history_gallery, visitor, history_outputs, **private, show_progress="hidden")

        # Create
        inputs = [c[k] for k in CREATE_FIELDS]
        outputs = [c[k] for k in ("progress", "preview", "gallery", "captions", "meter", "recipe")] + c["sounds"]
        c["create"].click(None, js=SCROLL_TO_RESULTS, queue=False)
        create = _stoppable(c["create"], c["stop"], page.stop, lambda: c["create"].click(
            page.create, inputs + [visitor], outputs, **private, **run, show_progress="minimal"), c["progress"])
        then_refresh(create)
        c["dice"].click(page.dice, None, c["seed"], queue=False, **private)
        c["output"].input(page.default_guidance, c["output"], c["guidance"], queue=False, **private)  # each output's own default
        meter_inputs = inputs[:6]
        gr.on(
            [c["text"].blur, c["text"].submit, c["image"].change, c["audio"].change]
            + [c[k].release for k in ("text_weight", "image_weight", "audio_weight")],
            page.measure, meter_inputs, c["meter"], **private, trigger_mode="always_last", show_progress="hidden",
            concurrency_id="meter", concurrency_limit=1,
        )
        for source in (c["image"], c["audio"], c["restore_file"]):
            source.upload(page.offer_recipe, source, [c["pending"], c["restore_row"], c["restore_message"]], **private, show_progress="hidden")
        restore_outputs = [c["tabs"], c["restore_row"], c["restore_note"]] + [c[k] for k in CREATE_FIELDS] + [m[k] for k in MORPH_FIELDS]
        c["restore"].click(page.restore, [c["pending"], visitor], restore_outputs, **private)

        # Describe, Hear, Search, Morph: the tabs' buttons (private: they carry the visitor's
        # token) and the same actions as public endpoints
        describe_io = ([d["image"], d["audio"]], [d["captions"], d["recipe"]])
        gr.on([], page.caption, *describe_io, api_name="caption", **run)
        then_refresh(d["button"].click(page.caption, describe_io[0] + [visitor], describe_io[1], **private, **run))
        hear_io = ([h["image"], h["seed"], h["steps"], h["guidance"]], [h["sound"], h["recipe"]])
        gr.on([], page.image_to_audio, *hear_io, api_name="image_to_audio", **run)
        hear = _stoppable(h["button"], h["stop"], page.stop, lambda: h["button"].click(page.image_to_audio, hear_io[0] + [visitor], hear_io[1], **private, **run))
        then_refresh(hear)
        search = {"concurrency_id": "search", "concurrency_limit": concurrency_limit}
        search_io = ([s["text"], s["image"], s["audio"], s["k"]], [s["gallery"], s["hits"]])
        gr.on([], page.search, *search_io, api_name="search", **search)
        s["button"].click(page.search, search_io[0] + [visitor], search_io[1], **private, **search)
        morph_io = ([m[k] for k in MORPH_FIELDS], [m["gallery"], m["sound"], m["captions"], m["recipe"]])
        gr.on([], page.morph, *morph_io, api_name="morph", **run)
        morph = _stoppable(m["button"], m["stop"], page.stop, lambda: m["button"].click(page.morph, morph_io[0] + [visitor], morph_io[1], **private, **run))
        then_refresh(morph)  # a morph stops between frames

        # History
        demo.load(page.welcome, visitor, [visitor] + history_outputs + [c["seed"]], **private)
        m["output"].change(_morph_panels, m["output"], [m["gallery"], m["sound"], m["captions"]], queue=False, **private)
        hist["refresh"].click(page.history_gallery, visitor, history_outputs, **private)
        hist["gallery"].select(page.select_item, [hist["ids"], visitor], [hist["selected"], hist["details"], hist["recipe"], hist["files"], hist["captions"]], **private)
        hist["load"].click(page.load_item, [hist["selected"], visitor], restore_outputs, **private)
        then_refresh(hist["delete"].click(page.delete_item, [hist["selected"], visitor], hist["selected"], js=CONFIRM_DELETE, **private))
        demo.unload(page.forget)

        # API-only endpoints (the page reaches the same actions through its tabs)
        a = api
        gr.on([], page.text_to_image, [a["text"], a["seed"], a["steps"], a["guidance"], a["variants"], a["best_first"], a["temperature"], a["use_image_prior"]], [a["files"], a["recipe"]], api_name="text_to_image", **run)
        gr.on([], page.mix, [a["text"], a["text_weight"], a["image"], a["image_weight"], a["audio"], a["audio_weight"], a["output"], a["seed"], a["steps"], a["guidance"], a["variants"], a["best_first"], a["temperature"],
                            a["use_image_prior"]], [a["files"], a["captions"], a["shares"], a["recipe"]], api_name="mix", **run)
        gr.on([], page.replay, [a["recipe_in"], a["image"], a["audio"]], [a["files"], a["captions"], a["recipe"]], api_name="replay", **run)
        gr.on([], page.read_recipe, [a["file"]], [a["recipe"]], api_name="read_recipe", queue=False)
        gr.on([], page.shares, [a["text"], a["text_weight"], a["image"], a["image_weight"], a["audio"], a["audio_weight"]], [a["shares"]], api_name="shares", concurrency_id="meter", concurrency_limit=1)
        gr.on([], page.history, [a["limit"]], [a["history"]], api_name="history", queue=False)
    guard_inputs(demo)
    serve_media()  # MCP tools answer with the images and sounds themselves
    return demo


def _stoppable(start: gr.Button, stop: gr.Button, stop_run, start_run, progress: gr.HTML | None = None) -> gr.events.Dependency:
    """Wires ``start_run()`` (the event ``start`` runs) to ``stop``, a button built disabled: it
    is enabled when ``start`` is clicked and disabled when the run ends, whether it finished,
    failed or was stopped; clicking it cancels the run (and says so in ``progress``). Returns
    the run's event.

    The switching happens in the browser, and is wired before the run: the page handles one
    click's events in the order they were added, each after the one before."""
    def switch(enabled: bool) -> str:
        return f"() => {{ const button = document.getElementById('{stop.elem_id}'); if (button) button.disabled = {str(not enabled).lower()}; }}"

    start.click(None, js=switch(True), queue=False)
    run = start_run()
    run.then(None, js=switch(False), queue=False)
    stopped = stop.click(stop_run, None, None, cancels=[run], queue=False, show_progress="hidden", api_visibility="private")
    stopped.then(None, js=switch(False), queue=False)
    if progress is not None:
        stopped.then(lambda: STOPPED, None, progress, queue=False, show_progress="hidden", api_visibility="private")
    return run


def _weight(label: str) -> gr.Slider:
    return gr.Slider(0, MAX_WEIGHT, value=1, step=0.05, label=label)


def _settings(steps: int, guidance: float, seed_with_dice: bool = True) -> dict[str, Any]:
    parts: dict[str, Any] = {}
    with gr.Row(equal_height=True):
        parts["seed"] = gr.Number(0, label="Seed", minimum=0, maximum=MAX_SEED, step=1, scale=3)  # no precision: 0.5 is refused, not rounded
        if seed_with_dice:
            parts["dice"] = gr.Button("🎲 Roll", scale=0, min_width=80, elem_id="dice")
    parts["steps"] = gr.Slider(1, MAX_STEPS, value=steps, step=1, label="Steps")
    parts["guidance"] = gr.Slider(0, MAX_GUIDANCE, value=guidance, step=0.1, label="Guidance")
    return parts


def _create_tab(c: dict, steps: int, guidance: float, temperature: float) -> None:
    with gr.Row():
        with gr.Column():
            c["text"] = gr.Textbox(label="Text", placeholder="a red fire truck", elem_id="create-text")
            gr.Examples(EXAMPLE_PROMPTS, inputs=c["text"], label="Try a prompt")
            c["text_weight"] = _weight("Text weight")
            c["image"] = SafeImage(label="Image", type="filepath", elem_id="create-image", height=MEDIA_HEIGHT)
            c["image_weight"] = _weight("Image weight")
            c["audio"] = gr.Audio(label="Sound", type="filepath", format=None, elem_id="create-audio")
            c["audio_weight"] = _weight("Sound weight")
            with gr.Row(visible=False) as c["restore_row"]:
                c["restore_message"] = gr.Markdown("This file was made by the studio.")
                c["restore"] = gr.Button("Restore its recipe", variant="secondary", elem_id="restore")
            c["restore_note"] = gr.Markdown()
            c["pending"] = gr.State(None)
            with gr.Accordion("Restore a recipe from a generated PNG or WAV", open=False):
                c["restore_file"] = gr.File(label="A PNG or WAV made by the studio", file_types=[".png", ".wav"], type="filepath")
        with gr.Column():
            c["output"] = gr.Radio(OUTPUT_CHOICES, value="image", label="Make", elem_id="create-output")
            c.update(_settings(steps, guidance))
            c["variants"] = gr.Slider(1, MAX_VARIANTS, value=1, step=1, label="Variants")
            c["best_first"] = gr.Checkbox(False, label="Best first", info="Order the variants by how well each matches the inputs")
            c["temperature"] = gr.Slider(0, MAX_TEMPERATURE, value=temperature, step=0.05, label="Variety",
                                         info="0: every variant from the inputs' fused mean; higher: variants drawn further from it")
            c["use_image_prior"] = gr.Checkbox(True, label="Snap to training pictures", info=SNAP_INFO)
            with gr.Row(elem_id="create-actions"):
                c["create"] = gr.Button("Create", variant="primary", elem_id="create")
                c["stop"] = gr.Button("Stop", variant="secondary", size="sm", scale=0, elem_id="stop", interactive=False)
            c["progress"] = gr.HTML(elem_id="progress")
            c["preview"] = gr.Image(label="Live preview", visible=False, interactive=False, height=MEDIA_HEIGHT, elem_classes=PIXELATED)
            c["meter"] = gr.Label(label="How much each input shapes the result (chance: what no input decides)", show_heading=False, elem_id="meter")
            c["gallery"] = gr.Gallery(label="Images (128x128, enlarged without blur)", columns=2, height=340, object_fit="contain", format="png", elem_id="create-gallery",
                                      interactive=False, elem_classes=PIXELATED)
            c["sounds"] = [gr.Audio(label=f"Sound {i + 1}", visible=False, interactive=False) for i in range(MAX_VARIANTS)]
            c["captions"] = gr.Textbox(label="Captions", visible=False, lines=2, interactive=False)
            with gr.Accordion("Recipe", open=False):
                c["recipe"] = gr.JSON(label="Recipe")


def _try_examples(component, examples: list[Example], kind: str) -> None:
    """The bundled examples' pictures or sounds, one click from ``component``."""
    if examples:
        files = [[str(example.image if kind == "image" else example.audio)] for example in examples]
        gr.Examples(files, inputs=component, label=f"Try a {'picture' if kind == 'image' else 'sound'}", examples_per_page=len(files))


def _describe_tab(examples: list[Example]) -> dict:
    d: dict[str, Any] = {}
    with gr.Row():
        with gr.Column():
            d["image"] = SafeImage(label="Image", type="filepath", elem_id="describe-image", height=MEDIA_HEIGHT)
            _try_examples(d["image"], examples, "image")
            d["audio"] = gr.Audio(label="Sound", type="filepath", format=None)
            _try_examples(d["audio"], examples, "audio")
            d["button"] = gr.Button("Describe", variant="primary", elem_id="describe")
        with gr.Column():
            d["captions"] = gr.Textbox(label="Caption", lines=2, interactive=False, elem_id="describe-caption")
            with gr.Accordion("Recipe", open=False):
                d["recipe"] = gr.JSON(label="Recipe")
    return d


def _hear_tab(steps: int, guidance: float, examples: list[Example]) -> dict:
    h: dict[str, Any] = {}
    with gr.Row():
        with gr.Column():
            h["image"] = SafeImage(label="Image", type="filepath", elem_id="hear-image", height=MEDIA_HEIGHT)
            _try_examples(h["image"], examples, "image")
            h.update(_settings(steps, guidance, seed_with_dice=False))
            with gr.Row():
                h["button"] = gr.Button("Hear", variant="primary", elem_id="hear")
                h["stop"] = gr.Button("Stop", variant="secondary", size="sm", scale=0, elem_id="hear-stop", interactive=False)
        with gr.Column():
            h["sound"] = gr.Audio(label="Sound", interactive=False, elem_id="hear-sound")
            with gr.Accordion("Recipe", open=False):
                h["recipe"] = gr.JSON(label="Recipe")
    return h


def _search_tab() -> dict:
    s: dict[str, Any] = {}
    gr.Markdown("Search the bundled examples and your history with any mix of text, image and sound.")
    with gr.Row():
        with gr.Column():
            s["text"] = gr.Textbox(label="Text", placeholder="a red apple")
            s["image"] = SafeImage(label="Image", type="filepath", height=MEDIA_HEIGHT)
            s["audio"] = gr.Audio(label="Sound", type="filepath", format=None)
            s["k"] = gr.Slider(1, MAX_HITS, value=8, step=1, label="Results")
            s["button"] = gr.Button("Search", variant="primary", elem_id="search")
        with gr.Column():
            s["gallery"] = gr.Gallery(label="Nearest", columns=4, interactive=False)
            with gr.Accordion("Scores", open=False):
                s["hits"] = gr.JSON(label="Hits")
    return s


def _morph_tab(steps: int) -> dict:
    m: dict[str, Any] = {}
    with gr.Row():
        for side in ("a", "b"):
            with gr.Column():
                gr.Markdown(f"### Mix {side.upper()}")
                m[f"text_{side}"] = gr.Textbox(label="Text")
                m[f"image_{side}"] = SafeImage(label="Image", type="filepath", height=MEDIA_HEIGHT)
                m[f"audio_{side}"] = gr.Audio(label="Sound", type="filepath", format=None)
        with gr.Column():
            m["output"] = gr.Radio(OUTPUT_CHOICES, value="image", label="Make")
            m["frames"] = gr.Slider(2, MAX_FRAMES, value=5, step=1, label="Frames")
            m["seed"] = gr.Number(0, label="Seed", minimum=0, maximum=MAX_SEED, step=1)
            m["steps"] = gr.Slider(1, MAX_STEPS, value=steps, step=1, label="Steps")
            m["use_image_prior"] = gr.Checkbox(True, label="Snap to training pictures", info=SNAP_INFO)
            with gr.Row():
                m["button"] = gr.Button("Morph", variant="primary", elem_id="morph")
                m["stop"] = gr.Button("Stop", variant="secondary", size="sm", scale=0, elem_id="morph-stop", interactive=False)
    m["gallery"] = gr.Gallery(label="Image strip", columns=MAX_FRAMES, interactive=False, elem_classes=PIXELATED)
    m["sound"] = gr.Audio(label="Sound sequence", interactive=False, visible=False)
    m["captions"] = gr.Textbox(label="Captions", lines=3, interactive=False, visible=False)
    with gr.Accordion("Recipe", open=False):
        m["recipe"] = gr.JSON(label="Recipe")
    return m


def _history_tab() -> dict:
    hist: dict[str, Any] = {}
    hist["info"] = gr.Markdown()
    hist["refresh"] = gr.Button("Refresh", size="sm")
    hist["gallery"] = gr.Gallery(label="History (newest first)", columns=6, allow_preview=False, interactive=False, elem_id="history-gallery")
    hist["ids"] = gr.State([])
    hist["selected"] = gr.State(None)
    hist["details"] = gr.Markdown()
    with gr.Row():
        hist["load"] = gr.Button("Load into Create", variant="primary", elem_id="history-load")
        hist["delete"] = gr.Button("Delete", variant="stop", elem_id="history-delete")
    hist["captions"] = gr.Textbox(label="Captions", interactive=False)
    hist["files"] = gr.File(label="Download", file_count="multiple", interactive=False, elem_id="history-files")
    hist["recipe"] = gr.JSON(label="Recipe")
    return hist


def _api_components(steps: int, guidance: float, temperature: float) -> dict:
    """Hidden inputs and outputs of the API-only endpoints."""
    a: dict[str, Any] = {}
    with gr.Column(visible=False):
        a["text"] = gr.Textbox(label="text")
        for name in ("text_weight", "image_weight", "audio_weight"):
            a[name] = gr.Number(1.0, label=name)
        a["image"] = SafeImage(label="image", type="filepath")
        a["audio"] = gr.Audio(label="audio", type="filepath", format=None)
        a["output"] = gr.Textbox("image", label="output")
        a["seed"] = gr.Number(0, label="seed")
        a["steps"] = gr.Number(steps, label="steps")
        a["guidance"] = gr.Number(guidance, label="guidance")
        a["variants"] = gr.Number(1, label="variants")
        a["best_first"] = gr.Checkbox(False, label="best_first")
        a["temperature"] = gr.Number(temperature, label="temperature")
        a["use_image_prior"] = gr.Checkbox(True, label="use_image_prior")
        a["limit"] = gr.Number(20, label="limit")
        a["recipe_in"] = gr.JSON(label="recipe")
        # Gradio describes a JSON input as {"type": {}}, which no JSON Schema validator accepts
        a["recipe_in"].api_info = lambda: {"type": "object", "additionalProperties": True, "description": "a studio recipe (a JSON object)"}
        a["file"] = gr.File(label="file", type="filepath")
        a["files"] = gr.File(label="files", file_count="multiple")
        a["captions"] = gr.JSON(label="captions")
        a["shares"] = gr.JSON(label="shares")
        a["recipe"] = gr.JSON(label="recipe")
        a["history"] = gr.JSON(label="history")
    return a


def launch_options(service: StudioService, public: bool = False, limits: Limits = LIMITS) -> dict[str, Any]:
    """``Blocks.launch`` settings the studio needs: no SSR (an advisory bites gradio 6.27 to 6.31
    with it), an upload size cap, results handed out only through Gradio's cache, and the
    ``Guard`` middleware (bounded requests, uploads and cache; API cancels; in a ``public``
    studio no file of the history served by URL)."""
    from gradio.utils import get_upload_folder

    folder = str(service.history.folder)
    guard = Middleware(Guard, runs=service.runs, limits=limits, private_folders=[folder] if public else [], cache_folder=get_upload_folder())
    return {
        "ssr_mode": False,
        "max_file_size": limits.upload_file_bytes,
        "allowed_paths": [folder],  # so results can be copied into the cache; the Guard keeps the folder itself private
        "css": CSS,
        "app_kwargs": {"middleware": [guard]},
    }


def browser_secret(folder: str | os.PathLike) -> str:
    """The key that encrypts visitors' tokens in their browsers: ``$FUSION_STUDIO_SECRET``, else
    one made once and kept (readable by this user only) beside the history, so tokens outlive restarts."""
    if os.environ.get("FUSION_STUDIO_SECRET"):
        return os.environ["FUSION_STUDIO_SECRET"]
    path = Path(folder) / ".browser-secret"
    try:
        return path.read_text("ascii").strip()
    except (OSError, UnicodeDecodeError):
        pass
    secret = secrets.token_urlsafe(32)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secret)
    except FileExistsError:
        return path.read_text("ascii").strip()
    except OSError:
        pass  # a read-only folder: tokens then last until the studio restarts
    return secret
