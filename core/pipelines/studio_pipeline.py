"""The any-to-any pipeline: weighted text, image and sound in; images, sounds or captions out.

    inputs ─ frozen encoders ─> experts ─ weighted PoE ─> z ─ embedding decoder ─> e_out
                                                       (or, for images, the diffusion prior)
    e_out ─ image latent diffusion + autoencoder ─> images
          ─ log-mel diffusion + vocoder ─> sounds
          ─ caption decoder ─> captions

Every call returns its recipe: the inputs (text, and hashes of image and sound), weights,
seed, steps, guidance, scheduler, preset and weights version. The same recipe replays to the
same bytes on the same machine: all randomness comes from generators seeded from the recipe.
"""

from __future__ import annotations

import hashlib
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import DiffusionPipeline
from diffusers.utils import BaseOutput
from PIL import Image

from ..audio import HOP_LENGTH, SAMPLE_RATE, normalise_loudness, prepare_waveform
from ..decoders.diffusion_unets import SCHEDULERS, mel_patch, swap_scheduler, unfold_mels
from ..decoders.embedding_prior import prior_generators
from ..decoders.hub import AudioLDMSoundDecoder, UnclipImageDecoder
from ..decoders.image_autoencoder import decode_latents
from ..decoders.vocoder import Vocoder
from ..media import load_image

OUTPUTS = ("image", "audio", "caption")
INPUTS = ("text", "image", "audio")
OUTPUT_MODALITY = {"image": "image", "audio": "audio", "caption": "text"}  # the encoder that reads each output back
RECIPE_VERSION = 1

StepCallback = Callable[[Any, int, int, dict[str, torch.Tensor]], dict[str, torch.Tensor] | None]


@dataclass
class StudioPipelineOutput(BaseOutput):
    """What one call made.

    Attributes:
        outputs: PIL images, ``(sample_rate, float32 waveform)`` pairs, or caption strings.
        recipe: a JSON-serialisable dict that replays this call.
        shares: each given input's share of the fused posterior, and the prior's (``"prior"``).
        agreement: with ``best_first``, each output's agreement with the inputs (see
            ``StudioPipeline.agreement``), in the order of ``outputs``; else ``None``.
    """

    outputs: list[Any]
    recipe: dict[str, Any]
    shares: dict[str, float] = field(default_factory=dict)
    agreement: list[float] | None = None


def image_digest(image: Image.Image) -> str:
    """SHA-256 of an RGB image's size and pixels (the same picture in any file format hashes alike)."""
    digest = hashlib.sha256(f"{image.width}x{image.height}".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


def audio_digest(waveform: np.ndarray) -> str:
    """SHA-256 of a prepared (22050 Hz mono float32) waveform."""
    return hashlib.sha256(np.ascontiguousarray(waveform, dtype=np.float32).tobytes()).hexdigest()


def check_weights(weights: dict[str, float] | None, **inputs: Any) -> dict[str, float]:
    """Checks the weights of the given inputs; returns modality → float for each given input."""
    weights = dict(weights or {})
    unknown = set(weights) - set(INPUTS)
    if unknown:
        raise ValueError(f"Unknown weight names {sorted(unknown)}; use {list(INPUTS)}.")
    given = {}
    for modality, value in inputs.items():
        if value is None:
            continue
        weight = weights.get(modality, 1.0)
        if isinstance(weight, bool) or not isinstance(weight, numbers.Real) or not math.isfinite(weight):
            raise ValueError(f"The {modality} weight must be a finite number, got {weight!r}.")
        if weight < 0:
            raise ValueError(f"The {modality} weight must not be negative, got {weight}.")
        given[modality] = float(weight)
    if not given:
        raise ValueError("Give at least one input: text, an image or a sound.")
    if all(w == 0 for w in given.values()):
        raise ValueError("All weights are zero: raise the weight of at least one input.")
    return given


class StudioPipeline(DiffusionPipeline):
    """Frozen encoders, the joint latent model, the image prior and the three decoders, behind one ``__call__``."""

    component_names = (
        "text_encoder", "image_encoder", "audio_encoder", "joint",
        "image_vae", "image_unet", "image_condition", "image_scheduler",
        "audio_unet", "audio_condition", "audio_scheduler", "caption_decoder",
        "image_hub_decoder", "audio_hub_decoder", "image_prior",
    )
    _optional_components = [
        "audio_encoder",
        "image_vae",
        "image_unet",
        "image_condition",
        "image_scheduler",
        "audio_unet",
        "audio_condition",
        "audio_scheduler",
        "caption_decoder",
        "image_hub_decoder",
        "audio_hub_decoder",
        "image_prior",
    ]
    settings_names = (
        "preset", "weights_version", "vocoder", "mel_frames", "mel_mean", "mel_std", "default_steps", "default_guidance",
        "prior_steps", "prior_guidance", "prior_temperature", "latent_temperature",
    )
    _callback_tensor_inputs = ["latents"]
    model_cpu_offload_seq = "text_encoder->image_encoder->audio_encoder->joint->image_prior->image_condition->image_unet->image_vae->audio_condition->audio_unet"

    def __init__(
        self,
        text_encoder,
        image_encoder,
        audio_encoder,
        joint,
        image_vae,
        image_unet,
        image_condition,
        image_scheduler,
        audio_unet,
        audio_condition,
        audio_scheduler,
        caption_decoder,
        image_hub_decoder=None,
        audio_hub_decoder=None,
        image_prior=None,
        preset: str = "custom",
        weights_version: str = "untrained",
        vocoder: str = "auto",
        mel_frames: int = 176,
        mel_mean: float = -5.0,
        mel_std: float = 2.5,
        default_steps: dict | None = None,
        default_guidance: dict | None = None,
        prior_steps: int = 25,
        prior_guidance: float = 1.0,
        prior_temperature: float = 1.0,
        latent_temperature: dict | None = None,
    ):
        super().__init__()
        self.register_modules(
            text_encoder=text_encoder,
            image_encoder=image_encoder,
            audio_encoder=audio_encoder,
            joint=joint,
            image_vae=image_vae,
            image_unet=image_unet,
            image_condition=image_condition,
            image_scheduler=image_scheduler,
            audio_unet=audio_unet,
            audio_condition=audio_condition,
            audio_scheduler=audio_scheduler,
            caption_decoder=caption_decoder,
            image_hub_decoder=image_hub_decoder,
            audio_hub_decoder=audio_hub_decoder,
            image_prior=image_prior,
        )
        self.register_to_config(
            preset=preset,
            weights_version=weights_version,
            vocoder=vocoder,
            mel_frames=mel_frames,
            mel_mean=mel_mean,
            mel_std=mel_std,
            default_steps=default_steps or {"image": 25, "audio": 25, "caption": 1},
            default_guidance=default_guidance or {"image": 3.0, "audio": 3.0, "caption": 1.0},
            prior_steps=prior_steps,
            prior_guidance=prior_guidance,
            prior_temperature=prior_temperature,
            latent_temperature=latent_temperature or {},
        )
        self._vocoder: Vocoder | None = None
        self._guidance_scale: float | None = None
        self._num_timesteps: int | None = None
        self._interrupt = False

    # --- diffusers conventions --------------------------------------------------------------

    @property
    def parts(self) -> dict[str, Any]:
        """The studio's parts (models, schedulers, references) by name, ``None`` where absent."""
        return {name: getattr(self, name, None) for name in self.component_names}

    @property
    def components(self) -> dict[str, Any]:
        """The parts and the settings: ``StudioPipeline(**pipe.components)`` rebuilds this pipeline,
        its default steps, guidance and weights version included."""
        return {**self.parts, **{name: self.config[name] for name in self.settings_names}}

    @classmethod
    def from_pipe(cls, pipeline: StudioPipeline, **overrides) -> StudioPipeline:
        """A new pipeline sharing ``pipeline``'s parts and settings, with ``overrides`` (parts or settings) swapped in."""
        unknown = set(overrides) - set(cls.component_names) - set(cls.settings_names)
        if unknown:
            raise ValueError(f"from_pipe takes parts {list(cls.component_names)} and settings {list(cls.settings_names)}; got {sorted(unknown)}.")
        return cls(**{**pipeline.components, **overrides})

    @property
    def guidance_scale(self) -> float | None:
        """The guidance of the call in progress (or the last one)."""
        return self._guidance_scale

    @property
    def num_timesteps(self) -> int | None:
        """The denoising steps of the call in progress (or the last one)."""
        return self._num_timesteps

    @property
    def interrupt(self) -> bool:
        """Set ``pipe._interrupt = True`` (from a step callback, say) to end the denoising early."""
        return self._interrupt

    def save_pretrained(
        self, save_directory, max_shard_size: str | int | None = None, safe_serialization: bool = True, variant: str | None = None,
        push_to_hub: bool = False, **kwargs,
    ) -> None:
        """Writes the studio folder (see ``pipelines.build.save_studio_pipeline``): every part's
        weights as safetensors, except parts untouched since their seed, which keep only their
        config. ``max_shard_size`` splits larger weights into shards; ``push_to_hub=True`` then
        uploads the folder (``repo_id``, ``private``, ``token``, ``commit_message`` as in
        ``push_to_hub``). Pickled weights and weight variants are not written: asking for them
        raises rather than being ignored."""
        from .build import save_studio_pipeline

        if safe_serialization is not True:
            raise ValueError("A studio saves safetensors only (safe_serialization=True): pickled weights are never written.")
        if variant is not None:
            raise ValueError("A studio folder holds one set of weights: save a variant (fp16, say) to a folder of its own.")
        hub_options = {key: kwargs.pop(key) for key in ("repo_id", "private", "token", "commit_message") if key in kwargs}
        if kwargs:
            raise ValueError(f"Unknown save_pretrained arguments: {sorted(kwargs)}.")
        save_studio_pipeline(self, save_directory, max_shard_size)
        if push_to_hub:
            self._upload(save_directory, hub_options.pop("repo_id", None) or Path(save_directory).name, **hub_options)

    def push_to_hub(
        self, repo_id: str, commit_message: str = "Upload a Fusion Studio", private: bool | None = None, token: str | None = None,
        max_shard_size: str | int | None = "9MB",
    ) -> str:
        """Saves the studio and uploads it to the Hub model repository ``repo_id`` (created if
        needed); returns the commit's URL. Weights are sharded under 10 MB by default."""
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            studio_folder = Path(folder) / "studio"
            self.save_pretrained(studio_folder, max_shard_size=max_shard_size)
            return self._upload(studio_folder, repo_id, commit_message=commit_message, private=private, token=token)

    @staticmethod
    def _upload(folder, repo_id: str, commit_message: str = "Upload a Fusion Studio", private: bool | None = None, token: str | None = None) -> str:
        from huggingface_hub import HfApi

        api = HfApi(token=token)
        api.create_repo(repo_id, private=private, exist_ok=True)
        commit = api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message=commit_message)
        return str(getattr(commit, "commit_url", commit))

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path, device="cpu", torch_dtype: torch.dtype | None = None, variant: str | None = None,
        local_files_only: bool | None = None, token: str | None = None, revision: str | None = None, **overrides,
    ) -> StudioPipeline:
        """Loads a studio folder (or a Hub repository holding one: fetched with
        ``huggingface_hub``, offline with ``local_files_only`` or ``HF_HUB_OFFLINE=1``);
        config-only parts are rebuilt untrained from a seed. ``torch_dtype`` casts every model
        part; ``overrides`` replace parts (``image_scheduler=...``) or settings. Anything else,
        and ``variant`` (a studio folder has one set of weights), raises."""
        from .build import load_studio_pipeline

        if variant is not None:
            raise ValueError("A studio folder holds one set of weights; variant= is not supported (load the folder saved for it).")
        unknown = set(overrides) - set(cls.component_names) - set(cls.settings_names)
        if unknown:
            raise ValueError(f"Unknown from_pretrained arguments: {sorted(unknown)}; parts and settings may be overridden by name.")
        folder = Path(pretrained_model_name_or_path)
        if not folder.is_dir():
            from huggingface_hub import snapshot_download

            folder = Path(snapshot_download(str(pretrained_model_name_or_path), local_files_only=bool(local_files_only), token=token, revision=revision))
        pipeline = load_studio_pipeline(folder, device=device)
        if overrides:
            pipeline = cls.from_pipe(pipeline, **overrides).to(device)
        if torch_dtype is not None:
            pipeline.to(dtype=torch_dtype)
        return pipeline

    @property
    def is_trained(self) -> bool:
        """Whether every learned part was loaded from trained weights."""
        return all(getattr(c, "is_trained", True) for c in self.parts.values() if c is not None)

    # --- 1. checking --------------------------------------------------------------------------

    def check_inputs(
        self, inputs: dict[str, Any], weights: dict[str, float], output: str, steps: int, guidance: float, num_outputs: int, scheduler: str | None,
        best_first: bool = False, temperature: float = 0.0, use_image_prior: bool = True,
    ) -> None:
        """Raises a ``ValueError`` that says how to fix a bad request."""
        if output not in OUTPUTS:
            raise ValueError(f"Unknown output {output!r}; choose one of {OUTPUTS}.")
        if not any(value is not None for value in inputs.values()):
            raise ValueError("Give at least one input: text, an image or a sound.")
        for modality, value in inputs.items():
            if value is not None and self.encoder(modality) is None:
                raise ValueError(f"This studio has no {modality} encoder; leave {modality} out.")
        if output == "image" and self.image_unet is None and self.image_hub_decoder is None:
            raise ValueError("This studio has no image decoder.")
        if output == "audio" and self.audio_unet is None and self.audio_hub_decoder is None:
            raise ValueError("This studio has no sound decoder.")
        if output == "caption" and self.caption_decoder is None:
            raise ValueError("This studio has no caption decoder.")
        if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= 1000:
            raise ValueError(f"steps must be an integer from 1 to 1000, got {steps!r}.")
        if not isinstance(guidance, (int, float)) or not math.isfinite(guidance) or not 0 <= guidance <= 50:
            raise ValueError(f"guidance must be a number from 0 to 50, got {guidance!r}.")
        if not isinstance(num_outputs, int) or isinstance(num_outputs, bool) or not 1 <= num_outputs <= 16:
            raise ValueError(f"num_outputs must be an integer from 1 to 16, got {num_outputs!r}.")
        if scheduler is not None and scheduler not in SCHEDULERS:
            raise ValueError(f"Unknown scheduler {scheduler!r}; choose one of {sorted(SCHEDULERS)}.")
        if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) or not math.isfinite(temperature) or not 0 <= temperature <= 2:
            raise ValueError(f"temperature must be a number from 0 to 2, got {temperature!r}.")
        if not isinstance(best_first, bool):
            raise ValueError(f"best_first must be true or false, got {best_first!r}.")
        if not isinstance(use_image_prior, bool):
            raise ValueError(f"use_image_prior must be true or false, got {use_image_prior!r}.")
        if best_first and self.encoder(OUTPUT_MODALITY[output]) is None:
            raise ValueError(f"best_first reads each {output} back with the {OUTPUT_MODALITY[output]} encoder, which this studio lacks.")
        check_weights(weights, **inputs)

    def resolve_defaults(self, output: str, steps: int | None, guidance: float | None) -> tuple[int, float]:
        """Steps and guidance as given, else the pipeline's defaults for ``output``."""
        if steps is None:
            steps = self.config.default_steps.get(output, 1)
        if guidance is None:
            guidance = self.config.default_guidance.get(output, 1.0)
        return steps, guidance

    def resolve_temperature(self, output: str, temperature: float | None) -> float:
        """The latent temperature as given, else the pipeline's default for ``output`` (0: the posterior mean)."""
        return float(self.config.latent_temperature.get(output, 0.0)) if temperature is None else temperature

    def encoder(self, modality: str):
        return {"text": self.text_encoder, "image": self.image_encoder, "audio": self.audio_encoder}[modality]

    # --- 2. encoding and fusing -----------------------------------------------------------

    def prepare_inputs(self, text: str | None, image, audio) -> tuple[dict[str, Any], dict[str, Any]]:
        """Loads and checks the media once: ``(encoder inputs, recipe entries)``."""
        prepared: dict[str, Any] = {"text": None, "image": None, "audio": None}
        recipe: dict[str, Any] = {}
        if text is not None:
            if not isinstance(text, str):
                raise ValueError(f"text must be a string, got {type(text).__name__}.")
            if not text.strip():
                raise ValueError("The text prompt is empty; type a few words or leave text out.")
            prepared["text"], recipe["text"] = text, text
        if image is not None:
            prepared["image"] = load_image(image)
            recipe["image_sha256"] = image_digest(prepared["image"])
        if audio is not None:
            waveform = prepare_waveform(audio)
            prepared["audio"] = (SAMPLE_RATE, waveform)
            recipe["audio_sha256"] = audio_digest(waveform)
        return prepared, recipe

    @torch.no_grad()
    def fuse(self, inputs: dict[str, Any], weights: dict[str, float]):
        """Encodes the given inputs and fuses them: the joint model's ``FusedPosterior`` (batch 1)."""
        embeddings = {m: self.encoder(m).encode(v).to(self.device) for m, v in inputs.items() if v is not None}
        given = {m: float(weights.get(m, 1.0)) for m in embeddings}
        return self.joint(embeddings, given)

    # --- 3. decoding ----------------------------------------------------------------------

    def denoise(self, unet, projector, scheduler, embeddings: torch.Tensor, shape: tuple[int, ...], steps: int, guidance: float, generators: list[torch.Generator], callback: StepCallback | None) -> torch.Tensor:
        """Classifier-free-guided denoising from noise: one sample of ``shape`` per row of
        ``embeddings [N, D]``, each from its own generator."""
        count = len(generators)
        noise = torch.stack([torch.randn(shape, generator=g) for g in generators]).to(self.device, unet.dtype)
        latents = noise * scheduler.init_noise_sigma  # (N, C, H, W)
        scheduler.set_timesteps(steps, device=self.device)
        conditional = projector(embeddings.to(unet.dtype))  # (N, K, C)
        guided = guidance != 1.0
        tokens = torch.cat([projector.null(count), conditional]) if guided else conditional
        self._num_timesteps, self._guidance_scale = len(scheduler.timesteps), float(guidance)
        progress = self.progress_bar(total=len(scheduler.timesteps))
        for index, timestep in enumerate(scheduler.timesteps):
            if self.interrupt:
                break
            progress.update()
            model_input = torch.cat([latents, latents]) if guided else latents
            model_input = scheduler.scale_model_input(model_input, timestep)
            prediction = unet(model_input, timestep, encoder_hidden_states=tokens).sample
            if guided:
                unconditional, conditional_prediction = prediction.chunk(2)
                prediction = unconditional + guidance * (conditional_prediction - unconditional)
            latents = scheduler.step(prediction, timestep, latents).prev_sample
            if callback is not None:
                result = callback(self, index, int(timestep), {"latents": latents})
                if result and "latents" in result:
                    latents = result["latents"]
        progress.close()
        return latents

    def decode_image(self, embeddings, steps, guidance, generators, callback, scheduler_name) -> list[Image.Image]:
        if self.image_hub_decoder is not None:  # Stable unCLIP, fed the predicted image embedding
            decoder = UnclipImageDecoder(self.image_hub_decoder)
            return decoder(embeddings, steps, guidance, generators, callback_on_step_end=callback)
        scheduler = self._scheduler(self.image_scheduler, scheduler_name)
        channels, size = self.image_unet.config.in_channels, self.image_unet.config.sample_size
        latents = self.denoise(self.image_unet, self.image_condition, scheduler, embeddings, (channels, size, size), steps, guidance, generators, callback)
        return [self.preview_image(row[None]) for row in latents]  # decoded one by one, as previews are

    def decode_audio(self, embeddings, steps, guidance, generators, callback, scheduler_name) -> list[tuple[int, np.ndarray]]:
        if self.audio_hub_decoder is not None:  # AudioLDM, fed the predicted CLAP embedding
            decoder = AudioLDMSoundDecoder(self.audio_hub_decoder)
            sounds = decoder(embeddings, steps, guidance, generators, callback_on_step_end=callback)
        else:
            log_mels = self.denoise_log_mels(embeddings, steps, guidance, generators, callback, scheduler_name)
            sample_rate, waves = self.vocoder(log_mels, clip=False)
            sounds = [(sample_rate, wave) for wave in waves]
        # every sound at one loudness, its peaks under full scale (no clipped samples)
        return [(rate, normalise_loudness(wave)) for rate, wave in sounds]

    def denoise_log_mels(self, embeddings, steps, guidance, generators, callback, scheduler_name=None) -> torch.Tensor:
        """The sound decoder's log-mels ``[N, 80, mel_frames]`` for sound embeddings, in the range the vocoder takes."""
        scheduler = self._scheduler(self.audio_scheduler, scheduler_name)
        config, patch = self.audio_unet.config, mel_patch(self.audio_unet)
        shape = (config.in_channels, config.sample_size[0], self.config.mel_frames // patch)
        folded = self.denoise(self.audio_unet, self.audio_condition, scheduler, embeddings, shape, steps, guidance, generators, callback)
        log_mel = unfold_mels(folded, patch)[:, 0].float() * self.config.mel_std + self.config.mel_mean  # (N, 80, T)
        return log_mel.clamp(min=math.log(1e-5), max=4.0)

    def decode_caption(self, embeddings, seed, method) -> list[str]:
        if method == "sample":  # one seeded draw per row, so each variant replays on its own
            return [self.caption_decoder.generate(row[None], method="sample", seed=seed + i)[0] for i, row in enumerate(embeddings)]
        return self.caption_decoder.generate(embeddings, method=method)

    @torch.no_grad()
    def decode_latents(
        self, z: torch.Tensor, output: str, steps: int, guidance: float, seed: int, callback: StepCallback | None = None, scheduler: str | None = None,
        caption_method: str = "beam", use_image_prior: bool = True,
    ) -> list[Any]:
        """Joint latents ``[N, Z]`` → N outputs: each row's predicted embedding, decoded (row i uses ``seed + i``).

        Images and sounds are made one row at a time, so a variant is the same to the last bit as a
        call for it alone (batched arithmetic rounds differently); the step callback then counts
        on across the rows (row i's step k is ``i * steps + k``).
        """
        if output in ("image", "audio") and z.shape[0] > 1:
            made = []
            for row in range(z.shape[0]):
                step = None
                if callback is not None:
                    def step(pipeline, index, timestep, tensors, offset=row * steps):
                        return callback(pipeline, offset + index, timestep, tensors)
                made += self.decode_latents(z[row : row + 1], output, steps, guidance, seed + row, step, scheduler, caption_method, use_image_prior)
            return made
        target = OUTPUT_MODALITY[output]
        embeddings = self.predict_embedding(z, target, [seed + i for i in range(z.shape[0])], use_image_prior)  # (N, D)
        generators = [torch.Generator().manual_seed(seed + i) for i in range(z.shape[0])]
        if output == "image":
            return self.decode_image(embeddings, steps, guidance, generators, callback, scheduler)
        if output == "audio":
            return self.decode_audio(embeddings, steps, guidance, generators, callback, scheduler)
        return self.decode_caption(embeddings, seed, caption_method)

    @torch.no_grad()
    def agreement(self, outputs: list[Any], output: str, mu: torch.Tensor) -> list[float]:
        """How well each output matches the inputs: the cosine between the fused posterior mean
        ``mu [Z]`` and the output's own posterior mean, the output read back through its
        modality's encoder (as retrieval compares items). An output that cannot be read back (a
        silent sound, an empty caption) scores -1, the lowest cosine."""
        modality = OUTPUT_MODALITY[output]
        scores = []
        for made in outputs:
            try:
                prepared, _ = self.prepare_inputs(**{m: made if m == modality else None for m in INPUTS})
            except ValueError:
                scores.append(-1.0)
                continue
            own = self.fuse(prepared, {modality: 1.0}).mu[0]
            scores.append(float(torch.nn.functional.cosine_similarity(own.float(), mu.float(), dim=0)))
        return scores

    @torch.no_grad()
    def predict_embedding(self, z: torch.Tensor, target: str, seeds: list[int], use_image_prior: bool = True) -> torch.Tensor:
        """The ``target`` embedding ``[N, D]`` for joint latents ``z [N, Z]``: the joint model's
        decoded mean, or for images, where the studio has a trained image prior and
        ``use_image_prior``, the prior's draw (row i from ``seeds[i]``: the nearest entry of an
        image bank, or a diffusion prior's sample) with the decoded mean's part outside the
        prior's components."""
        z = z.to(self.device, self.joint.dtype)
        decoded = self.joint.decode(z, target)
        if target == "image" and use_image_prior and self.image_prior is not None and getattr(self.image_prior, "is_trained", True):
            generators = prior_generators(seeds)
            config = self.config
            return self.image_prior.sample(z, generators, config.prior_steps, config.prior_guidance, outside=decoded, temperature=config.prior_temperature)
        return decoded

    @torch.no_grad()
    def preview_image(self, latents: torch.Tensor) -> Image.Image:
        """The first of ``latents [N, C, h, w]`` decoded to a PIL image (128x128 with the embedded preset; final outputs and live previews)."""
        pixels = decode_latents(self.image_vae, latents[:1].to(self.image_vae.dtype))  # (1, 3, H, W)
        array = ((pixels[0].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
        return Image.fromarray(array)

    @property
    def vocoder(self) -> Vocoder:
        if self._vocoder is None:
            method = None if self.config.vocoder == "auto" else self.config.vocoder
            self._vocoder = Vocoder(method=method)
        return self._vocoder

    @staticmethod
    def _scheduler(scheduler, name: str | None):
        # a fresh copy each call: schedulers keep per-call state (timesteps, solver history)
        return swap_scheduler(scheduler, name) if name else type(scheduler).from_config(scheduler.config)

    # --- the call -------------------------------------------------------------------------

    @torch.no_grad()
    def __call__(
        self,
        text: str | None = None,
        image=None,
        audio=None,
        weights: dict[str, float] | None = None,
        output: str = "image",
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        num_outputs: int = 1,
        callback_on_step_end: StepCallback | None = None,
        scheduler: str | None = None,
        caption_method: str = "beam",
        best_first: bool = False,
        temperature: float | None = None,
        use_image_prior: bool = True,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
        return_dict: bool = True,
    ) -> StudioPipelineOutput | tuple:
        """Generates ``num_outputs`` images, sounds or captions from any weighted mix of inputs.

        Args:
            text, image, audio: the inputs (a string; a PIL image or path; ``(rate, array)`` or a path).
            weights: modality → weight (default 1; 0 leaves an input out).
            output: ``"image"``, ``"audio"`` or ``"caption"``.
            num_inference_steps, guidance_scale: diffusion steps and classifier-free guidance
                (defaults from the pipeline config).
            generator, seed: the randomness; with a generator, a seed is drawn from it. Output
                ``i`` uses seed ``seed + i``, so each variant replays on its own.
            callback_on_step_end: ``f(pipeline, step, timestep, {"latents": ...})`` after each step.
            scheduler: ``"ddim"`` or ``"dpm++"`` to swap the sampler; default: the trained one.
            caption_method: ``"greedy"``, ``"beam"`` or ``"sample"``.
            best_first: order the outputs by their agreement with the inputs, best first (see
                ``agreement``); the recipe's ``order`` lists each output's variant ``i`` (its
                seed is ``seed + i``), and replaying the recipe ranks them again.
            temperature: how far each output's latent is drawn from the fused posterior's mean,
                in posterior standard deviations (0: the mean itself; default from the config,
                ``latent_temperature``, per output). Output ``i`` draws with seed ``seed + i``.
            use_image_prior: images go through the studio's image prior where it has one (the
                embedded preset's image bank snaps to the nearest training picture); false takes
                the joint model's decoded mean, a blend that the decoder draws less sharply.
            callback_on_step_end_tensor_inputs: the tensors the step callback receives (only
                ``"latents"`` exists).
            return_dict: ``False`` returns ``(outputs, recipe, shares, agreement)``.
        """
        unknown = set(callback_on_step_end_tensor_inputs or []) - set(self._callback_tensor_inputs)
        if unknown:
            raise ValueError(f"callback_on_step_end_tensor_inputs may name only {self._callback_tensor_inputs}; got {sorted(unknown)}.")
        self._interrupt = False
        weights = dict(weights or {})
        steps, guidance = self.resolve_defaults(output, num_inference_steps, guidance_scale)
        temperature = self.resolve_temperature(output, temperature)
        if seed is None:
            seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator).item())
        # 1. check inputs
        self.check_inputs({"text": text, "image": image, "audio": audio}, weights, output, steps, guidance, num_outputs, scheduler, best_first, temperature, use_image_prior)
        if output == "caption" and caption_method not in ("greedy", "beam", "sample"):
            raise ValueError(f"Unknown caption_method {caption_method!r}; choose greedy, beam or sample.")
        # 2. load the media and fuse the inputs in the joint latent
        inputs, recipe_inputs = self.prepare_inputs(text, image, audio)
        posterior = self.fuse(inputs, weights)
        # 3. draw from the fused posterior (its mean at temperature 0): to the output's embedding, then to media
        z = self.joint.draw(posterior.mu, posterior.logvar, temperature, [seed + i for i in range(num_outputs)])  # (N, Z)
        outputs = self.decode_latents(z, output, steps, guidance, seed, callback_on_step_end, scheduler, caption_method, use_image_prior)
        order, agreement = list(range(num_outputs)), None
        if best_first:
            scores = self.agreement(outputs, output, posterior.mu[0])
            order = sorted(order, key=lambda i: -scores[i])  # stable: ties keep the variant order
            outputs, agreement = [outputs[i] for i in order], [scores[i] for i in order]
        # 4. the recipe
        given = [m for m in INPUTS if inputs[m] is not None]
        recipe = {
            "version": RECIPE_VERSION,
            "output": output,
            "inputs": recipe_inputs,
            "weights": {m: float(weights.get(m, 1.0)) for m in given},
            "seed": seed,
            "steps": steps,
            "guidance": float(guidance),
            "temperature": float(temperature),
            "use_image_prior": use_image_prior,
            "num_outputs": num_outputs,
            "scheduler": scheduler,
            "caption_method": caption_method if output == "caption" else None,
            "best_first": best_first,
            "order": order,
            "preset": self.config.preset,
            "weights_version": self.config.weights_version,
        }
        shares = {m: float(posterior.shares[m][0]) for m in given}
        shares["prior"] = float(posterior.prior_share[0])
        result = StudioPipelineOutput(outputs=outputs, recipe=recipe, shares=shares, agreement=agreement)
        return result if return_dict else (outputs, recipe, shares, agreement)


def mel_frames_to_seconds(frames: int) -> float:
    """Length in seconds of a waveform vocoded from ``frames`` mel frames."""
    return frames * HOP_LENGTH / SAMPLE_RATE
