"""The facade that the UI and the API call: plain Python in and out, no tensors.

``load_studio`` builds a ``Studio`` from a preset name (a folder under ``assets/``) or any
saved studio folder. The studio fuses any weighted mix of text, image and sound in the joint
latent (``encode``), generates images, sounds and captions from it (``generate``, ``caption``),
replays recipes byte for byte (``replay``), searches a gallery (``search``) and morphs between
two mixes (``interpolate``).
"""

from __future__ import annotations

import contextvars
import functools
import numbers
import os
import sysconfig
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .audio import SAMPLE_RATE
from .media import AudioInput, ImageInput
from .pipelines.studio_pipeline import (
    INPUTS,
    OUTPUTS,
    StudioPipeline,
    audio_digest,
    check_weights,
    image_digest,
)
from .retrieval import LatentIndex, SearchHit

BESIDE_PACKAGES = Path(__file__).resolve().parent.parent / "assets"  # a checkout's (or an editable install's) assets


def find_assets(beside: Path = BESIDE_PACKAGES) -> Path:
    """The preset and the examples: ``assets/`` beside the packages (a checkout or an editable
    install), else where a non-editable install put them (``<prefix>/share/fusion-studio/assets``)."""
    prefixes = [sysconfig.get_path("data"), sysconfig.get_path("data", f"{os.name}_user")]
    installed = [Path(prefix) / "share" / "fusion-studio" / "assets" for prefix in prefixes]
    for folder in (beside, *installed):
        if (folder / "embedded" / "model_index.json").is_file():
            return folder
    return beside  # a checkout without its assets: loading a preset then says what is missing


ASSETS = find_assets()
PRESETS = ("embedded",)
MEDIA_CACHE_SIZE = 64  # recent images and sounds kept so their recipes replay without re-upload


@dataclass
class Encoding:
    """A fused posterior over the joint latent, for people and programs.

    Attributes:
        mu, logvar: the fused Gaussian, ``latent_dim`` floats each.
        shares: each given input's share of the posterior (with ``prior_share`` they sum to 1).
        prior_share: how much the N(0, I) prior still holds.
        weights: the weight each given input was fused with.
    """

    mu: np.ndarray
    logvar: np.ndarray
    shares: dict[str, float]
    prior_share: float
    weights: dict[str, float]

    @property
    def relative_shares(self) -> dict[str, float]:
        """The inputs' shares rescaled to sum to 1 (what a contribution meter shows)."""
        total = sum(self.shares.values())
        return {m: (s / total if total > 0 else 0.0) for m, s in self.shares.items()}


@dataclass
class Generation:
    """What a call made: ``outputs`` (PIL images, ``(sample_rate, float32 array)`` pairs or
    strings), the JSON-serialisable ``recipe`` that replays it, each input's ``shares``, and
    with ``best_first`` each output's ``agreement`` with the inputs (else ``None``)."""

    outputs: list[Any]
    recipe: dict[str, Any]
    shares: dict[str, float] = field(default_factory=dict)
    agreement: list[float] | None = None


class ModelThread:
    """The one thread that runs a process's studio work, loading included.

    Model calls take turns on it instead of splitting the cores between threads. It also keeps
    them at full speed: torch's OpenMP runtime gives each thread that computes its own pool of
    workers, and once the pools hold more threads than the machine has cores they stop
    spinning between parallel regions, which made a call from a second thread (every call
    from the app's request threads) take twice as long on 2 cores. A call made on this thread
    runs at once, so nested calls do not wait for themselves; the caller's grad mode and context
    variables (a web request's progress tracker) go along.
    """

    def __init__(self):
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="studio-model", initializer=self._remember)
        self._ident: int | None = None

    def _remember(self) -> None:
        self._ident = threading.get_ident()

    def run(self, function, *args, **kwargs):
        if threading.get_ident() == self._ident:
            return function(*args, **kwargs)
        grad, context = torch.is_grad_enabled(), contextvars.copy_context()  # a web request's context (its progress bar) goes along

        def call():
            with torch.set_grad_enabled(grad):
                return function(*args, **kwargs)

        return self._executor.submit(context.run, call).result()


MODEL_THREAD = ModelThread()


def on_the_model_thread(function):
    """Runs ``function`` on ``MODEL_THREAD`` (and returns what it returns, or raises what it raises)."""

    @functools.wraps(function)
    def moved(*args, **kwargs):
        return MODEL_THREAD.run(function, *args, **kwargs)

    return moved


class Studio:
    """One preset's pipeline behind a small API of plain values. Its model calls run on the
    process's model thread (``MODEL_THREAD``), one at a time, with all of torch's threads."""

    def __init__(self, pipeline: StudioPipeline):
        self.pipeline = pipeline
        pipeline.set_progress_bar_config(disable=True)  # the facade reports steps through on_step
        self.gallery = LatentIndex()
        self.gallery_items: dict[str, dict[str, Any]] = {}
        self._media: OrderedDict[str, Any] = OrderedDict()
        self.load_seconds = float("nan")

    # --- what this studio is ----------------------------------------------------------------

    @property
    def preset(self) -> str:
        return self.pipeline.config.preset

    @property
    def weights_version(self) -> str:
        return self.pipeline.config.weights_version

    @property
    def encoders(self) -> dict[str, Any]:
        return {m: self.pipeline.encoder(m) for m in INPUTS if self.pipeline.encoder(m) is not None}

    @property
    def joint(self):
        return self.pipeline.joint

    @property
    def device(self) -> torch.device:
        return self.pipeline.joint.device

    @property
    def is_trained(self) -> bool:
        """Whether every learned part was loaded from trained weights."""
        return self.pipeline.is_trained

    # --- fusing -----------------------------------------------------------------------------

    @on_the_model_thread
    def encode(
        self,
        text: str | None = None,
        image: ImageInput | None = None,
        audio: AudioInput | None = None,
        weights: dict[str, float] | None = None,
    ) -> Encoding:
        """Fuses any mix of inputs into the joint latent.

        Args:
            text: a prompt.
            image: a PIL image (any size and mode) or a path.
            audio: ``(sample_rate, numpy array)`` (any rate, mono or stereo, any length) or a path.
            weights: modality → weight (default 1 each); 0 leaves an input out. Weights of
                inputs that are not given are ignored.

        Raises:
            ValueError: no input, an empty prompt, an unreadable image, silent or non-finite
                sound, negative or non-finite weights, or all weights zero.
        """
        given_weights = check_weights(weights, text=text, image=image, audio=audio)
        inputs, _ = self.pipeline.prepare_inputs(text, image, audio)
        posterior = self.pipeline.fuse(inputs, given_weights)
        return Encoding(
            mu=posterior.mu[0].float().cpu().numpy(),
            logvar=posterior.logvar[0].float().cpu().numpy(),
            shares={m: float(posterior.shares[m][0]) for m in given_weights},
            prior_share=float(posterior.prior_share[0]),
            weights=given_weights,
        )

    # --- generating -------------------------------------------------------------------------

    @on_the_model_thread
    def generate(
        self,
        output: str,
        text: str | None = None,
        image: ImageInput | None = None,
        audio: AudioInput | None = None,
        weights: dict[str, float] | None = None,
        seed: int = 0,
        steps: int | None = None,
        guidance: float | None = None,
        num: int = 1,
        scheduler: str | None = None,
        caption_method: str = "beam",
        on_step=None,
        previews: bool = False,
        best_first: bool = False,
        temperature: float | None = None,
        use_image_prior: bool = True,
    ) -> Generation:
        """Makes ``num`` images, sounds or captions (``output``) from any weighted mix of inputs.

        ``seed`` fixes everything random: variant ``i`` uses ``seed + i``. ``steps`` and
        ``guidance`` default to the preset's. ``on_step(step, total)`` is called after each
        denoising step, for progress; with ``previews=True`` image generations call
        ``on_step(step, total, preview)`` with the first variant's current latents decoded to a
        PIL image (a live preview; it does not change the result). ``best_first`` orders the
        variants by how well each matches the inputs: each is read back through its modality's
        encoder and compared with the fused inputs in the joint latent (``Generation.agreement``
        holds the cosines; the recipe's ``order`` says which variant, and so which seed, each
        output is). ``temperature`` draws each variant's latent from the fused posterior
        (``mu + temperature * sigma * eps``; 0 takes the mean; default: the preset's).
        ``use_image_prior=False`` draws images from the joint model's decoded mean instead of
        through the studio's image prior (the embedded preset's bank of training pictures): a
        blend of the inputs rather than the nearest picture, drawn less sharply. Raises
        ``ValueError`` on bad input.
        """
        check_seed(seed)
        check_weights(weights, text=text, image=image, audio=audio)
        callback = None
        if on_step is not None:
            total = self.pipeline.resolve_defaults(output, steps, guidance)[0] * (num if output in ("image", "audio") else 1)  # variants run one after another
            show = previews and output == "image" and self.pipeline.image_hub_decoder is None

            def callback(pipeline, index, timestep, tensors):
                if show:
                    on_step(index + 1, total, self.pipeline.preview_image(tensors["latents"][:1]))
                else:
                    on_step(index + 1, total)
                return tensors

        # load and check the media once; the pipeline takes them as they are
        prepared, recipe_inputs = self.pipeline.prepare_inputs(text, image, audio)
        result = self.pipeline(
            text=text, image=prepared["image"], audio=prepared["audio"], weights=weights, output=output,
            num_inference_steps=steps, guidance_scale=guidance, seed=seed, num_outputs=num,
            scheduler=scheduler, caption_method=caption_method, callback_on_step_end=callback, best_first=best_first,
            temperature=temperature, use_image_prior=use_image_prior,
        )
        self._remember(prepared, recipe_inputs)
        recipe = {"kind": "generate", **result.recipe}
        return Generation(outputs=result.outputs, recipe=recipe, shares=result.shares, agreement=result.agreement)

    @on_the_model_thread
    def caption(
        self,
        image: ImageInput | None = None,
        audio: AudioInput | None = None,
        weights: dict[str, float] | None = None,
        method: str = "beam",
        num: int = 1,
        seed: int = 0,
    ) -> Generation:
        """Describes an image, a sound or both in words."""
        if image is None and audio is None:
            raise ValueError("Give an image or a sound to describe.")
        return self.generate("caption", image=image, audio=audio, weights=weights, num=num, seed=seed, caption_method=method)

    @on_the_model_thread
    def replay(self, recipe: dict[str, Any], image: ImageInput | None = None, audio: AudioInput | None = None) -> Generation:
        """Runs a recipe again: the same recipe gives the same output bytes on the same machine.

        A recipe holds only hashes of its image and sound: pass them again (they are checked
        against the hashes), or let the studio find them among the media it has seen recently.
        """
        if not isinstance(recipe, dict) or recipe.get("kind", "generate") not in ("generate", "interpolate"):
            raise ValueError("Not a studio recipe: expected a dict with kind 'generate' or 'interpolate'.")
        try:
            if recipe.get("kind") == "interpolate":
                mix_a, mix_b = (self._mix_from_recipe(recipe[end]) for end in ("mix_a", "mix_b"))
                return self.interpolate(
                    mix_a, mix_b, n=recipe["n"], output=recipe["output"], seed=recipe["seed"],
                    steps=recipe["steps"], guidance=recipe["guidance"], use_image_prior=recipe.get("use_image_prior", True),
                )
            inputs = recipe["inputs"]
            image = self._recall("image", inputs.get("image_sha256"), image)
            audio = self._recall("audio", inputs.get("audio_sha256"), audio)
            return self.generate(
                recipe["output"], text=inputs.get("text"), image=image, audio=audio, weights=recipe["weights"],
                seed=recipe["seed"], steps=recipe["steps"], guidance=recipe["guidance"], num=recipe["num_outputs"],
                scheduler=recipe.get("scheduler"), caption_method=recipe.get("caption_method") or "beam",
                best_first=bool(recipe.get("best_first", False)),
                temperature=recipe.get("temperature", 0.0),  # recipes from before it took the mean
                use_image_prior=recipe.get("use_image_prior", True),
            )
        except KeyError as error:
            raise ValueError(f"The recipe lacks {error}; it may come from another version of the studio.") from error

    @on_the_model_thread
    def interpolate(
        self,
        mix_a: dict[str, Any],
        mix_b: dict[str, Any],
        n: int = 5,
        output: str = "image",
        seed: int = 0,
        steps: int | None = None,
        guidance: float | None = None,
        on_step=None,
        use_image_prior: bool = True,
    ) -> Generation:
        """``n`` outputs along the spherical interpolation between two mixes' fused latents.

        A mix is a dict of ``text`` / ``image`` / ``audio`` / ``weights``. Every step uses the
        same seed, so only the latent moves. ``on_step(frame, n)`` is called after each frame
        (an exception raised there stops the morph). Images go through the studio's image
        prior as in ``generate``: with the embedded preset's bank a morph steps from one
        training picture to the next; ``use_image_prior=False`` morphs the blend smoothly.
        """
        if not isinstance(n, int) or isinstance(n, bool) or not 2 <= n <= 16:
            raise ValueError(f"n must be an integer from 2 to 16, got {n!r}.")
        if output not in OUTPUTS:
            raise ValueError(f"Unknown output {output!r}; choose one of {OUTPUTS}.")
        check_seed(seed)
        ends, recipes = [], []
        for mix in (mix_a, mix_b):
            unknown = set(mix) - {"text", "image", "audio", "weights"}
            if unknown:
                raise ValueError(f"A mix takes text, image, audio and weights; got {sorted(unknown)}.")
            prepared, recipe_inputs = self.pipeline.prepare_inputs(mix.get("text"), mix.get("image"), mix.get("audio"))
            encoding = self.encode(text=prepared["text"], image=prepared["image"], audio=prepared["audio"], weights=mix.get("weights"))
            ends.append(torch.from_numpy(encoding.mu))
            recipes.append({"inputs": recipe_inputs, "weights": encoding.weights})
            self._remember(prepared, recipe_inputs)
        steps, guidance = self.pipeline.resolve_defaults(output, steps, guidance)
        self.pipeline.check_inputs({"text": "x"}, {}, output, steps, guidance, 1, None, use_image_prior=use_image_prior)
        fractions = torch.linspace(0, 1, n)
        z = torch.stack([slerp(ends[0], ends[1], float(t)) for t in fractions])  # (n, Z)
        outputs = []
        for frame, row in enumerate(z, start=1):  # the same seed for every frame: only the latent changes
            outputs += self.pipeline.decode_latents(row[None], output, steps, guidance, seed, use_image_prior=use_image_prior)
            if on_step is not None:
                on_step(frame, n)
        recipe = {
            "kind": "interpolate", "output": output, "mix_a": recipes[0], "mix_b": recipes[1], "n": n, "seed": seed, "steps": steps,
            "guidance": float(guidance), "use_image_prior": use_image_prior, "preset": self.preset, "weights_version": self.weights_version,
        }
        return Generation(outputs=outputs, recipe=recipe)

    # --- search -----------------------------------------------------------------------------

    @on_the_model_thread
    def add_to_gallery(self, key: str, text: str | None = None, image: ImageInput | None = None, audio: AudioInput | None = None) -> None:
        """Indexes one item of the gallery by the fused posterior of what it holds."""
        if not key:
            raise ValueError("A gallery item needs a non-empty key.")
        encoding = self.encode(text=text, image=image, audio=audio)
        self.gallery.add([key], torch.from_numpy(encoding.mu)[None], torch.from_numpy(encoding.logvar)[None])
        self.gallery_items[key] = {"text": text, "image": image, "audio": audio}

    def remove_from_gallery(self, key: str) -> None:
        """Drops one item from the gallery (unknown keys are ignored)."""
        if key in self.gallery_items:
            del self.gallery_items[key]
            self.gallery.remove([key])

    @on_the_model_thread
    def search(
        self,
        text: str | None = None,
        image: ImageInput | None = None,
        audio: AudioInput | None = None,
        weights: dict[str, float] | None = None,
        k: int = 8,
    ) -> list[SearchHit]:
        """The ``k`` gallery items nearest to any weighted mix of inputs, best first."""
        if len(self.gallery) == 0:
            raise ValueError("The gallery is empty: add items with add_to_gallery first.")
        encoding = self.encode(text=text, image=image, audio=audio, weights=weights)
        mu, logvar = torch.from_numpy(encoding.mu)[None], torch.from_numpy(encoding.logvar)[None]
        return self.gallery.search(mu, logvar, k=k)[0]

    # --- saving -----------------------------------------------------------------------------

    def save_pretrained(self, folder: str | Path) -> None:
        """Writes the whole studio to ``folder`` (see ``StudioPipeline.save_pretrained``)."""
        self.pipeline.save_pretrained(folder)

    # --- media seen, for replay ----------------------------------------------------------------

    def _remember(self, inputs: dict[str, Any], recipe: dict[str, Any]) -> None:
        """Keeps prepared media by their recipe hashes (the newest ``MEDIA_CACHE_SIZE``)."""
        for modality, key in (("image", "image_sha256"), ("audio", "audio_sha256")):
            if key in recipe:
                self._media[recipe[key]] = inputs[modality]
                self._media.move_to_end(recipe[key])
        while len(self._media) > MEDIA_CACHE_SIZE:
            self._media.popitem(last=False)

    def _mix_from_recipe(self, mix: dict[str, Any]) -> dict[str, Any]:
        """A mix of an interpolation recipe, its media recalled by hash."""
        inputs = mix["inputs"]
        return {
            "text": inputs.get("text"),
            "image": self._recall("image", inputs.get("image_sha256"), None),
            "audio": self._recall("audio", inputs.get("audio_sha256"), None),
            "weights": mix["weights"],
        }

    def _recall(self, modality: str, digest: str | None, given):
        if digest is None:
            if given is not None:
                raise ValueError(f"This recipe used no {modality}; leave {modality} out.")
            return None
        if given is None:
            if digest not in self._media:
                raise ValueError(
                    f"This recipe used a{'n' if modality == 'image' else ''} {modality} "
                    f"(sha256 {digest[:12]}...) that this studio has not seen; pass it as {modality}=."
                )
            return self._media[digest]
        inputs, recipe = self.pipeline.prepare_inputs(None, given if modality == "image" else None, given if modality == "audio" else None)
        if recipe[f"{modality}_sha256"] != digest:
            raise ValueError(f"The {modality} given is not the one this recipe used (its hash differs).")
        return inputs[modality]


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation (Shoemake 1985) between latents, linear when they are nearly parallel."""
    cosine = torch.dot(a, b) / (a.norm() * b.norm()).clamp(min=1e-12)
    angle = torch.arccos(cosine.clamp(-1, 1))
    if angle.abs() < 1e-4:
        return (1 - t) * a + t * b
    return (torch.sin((1 - t) * angle) * a + torch.sin(t * angle) * b) / torch.sin(angle)


def check_seed(seed: Any) -> None:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**31 - 16:
        raise ValueError(f"seed must be an integer from 0 to 2**31 - 17, got {seed!r}.")


def resolve_preset(preset_or_path: str | Path) -> Path:
    """A preset name (``"embedded"``) or a saved studio folder → that folder."""
    if str(preset_or_path) in PRESETS:
        return ASSETS / str(preset_or_path)
    folder = Path(preset_or_path)
    if (folder / "model_index.json").is_file():
        return folder
    raise ValueError(
        f"{str(preset_or_path)!r} is neither a preset ({', '.join(PRESETS)}) nor a saved studio folder "
        "(one with a model_index.json)."
    )


@on_the_model_thread
def load_studio(preset_or_path: str | Path = "embedded", device: str | torch.device = "cpu") -> Studio:
    """Builds the studio of a preset or a saved folder, on ``device``, with no network needed.

    Parts whose folder holds only a config (no weights yet) start from a seeded random
    initialisation; ``Studio.is_trained`` tells. It loads on the model thread, where the
    studio's calls run (``ModelThread``).
    """
    start = time.perf_counter()
    folder = resolve_preset(preset_or_path)
    studio = Studio(StudioPipeline.from_pretrained(folder, device=device))
    studio.load_seconds = time.perf_counter() - start
    return studio


__all__ = ["Encoding", "Generation", "Studio", "load_studio", "SAMPLE_RATE", "audio_digest", "image_digest"]
