"""What the page and the API do, as plain Python: the studio, its history and its search gallery.

``StudioService`` wraps the ``core.Studio`` facade. Each action checks its input (raising a
``ValueError`` that says what to fix), calls the facade under one lock (the models are shared
by every user; the queue's concurrency limit decides how many wait), writes the result to the
history with its recipe inside every PNG and WAV, and returns plain values: file paths,
strings and dicts. Nothing here imports gradio or touches a tensor.
"""

from __future__ import annotations

import atexit
import io
import json
import logging
import math
import numbers
import queue
import re
import threading
import unicodedata
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .examples import Example, load_examples
from .guard import Runs
from .history import History, HistoryItem
from .media import caption_card, join_sounds, thumbnail, waveform_thumbnail
from .recipes import MAX_RECIPE_CHARS, png_with_recipe, read_recipe, recipe_json, wav_with_recipe

log = logging.getLogger(__name__)
_STOP = object()  # tells the indexer to end
_INDEXING: weakref.WeakSet = weakref.WeakSet()  # services that started an indexer, stopped at exit

OUTPUTS = {"image": "image", "sound": "audio", "caption": "caption"}  # what the page says → the facade's name
MAX_WEIGHT = 10.0
MAX_STEPS = 100
MAX_GUIDANCE = 20.0
MAX_TEMPERATURE = 2.0
MAX_VARIANTS = 4
MAX_FRAMES = 8
MAX_SEED = 2**31 - 17
MAX_HITS = 24
MAX_TEXT_CHARS = 1000  # a prompt; its recipe then fits well inside MAX_RECIPE_CHARS
MAX_RECIPE_DEPTH = 6  # a morph's recipe nests 4 deep (recipe → mix_a → inputs → text)
StepCallback = Callable[..., None]


def _index_forever(service_ref: weakref.ref, jobs: queue.Queue) -> None:
    """The indexer thread: takes jobs until told to stop or its service is gone."""
    while True:
        job = jobs.get()
        service = service_ref()
        if job is _STOP or service is None:
            return
        service._index_one(job)
        del service  # hold the service only while a job runs


@atexit.register
def _stop_indexers() -> None:
    for service in list(_INDEXING):
        service.stop_indexing()


class Cancelled(Exception):
    """Raised inside a generation when its user pressed Stop."""


@dataclass
class Result:
    """What one action made: media files (each with its recipe inside), captions, recipe, shares."""

    files: list[Path]
    captions: list[str]
    recipe: dict[str, Any]
    shares: dict[str, float]
    item: HistoryItem


class StudioService:
    """The studio, its history and its search gallery behind plain-value methods."""

    def __init__(self, studio, history: History, examples: list[Example] | None = None, index_history: int = 200):
        self.studio = studio
        self.history = history
        self.examples = load_examples() if examples is None else examples
        self.lock = threading.RLock()  # one request into the studio at a time (its calls run on its model thread)
        self.gallery: dict[str, dict[str, Any]] = {}  # search key → what to show for it
        self.examples_ready = threading.Event()
        self._index_queue: queue.Queue = queue.Queue()
        self._index_history = index_history
        self._indexer: threading.Thread | None = None
        self._closing = threading.Event()
        self.runs = Runs()  # stop flags of running generations (the page's Stop, API cancels, dropped clients)

    # --- defaults -----------------------------------------------------------------------------

    def default_steps(self, output: str = "image") -> int:
        return int(self.studio.pipeline.config.default_steps.get(output, 25))

    def default_guidance(self, output: str = "image") -> float:
        return float(self.studio.pipeline.config.default_guidance.get(output, 3.0))

    def default_temperature(self, output: str = "image") -> float:
        return float(self.studio.pipeline.resolve_temperature(output, None))

    @property
    def is_trained(self) -> bool:
        return bool(self.studio.is_trained)

    # --- creating -----------------------------------------------------------------------------

    def mix(
        self,
        text: str | None = None,
        image: Any = None,
        audio: Any = None,
        weights: dict[str, float] | None = None,
        output: str = "image",
        seed: Any = 0,
        steps: Any = None,
        guidance: Any = None,
        variants: Any = 1,
        on_step: StepCallback | None = None,
        best_first: Any = False,
        temperature: Any = None,
        use_image_prior: Any = True,
        visitor: str | None = None,
        stop: threading.Event | None = None,
        scheduler: Any = None,
        caption_method: Any = "beam",
    ) -> Result:
        """Any weighted mix of text, image and sound → ``variants`` images, sounds or captions;
        with ``best_first``, ordered by how well each matches the inputs; ``temperature`` (0 to 2,
        default the studio's) draws each variant's latent from the fused posterior;
        ``use_image_prior=False`` draws images from the blend of the inputs rather than snapping
        them to the nearest training picture.

        ``visitor`` owns the result in the history (``None``: everyone's, as in a local run).
        Setting ``stop`` ends the run at its next step, and nothing is saved.
        ``scheduler`` and ``caption_method`` come from recipes (see ``replay``).
        """
        target = check_output(output)
        text = check_text(text)
        weights = check_weights(weights)
        seed = check_int(seed, "seed", 0, MAX_SEED)
        steps = self.default_steps(target) if steps is None else check_int(steps, "steps", 1, MAX_STEPS)
        guidance = self.default_guidance(target) if guidance is None else check_number(guidance, "guidance", 0, MAX_GUIDANCE)
        variants = check_int(variants, "variants", 1, MAX_VARIANTS)
        best_first = check_switch(best_first, "best_first")
        if temperature is not None:
            temperature = check_number(temperature, "temperature", 0, MAX_TEMPERATURE)
        use_image_prior = check_switch(use_image_prior, "use_image_prior")
        scheduler = check_choice(scheduler, "scheduler", ("ddim", "dpm++", None))
        caption_method = check_choice(caption_method, "caption_method", ("greedy", "beam", "sample", None)) or "beam"
        with self.lock:
            _stop_if_asked(stop)
            generation = self.studio.generate(
                target, text=text, image=image, audio=audio, weights=weights, seed=seed, steps=steps,
                guidance=guidance, num=variants, on_step=_until_stopped(on_step, stop), previews=on_step is not None, best_first=best_first,
                temperature=temperature, use_image_prior=use_image_prior, scheduler=scheduler, caption_method=caption_method,
            )
        _stop_if_asked(stop)
        return self._save("generate", generation, {"image": image, "audio": audio}, visitor)

    def text_to_image(
        self, prompt: str, seed: Any = 0, steps: Any = None, guidance: Any = None, variants: Any = 1, on_step: StepCallback | None = None,
        best_first: Any = False, temperature: Any = None, use_image_prior: Any = True, visitor: str | None = None, stop: threading.Event | None = None,
    ) -> Result:
        """A prompt → images."""
        if check_text(prompt, "The prompt") is None:
            raise ValueError("The prompt is empty: type a few words, e.g. 'a red fire truck'.")
        return self.mix(text=prompt, output="image", seed=seed, steps=steps, guidance=guidance, variants=variants, on_step=on_step, best_first=best_first,
                        temperature=temperature, use_image_prior=use_image_prior, visitor=visitor, stop=stop)

    def image_to_audio(
        self, image: Any, seed: Any = 0, steps: Any = None, guidance: Any = None, on_step: StepCallback | None = None,
        visitor: str | None = None, stop: threading.Event | None = None,
    ) -> Result:
        """An image → a sound."""
        if image is None:
            raise ValueError("Upload an image to hear it.")
        return self.mix(image=image, output="sound", seed=seed, steps=steps, guidance=guidance, on_step=on_step, visitor=visitor, stop=stop)

    def describe(self, image: Any = None, audio: Any = None, visitor: str | None = None, stop: threading.Event | None = None) -> Result:
        """An image, a sound or both → a caption."""
        if image is None and audio is None:
            raise ValueError("Upload an image or a sound to describe.")
        with self.lock:
            _stop_if_asked(stop)
            generation = self.studio.caption(image=image, audio=audio)
        _stop_if_asked(stop)
        return self._save("generate", generation, {"image": image, "audio": audio}, visitor)

    def morph(
        self,
        mix_a: dict[str, Any],
        mix_b: dict[str, Any],
        frames: Any = 5,
        output: str = "image",
        seed: Any = 0,
        steps: Any = None,
        guidance: Any = None,
        on_step: StepCallback | None = None,
        use_image_prior: Any = True,
        visitor: str | None = None,
        stop: threading.Event | None = None,
    ) -> Result:
        """``frames`` outputs along the path between two mixes (images, one sound sequence, or captions).

        ``on_step(frame, frames)`` follows the morph; raising there stops it between frames.
        Images snap to the nearest training picture, so the strip steps from picture to picture;
        ``use_image_prior=False`` morphs the blend.
        """
        target = check_output(output)
        mixes = [_clean_mix(mix_a, "first"), _clean_mix(mix_b, "second")]
        frames = check_int(frames, "frames", 2, MAX_FRAMES)
        seed = check_int(seed, "seed", 0, MAX_SEED)
        steps = self.default_steps(target) if steps is None else check_int(steps, "steps", 1, MAX_STEPS)
        guidance = self.default_guidance(target) if guidance is None else check_number(guidance, "guidance", 0, MAX_GUIDANCE)
        use_image_prior = check_switch(use_image_prior, "use_image_prior")
        with self.lock:
            _stop_if_asked(stop)
            generation = self.studio.interpolate(
                mixes[0], mixes[1], n=frames, output=target, seed=seed, steps=steps, guidance=guidance, on_step=_until_stopped(on_step, stop),
                use_image_prior=use_image_prior,
            )
        _stop_if_asked(stop)
        media = {f"{modality}-{side}": mix.get(modality) for side, mix in zip("ab", mixes, strict=True) for modality in ("image", "audio")}
        return self._save("interpolate", generation, media, visitor)

    def replay(
        self, recipe: dict[str, Any] | str, image: Any = None, audio: Any = None, visitor: str | None = None, on_step: StepCallback | None = None,
        stop: threading.Event | None = None,
    ) -> Result:
        """Makes a recipe again (identical output on the same machine), within the same limits as ``mix``.

        Its image and sound come from ``image`` / ``audio`` when given (they must be the ones
        the recipe names), else from ``visitor``'s history (found by hash).
        """
        recipe = parse_recipe(recipe)
        if recipe["kind"] == "interpolate":
            return self._replay_morph(recipe, visitor, on_step, stop)
        text, hashes, weights = recipe_mix(recipe, "The recipe")
        image = self._replay_media(hashes, "image", image, visitor)
        audio = self._replay_media(hashes, "audio", audio, visitor)
        return self.mix(
            text=text, image=image, audio=audio, weights=weights, output=recipe.get("output"), seed=recipe.get("seed", 0), steps=recipe.get("steps"),
            guidance=recipe.get("guidance"), variants=recipe.get("num_outputs", 1), best_first=recipe.get("best_first", False),
            temperature=recipe.get("temperature", 0.0),  # recipes from before it took the mean
            use_image_prior=recipe.get("use_image_prior", True), scheduler=recipe.get("scheduler"), caption_method=recipe.get("caption_method"),
            on_step=on_step, visitor=visitor, stop=stop,
        )

    def _replay_morph(self, recipe: dict[str, Any], visitor: str | None, on_step: StepCallback | None, stop: threading.Event | None) -> Result:
        mixes = []
        for side in "ab":
            part = recipe.get(f"mix_{side}")
            if not isinstance(part, dict):
                raise ValueError(f"The morph recipe's mix_{side} must be an object with inputs and weights.")
            text, hashes, weights = recipe_mix(part, f"The morph recipe's mix_{side}")
            mix = {"text": text, "weights": weights}
            for modality in ("image", "audio"):
                mix[modality] = self._replay_media(hashes, modality, None, visitor)
            mixes.append(mix)
        return self.morph(
            mixes[0], mixes[1], frames=recipe.get("n"), output=recipe.get("output"), seed=recipe.get("seed", 0), steps=recipe.get("steps"),
            guidance=recipe.get("guidance"), use_image_prior=recipe.get("use_image_prior", True), on_step=on_step, visitor=visitor, stop=stop,
        )

    def _replay_media(self, hashes: dict[str, str], modality: str, given: Any, visitor: str | None) -> Any:
        """The medium a recipe names by hash: the one given, else the visitor's saved copy."""
        digest = hashes.get(modality)
        label = "an image" if modality == "image" else "a sound"
        if digest is None:
            if given is not None:
                raise ValueError(f"This recipe used no {modality}; leave the {modality} out.")
            return None
        if given is not None:
            with self.lock:
                _, recipe_inputs = self.studio.pipeline.prepare_inputs(None, given if modality == "image" else None, given if modality == "audio" else None)
            if recipe_inputs.get(f"{modality}_sha256") != digest:
                raise ValueError(f"The {modality} given is not the one this recipe used (its hash differs).")
            return given
        found = self._media_for(digest, visitor)
        if found is None:
            raise ValueError(f"This recipe used {label} that is not in your history (sha256 {digest[:12]}...); upload it again with the recipe.")
        return found

    def _media_for(self, digest: str | None, visitor: str | None = None) -> Path | None:
        return self.history.find_media(digest, owner=visitor) if digest else None

    # --- fusing and searching -----------------------------------------------------------------

    def shares(self, text: str | None = None, image: Any = None, audio: Any = None, weights: dict[str, float] | None = None) -> dict[str, float]:
        """Each input's share of the fused latent, and the prior's (they sum to 1)."""
        text = check_text(text)
        weights = check_weights(weights)
        with self.lock:
            encoding = self.studio.encode(text=text, image=image, audio=audio, weights=weights)
        return {**encoding.shares, "prior": encoding.prior_share}

    def search(
        self, text: str | None = None, image: Any = None, audio: Any = None, weights: dict[str, float] | None = None, k: Any = 8, visitor: str | None = None,
    ) -> list[dict[str, Any]]:
        """The ``k`` nearest items of the example gallery and ``visitor``'s history, best first."""
        text = check_text(text)
        weights = check_weights(weights)
        k = check_int(k, "k", 1, MAX_HITS)
        if not self.examples_ready.wait(timeout=120):
            raise ValueError("The gallery is still being indexed; try again in a moment.")
        with self.lock:
            # everything is ranked, so another visitor's items never push this visitor's out of the k
            hits = self.studio.search(text=text, image=image, audio=audio, weights=weights, k=len(self.studio.gallery))
        found = []
        for hit in hits:
            entry = self.gallery.get(hit.key)
            if entry is None or not self._may_see(entry, visitor):
                continue  # another visitor's, or evicted from the history since it was indexed
            found.append({**entry, "key": hit.key, "score": round(float(hit.score), 4), "rank": len(found)})
            if len(found) == k:
                break
        return found

    def _may_see(self, entry: dict[str, Any], visitor: str | None) -> bool:
        if not entry.get("item"):
            return True  # a bundled example
        try:
            self.history.get(entry["item"], owner=visitor)
        except ValueError:
            return False
        return True

    # --- the search gallery, indexed in the background ------------------------------------------

    def start_indexing(self) -> None:
        """Indexes the examples, then recent history items, in a background thread."""
        if self._indexer is not None:
            return
        for example in self.examples:
            self._index_queue.put((f"example:{example.key}", {"text": example.caption, "image": example.image, "audio": example.audio},
                                   {"source": "example", "caption": example.caption, "thumb": str(example.image)}))
        self._index_queue.put(None)  # marks the end of the examples
        for item in self.history.items(limit=self._index_history):
            self._queue_item(item)
        # The thread holds the service weakly, so a service nobody uses any more is freed, and
        # its finalizer then ends the thread.
        self._indexer = threading.Thread(
            target=_index_forever, args=(weakref.ref(self), self._index_queue), name="gallery-indexer", daemon=True
        )
        weakref.finalize(self, self._index_queue.put, _STOP).atexit = False
        _INDEXING.add(self)
        self._indexer.start()

    def stop_indexing(self, timeout: float = 30) -> None:
        """Ends the indexer after the job in hand and skips the rest. It runs at exit too: a daemon
        thread cut off inside a model call aborts the interpreter ("terminate called ...")."""
        if self._indexer is None or self._closing.is_set():
            return
        self._closing.set()
        self._index_queue.put(_STOP)
        self._indexer.join(timeout)

    def wait_indexed(self, timeout: float = 60) -> bool:
        """Waits until everything queued so far is indexed (for tests and scripts)."""
        done = threading.Event()
        self._index_queue.put(done)
        return done.wait(timeout)

    def _queue_item(self, item: HistoryItem) -> None:
        what = {}
        for modality, name in item.meta.get("index", {}).items():
            what[modality] = name if modality == "text" else item.folder / name
        if what:
            captions = item.meta.get("captions") or []
            label = captions[0] if captions else (item.recipe.get("inputs", {}).get("text") or item.meta.get("output", ""))
            thumb = item.folder / "thumb.png" if "thumb.png" in item.files else None
            self._index_queue.put((f"history:{item.id}", what, {"source": "history", "item": item.id, "caption": label, "thumb": str(thumb) if thumb else None}))

    def _index_one(self, job) -> None:
        if self._closing.is_set() and not isinstance(job, threading.Event):
            return  # stopping: skip what is left, but still answer wait_indexed
        if job is None:
            self.examples_ready.set()
        elif isinstance(job, threading.Event):
            job.set()
        else:
            key, what, entry = job
            try:
                with self.lock:
                    self.studio.add_to_gallery(key, **what)
                self.gallery[key] = entry
            except Exception as error:  # one bad item must not stop the gallery
                log.warning("Could not index %s for search: %s", key, error)

    # --- history ------------------------------------------------------------------------------

    def _save(self, kind: str, generation, media: dict[str, Any], visitor: str | None = None) -> Result:
        recipe, outputs = generation.recipe, generation.outputs
        files: dict[str, Any] = {}
        captions: list[str] = []
        index: dict[str, str] = {}
        offsets = recipe.get("order") or list(range(len(outputs)))  # each file's seed offset: variant v drew with seed + v
        names: list[str] = []
        if outputs and isinstance(outputs[0], Image.Image):
            names = output_names(recipe, offsets, ".png")
            for name, picture, offset in zip(names, outputs, offsets, strict=True):
                files[name] = png_with_recipe(picture, {**recipe, "variant": offset})
            files["thumb.png"] = _png(thumbnail(outputs[0]))
            index["image"] = names[0]
        elif outputs and isinstance(outputs[0], tuple):
            sounds = [(int(rate), np.asarray(wave, dtype=np.float32)) for rate, wave in outputs]
            if kind == "interpolate":  # a morph's sounds play as one sequence
                sounds, offsets = [join_sounds(sounds)], [0]
            names = output_names(recipe, offsets, ".wav")
            for name, (rate, wave), offset in zip(names, sounds, offsets, strict=True):
                files[name] = wav_with_recipe(rate, wave, {**recipe, "variant": offset})
            files["thumb.png"] = _png(waveform_thumbnail(sounds[0][1]))
            index["audio"] = names[0]
        else:
            captions = [str(text) for text in outputs]
            files["captions.json"] = json.dumps(captions, ensure_ascii=False).encode("utf-8")
            files["thumb.png"] = _png(caption_card(captions[0] if captions else ""))
            if captions and captions[0].strip():
                index["text"] = captions[0]
        media_entries = []
        for role, value in media.items():
            if value is None:
                continue
            name, source = _media_file(role, value)
            files[name] = source
            media_entries.append({"role": role, "file": name, "sha256": _digest_for(recipe, role)})
        meta = {
            "kind": kind, "output": recipe.get("output"), "recipe": recipe, "shares": generation.shares,
            "captions": captions, "media": media_entries, "index": index, "outputs": names,
        }
        item = self.history.add(meta, files, owner=visitor)
        if self._indexer is not None:
            self._queue_item(item)
        return Result(files=item.outputs, captions=captions, recipe=recipe, shares=dict(generation.shares), item=item)

    def history_list(self, limit: Any = 50, visitor: str | None = None) -> list[dict[str, Any]]:
        """``visitor``'s newest items: id, time, kind, output, captions and recipe."""
        limit = check_int(limit, "limit", 1, 1000)
        return [
            {"id": item.id, "created": item.created, "kind": item.meta.get("kind"), "output": item.meta.get("output"),
             "captions": item.meta.get("captions", []), "recipe": item.recipe}
            for item in self.history.items(limit=limit, owner=visitor)
        ]

    def item_media(self, item: HistoryItem) -> dict[str, Path]:
        """The saved input files of an item, by role (``image``, ``audio``, ``image-a``...)."""
        return {entry["role"]: item.path(entry["file"]) for entry in item.meta.get("media", []) if entry.get("file") in item.files}

    # --- recipes ------------------------------------------------------------------------------

    def read_recipe(self, path: str | Path) -> dict[str, Any]:
        """The recipe inside a PNG or WAV the studio made."""
        recipe = read_recipe(path)
        if recipe is None:
            raise ValueError(f"{Path(path).name!r} holds no studio recipe: only images and sounds the studio made carry one.")
        return check_recipe(recipe)

    def recipe_fields(self, recipe: dict[str, Any] | str, visitor: str | None = None) -> dict[str, Any]:
        """A recipe as the page's fields, with its media found in ``visitor``'s history where possible.

        ``note`` says which inputs must be uploaded again (the recipe holds only their hashes).
        Numbers out of range are kept as they are: the page's controls and the action say what to fix.
        """
        recipe = parse_recipe(recipe)
        missing = []

        def find(hashes: dict[str, str], modality: str, label: str) -> Path | None:
            digest = hashes.get(modality)
            if not digest:
                return None
            found = self._media_for(digest, visitor)
            if found is None:
                missing.append(f"{label} (sha256 {digest[:12]}...)")
            return found

        def number(key: str, default: Any) -> Any:
            value = recipe.get(key, default)
            return value if isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value) else default

        fields: dict[str, Any] = {"kind": recipe["kind"], "output": _page_output(recipe.get("output")), "seed": number("seed", 0),
                                  "steps": number("steps", None), "guidance": number("guidance", None)}
        if recipe["kind"] == "interpolate":
            for side in "ab":
                part = recipe.get(f"mix_{side}")
                text, hashes, _ = recipe_mix(part if isinstance(part, dict) else {}, f"The morph recipe's mix_{side}")
                fields[f"text_{side}"] = text or ""
                fields[f"image_{side}"] = find(hashes, "image", f"the image of mix {side.upper()}")
                fields[f"audio_{side}"] = find(hashes, "audio", f"the sound of mix {side.upper()}")
            fields["frames"] = number("n", 5)
            fields["use_image_prior"] = recipe.get("use_image_prior") is not False  # on unless a recipe turned it off
        else:
            text, hashes, weights = recipe_mix(recipe, "The recipe")
            fields["text"] = text or ""
            fields["image"] = find(hashes, "image", "the image")
            fields["audio"] = find(hashes, "audio", "the sound")
            fields["weights"] = {m: float(weights.get(m, 1.0)) for m in ("text", "image", "audio")}
            fields["variants"] = number("num_outputs", 1)
            fields["best_first"] = recipe.get("best_first") is True
            fields["temperature"] = number("temperature", 0.0)
            fields["use_image_prior"] = recipe.get("use_image_prior") is not False  # on unless a recipe turned it off
        fields["note"] = ("Upload again: " + ", ".join(missing) + ".") if missing else ""
        return fields


# --- checks ------------------------------------------------------------------------------------


def _show(value: Any, limit: int = 40) -> str:
    """A value for an error message: its repr, cut short (a bad argument is never echoed whole)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_switch(value: Any, name: str) -> bool:
    """A true/false setting; anything else (a string, a number) is a user error."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {_show(value)}.")
    return value


def check_choice(value: Any, name: str, choices: tuple) -> Any:
    if not any(value is choice or (isinstance(value, str) and value == choice) for choice in choices):
        raise ValueError(f"{name} must be one of {[c for c in choices if c is not None]}, got {_show(value)}.")
    return value


def check_output(output: Any) -> str:
    """The page's output name (image, sound, caption; the facade's ``audio`` too) → the facade's."""
    if isinstance(output, str) and output in OUTPUTS:
        return OUTPUTS[output]
    if isinstance(output, str) and output in OUTPUTS.values():
        return output
    raise ValueError(f"Unknown output {_show(output)}; choose one of {list(OUTPUTS)}.")


def _page_output(output: Any) -> str:
    return {v: k for k, v in OUTPUTS.items()}.get(output, "image") if isinstance(output, str) else "image"


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def check_int(value: Any, name: str, low: int, high: int) -> int:
    """An integer (or a float with an integer value) from ``low`` to ``high``."""
    if not _is_number(value) or int(value) != value:
        raise ValueError(f"{name} must be a whole number from {low} to {high}, got {_show(value)}.")
    if not low <= int(value) <= high:
        raise ValueError(f"{name} must be from {low} to {high}, got {_show(int(value))}.")
    return int(value)


def check_number(value: Any, name: str, low: float, high: float) -> float:
    if not _is_number(value) or not low <= float(value) <= high:
        raise ValueError(f"{name} must be a number from {low:g} to {high:g}, got {_show(value)}.")
    return float(value)


def check_text(text: Any, name: str = "The text") -> str | None:
    """A prompt: ``None`` when absent or blank, else a string of at most ``MAX_TEXT_CHARS`` valid characters."""
    if text is None:
        return None
    if not isinstance(text, str):
        raise ValueError(f"{name} must be a string, got {type(text).__name__}.")
    if len(text) > MAX_TEXT_CHARS:
        raise ValueError(f"{name} is {len(text):,} characters long; keep it under {MAX_TEXT_CHARS:,}.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{name} holds an invalid character (a lone surrogate); type or paste it again as plain text.") from None
    return text if text.strip() else None


def check_weights(weights: Any) -> dict[str, float]:
    """Weights by modality, each a number from 0 to ``MAX_WEIGHT`` (the facade checks the rest)."""
    if weights is None:
        return {}
    if not isinstance(weights, dict):
        raise ValueError(f"The weights must be an object of modality → number, got {type(weights).__name__}.")
    checked = {}
    for name, value in weights.items():
        if name not in ("text", "image", "audio"):
            raise ValueError(f"Unknown weight {_show(name)}; weights are for text, image and audio.")
        label = {"audio": "sound"}.get(name, name)
        checked[name] = check_number(value, f"The {label} weight", 0.0, MAX_WEIGHT)
    return checked


def parse_recipe(recipe: Any) -> dict[str, Any]:
    """A recipe dict (or its JSON text), checked to be one of the studio's and of a sane size and
    depth, without the ``variant`` a file's copy carries."""
    return {k: v for k, v in check_recipe(recipe).items() if k != "variant"}


def check_recipe(recipe: Any) -> dict[str, Any]:
    """``parse_recipe``'s checks, keeping every field."""
    if isinstance(recipe, str):
        if len(recipe) > MAX_RECIPE_CHARS:
            raise ValueError(f"The recipe is {len(recipe):,} characters long; a studio recipe is under {MAX_RECIPE_CHARS:,}.")
        try:
            recipe = json.loads(recipe)
        except json.JSONDecodeError as error:
            raise ValueError(f"The recipe is not valid JSON ({error.msg} at character {error.pos}).") from error
        except RecursionError:
            raise ValueError("The recipe is nested too deeply to be a studio recipe.") from None
    if not isinstance(recipe, dict) or recipe.get("kind") not in ("generate", "interpolate"):
        raise ValueError("Not a studio recipe: expected a JSON object with kind 'generate' or 'interpolate'.")
    if _depth(recipe) > MAX_RECIPE_DEPTH:
        raise ValueError("Not a studio recipe: it is nested too deeply.")
    try:
        size = len(recipe_json(recipe).encode("utf-8"))
    except (RecursionError, TypeError, ValueError):  # UnicodeEncodeError (a lone surrogate) is a ValueError
        raise ValueError("Not a studio recipe: it holds values JSON cannot carry (or an invalid character).") from None
    if size > MAX_RECIPE_CHARS:
        raise ValueError(f"The recipe is {size:,} bytes long; a studio recipe is under {MAX_RECIPE_CHARS:,}.")
    return recipe


def _depth(value: Any, limit: int = MAX_RECIPE_DEPTH + 1) -> int:
    """How deeply ``value`` nests lists and objects, counted no further than ``limit``."""
    if limit <= 0 or not isinstance(value, (dict, list)):
        return 0
    children = value.values() if isinstance(value, dict) else value
    return 1 + max((_depth(child, limit - 1) for child in children), default=0)


def recipe_mix(part: dict[str, Any], where: str) -> tuple[str | None, dict[str, str], dict[str, float]]:
    """A recipe's (or a morph end's) text, media hashes by modality and weights, each checked."""
    inputs = part.get("inputs", {})
    if not isinstance(inputs, dict):
        raise ValueError(f"{where}'s inputs must be an object (text, image_sha256, audio_sha256), got {type(inputs).__name__}.")
    text = check_text(inputs.get("text"), f"{where}'s text")
    hashes = {}
    for modality in ("image", "audio"):
        digest = inputs.get(f"{modality}_sha256")
        if digest is None:
            continue
        if not isinstance(digest, str) or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError(f"{where}'s {modality}_sha256 must be 64 hexadecimal digits, got {_show(digest)}.")
        hashes[modality] = digest
    return text, hashes, check_weights(part.get("weights"))


def _until_stopped(on_step: StepCallback | None, stop: threading.Event | None) -> StepCallback | None:
    """``on_step``, checking ``stop`` first at every step."""
    if stop is None:
        return on_step

    def step(*args):
        _stop_if_asked(stop)
        if on_step is not None:
            on_step(*args)

    return step


def _stop_if_asked(stop: threading.Event | None) -> None:
    if stop is not None and stop.is_set():
        raise Cancelled()


def _clean_mix(mix: dict[str, Any] | None, which: str) -> dict[str, Any]:
    mix = {k: v for k, v in (mix or {}).items() if v is not None}
    if check_text(mix.get("text"), f"The {which} mix's text") is None:
        mix.pop("text", None)
    if "weights" in mix:
        mix["weights"] = check_weights(mix["weights"])
    if not any(k in mix for k in ("text", "image", "audio")):
        raise ValueError(f"The {which} mix is empty: give it a text, an image or a sound.")
    return mix


# --- files -------------------------------------------------------------------------------------


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def output_names(recipe: dict[str, Any], offsets: list[int], suffix: str) -> list[str]:
    """File names for a result's outputs, as a download keeps them: the prompt's first words (a
    morph's two ends) and the seed each output drew with, e.g. ``a-red-apple-seed42.png``; a
    morph's frames, which share one seed, are numbered after it."""
    if recipe.get("kind") == "interpolate":
        ends = [_slug((recipe.get(end) or {}).get("inputs", {}).get("text"), 24) for end in ("mix_a", "mix_b")]
        stem = "-to-".join(ends) if all(ends) else ""
    else:
        stem = _slug(recipe.get("inputs", {}).get("text"), 48)
    stem = f"{stem or _page_output(recipe.get('output'))}-seed"
    seed = recipe.get("seed", 0)
    if recipe.get("kind") == "interpolate" and len(offsets) > 1:
        return [f"{stem}{seed}-{frame:02d}{suffix}" for frame in range(1, len(offsets) + 1)]
    return [f"{stem}{seed + offset}{suffix}" for offset in offsets]


def _slug(text: Any, limit: int) -> str:
    """``text`` as lower-case ASCII words joined by hyphens, cut at a word to ``limit`` characters."""
    if not isinstance(text, str):
        return ""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    if len(slug) > limit:
        slug = slug[: limit + 1].rsplit("-", 1)[0] if "-" in slug[: limit + 1] else slug[:limit]
    return slug


def _media_file(role: str, value: Any) -> tuple[str, Any]:
    """A history file name and source for an input: a path is copied, a PIL image or sound encoded."""
    if isinstance(value, (str, Path)):
        return f"input-{role}{Path(value).suffix.lower()[:8]}", Path(value)
    if isinstance(value, Image.Image):
        return f"input-{role}.png", _png(value)
    if isinstance(value, tuple) and len(value) == 2:
        rate, samples = value
        samples = np.asarray(samples)
        buffer = io.BytesIO()
        import soundfile

        soundfile.write(buffer, samples, int(rate), format="WAV", subtype="FLOAT" if samples.dtype.kind == "f" else "PCM_16")
        return f"input-{role}.wav", buffer.getvalue()
    raise ValueError(f"Cannot save a {type(value).__name__} as the {role} input.")


def _digest_for(recipe: dict[str, Any], role: str) -> str | None:
    modality, _, side = role.partition("-")
    inputs = recipe.get(f"mix_{side}", {}).get("inputs", {}) if side else recipe.get("inputs", {})
    return inputs.get(f"{modality}_sha256")
