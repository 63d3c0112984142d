"""Adapters for larger hub decoders: Stable unCLIP (image embedding → image) and AudioLDM (CLAP embedding → sound).

Each adapter loads a diffusers pipeline from a Hugging Face Hub repo id or a local folder, with
no download when ``HF_HUB_OFFLINE`` is set or the source is a folder, and only safetensors
weights. Both pipelines predate ``callback_on_step_end``: the adapters call it through the
pipelines' per-step ``callback`` as ``callback_on_step_end(pipeline, step, timestep,
{"latents": latents})``, so it can report progress or stop a run by raising, but what it
returns is ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AudioLDMPipeline, DiffusionPipeline, StableUnCLIPImg2ImgPipeline
from PIL import Image

from ..encoders.hub import resolve_local_files_only

StepCallback = Callable[[DiffusionPipeline, int, int, dict[str, torch.Tensor]], Any]


def _load_pipeline(
    pipeline_class: type[DiffusionPipeline],
    name_or_path: str,
    local_files_only: bool | None,
    device: str | torch.device,
    torch_dtype: torch.dtype,
) -> DiffusionPipeline:
    """A diffusers pipeline from a folder or Hub repo id, safetensors only, on ``device``."""
    pipeline = pipeline_class.from_pretrained(
        name_or_path,
        local_files_only=resolve_local_files_only(name_or_path, local_files_only),
        use_safetensors=True,
        dtype=torch_dtype,  # diffusers 0.42 renamed torch_dtype to dtype
    )
    pipeline.set_progress_bar_config(disable=True)  # the caller reports progress via the callback
    return pipeline.to(device)


def _check_embeddings(embeds: torch.Tensor, embed_dim: int, name: str) -> None:
    """Raises a ValueError unless ``embeds`` is a finite, non-empty ``[B, embed_dim]`` tensor."""
    if not isinstance(embeds, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape [B, {embed_dim}], got {type(embeds).__name__}.")
    if embeds.ndim != 2 or embeds.shape[0] == 0 or embeds.shape[1] != embed_dim:
        raise ValueError(
            f"{name} must have shape [B, {embed_dim}] with B >= 1, got {list(embeds.shape)}; pass embeddings "
            f"from the encoder this decoder was trained with ({embed_dim} values each)."
        )
    if not torch.isfinite(embeds).all():
        raise ValueError(f"{name} contain NaN or infinite values; check the model that produced them.")


def _legacy_callback(
    pipeline: DiffusionPipeline, callback_on_step_end: StepCallback | None
) -> Callable[[int, int, torch.Tensor], None] | None:
    """Adapts a ``callback_on_step_end`` to the pipelines' ``callback(step, timestep, latents)``."""
    if callback_on_step_end is None:
        return None

    def callback(step: int, timestep: int, latents: torch.Tensor) -> None:
        callback_on_step_end(pipeline, step, timestep, {"latents": latents})

    return callback


class UnclipImageDecoder:
    """CLIP image embedding ``[B, embed_dim]`` → images, with diffusers' Stable unCLIP.

    The embeddings are the *unnormalised* image embeddings of the CLIP vision model the pipeline
    was trained with (its ``image_normalizer`` holds their mean and std). The text prompt is
    empty, so the image embedding alone conditions the UNet; classifier-free guidance
    (``guidance_scale > 1``) contrasts it with a zero embedding.
    """

    def __init__(self, pipeline: StableUnCLIPImg2ImgPipeline):
        self.pipeline = pipeline
        self.embed_dim = int(pipeline.image_normalizer.config.embedding_dim)

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str,
        local_files_only: bool | None = None,
        device: str | torch.device = "cpu",
        torch_dtype: torch.dtype = torch.float32,
    ) -> UnclipImageDecoder:
        """Loads a Stable unCLIP (img2img layout) pipeline from a folder or Hub repo id."""
        return cls(_load_pipeline(StableUnCLIPImg2ImgPipeline, name_or_path, local_files_only, device, torch_dtype))

    @property
    def device(self) -> torch.device:
        return self.pipeline.unet.device

    @property
    def dtype(self) -> torch.dtype:
        return self.pipeline.unet.dtype

    def __call__(
        self,
        image_embeds: torch.Tensor,
        num_inference_steps: int,
        guidance_scale: float,
        generator: torch.Generator | list[torch.Generator] | None,
        callback_on_step_end: StepCallback | None = None,
        noise_level: int = 0,
    ) -> list[Image.Image]:
        """One image per row of ``image_embeds``; ``noise_level`` noises the embedding first for variety."""
        # 1. check inputs
        _check_embeddings(image_embeds, self.embed_dim, "image_embeds")
        batch = image_embeds.shape[0]
        # 2. generate: one empty prompt per embedding, so the prompt batch matches the image batch
        output = self.pipeline(
            prompt=[""] * batch,
            image_embeds=image_embeds.to(self.device, self.dtype),  # (B, D)
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
            generator=generator,
            noise_level=noise_level,
            callback=_legacy_callback(self.pipeline, callback_on_step_end),
            output_type="pil",
        )
        return list(output.images)


class AudioLDMSoundDecoder:
    """CLAP text embedding ``[B, embed_dim]`` → sounds, with diffusers' AudioLDM.

    Embeddings are L2-normalised first, as the pipeline does with its own CLAP text embeddings.
    With ``guidance_scale > 1`` the unconditional embedding is the pipeline's CLAP embedding of
    the empty text. Sounds are ``(sample_rate, float32 waveform)`` pairs at the vocoder's rate.
    """

    def __init__(self, pipeline: AudioLDMPipeline):
        self.pipeline = pipeline
        self.embed_dim = int(pipeline.unet.config.projection_class_embeddings_input_dim)
        self.sample_rate = int(pipeline.vocoder.config.sampling_rate)

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str,
        local_files_only: bool | None = None,
        device: str | torch.device = "cpu",
        torch_dtype: torch.dtype = torch.float32,
    ) -> AudioLDMSoundDecoder:
        """Loads an AudioLDM pipeline from a folder or Hub repo id."""
        return cls(_load_pipeline(AudioLDMPipeline, name_or_path, local_files_only, device, torch_dtype))

    @property
    def device(self) -> torch.device:
        return self.pipeline.unet.device

    @property
    def dtype(self) -> torch.dtype:
        return self.pipeline.unet.dtype

    def __call__(
        self,
        prompt_embeds: torch.Tensor,
        num_inference_steps: int,
        guidance_scale: float,
        generator: torch.Generator | list[torch.Generator] | None,
        audio_length_in_s: float | None = None,
        callback_on_step_end: StepCallback | None = None,
    ) -> list[tuple[int, np.ndarray]]:
        """One sound per row of ``prompt_embeds``; ``audio_length_in_s`` defaults to the UNet's sample size."""
        # 1. check inputs
        _check_embeddings(prompt_embeds, self.embed_dim, "prompt_embeds")
        embeds = F.normalize(prompt_embeds.to(self.device, self.dtype), dim=-1)  # (B, D)
        # 2. generate
        output = self.pipeline(
            prompt_embeds=embeds,
            audio_length_in_s=audio_length_in_s,
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
            generator=generator,
            callback=_legacy_callback(self.pipeline, callback_on_step_end),
            output_type="np",
        )
        waveforms = output.audios  # (B, samples)
        return [(self.sample_rate, np.asarray(waveform, dtype=np.float32)) for waveform in waveforms]
