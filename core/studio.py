"""The facade that the UI and the API call: plain Python in and out, no tensors.

``load_studio`` builds a ``Studio`` from a preset name (a folder under ``assets/``) or from
any folder holding a ``studio.json``; ``Studio.encode`` fuses any weighted mix of text, image
and sound into the joint latent and reports each input's share.
"""

from __future__ import annotations

import json
import math
import numbers
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .encoders import Encoder, build_encoder, load_or_init
from .fusion.joint import FusedPosterior, JointLatentModel
from .media import AudioInput, ImageInput

ASSETS = Path(__file__).resolve().parent.parent / "assets"
PRESETS = ("embedded",)
INPUTS = ("text", "image", "audio")


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
class Studio:
    """Encoders for each modality and the joint latent model of one preset."""

    encoders: dict[str, Encoder]
    joint: JointLatentModel
    preset: str = "embedded"
    weights_version: str = "untrained"
    spec: dict[str, Any] = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        return self.joint.device

    @property
    def is_trained(self) -> bool:
        """Whether the joint model (and every trained encoder) was loaded from trained weights."""
        return all(getattr(part, "is_trained", True) for part in [self.joint, *self.encoders.values()])

    def embed(
        self, text: str | None = None, image: ImageInput | None = None, audio: AudioInput | None = None
    ) -> dict[str, torch.Tensor]:
        """Frozen-encoder embeddings ``[1, D_m]`` of the given inputs (checked, see ``encode``)."""
        given = {m: v for m, v in zip(INPUTS, (text, image, audio), strict=True) if v is not None}
        if not given:
            raise ValueError("Give at least one input: text, an image or a sound.")
        if "text" in given:
            if not isinstance(text, str):
                raise ValueError(f"text must be a string, got {type(text).__name__}.")
            if not text.strip():
                raise ValueError("The text prompt is empty; type a few words or leave text out.")
        embeddings = {}
        for modality, value in given.items():
            if modality not in self.encoders:
                raise ValueError(f"The {self.preset!r} preset has no {modality} encoder.")
            embeddings[modality] = self.encoders[modality].encode(value)
        return embeddings

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
        given_weights = self._check_weights(weights, text=text, image=image, audio=audio)
        embeddings = self.embed(text=text, image=image, audio=audio)
        with torch.no_grad():
            posterior = self.joint({m: e.to(self.device) for m, e in embeddings.items()}, given_weights)
        return self._to_encoding(posterior, given_weights)

    @staticmethod
    def _check_weights(weights: dict[str, float] | None, **inputs: Any) -> dict[str, float]:
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
        if given and all(w == 0 for w in given.values()):
            raise ValueError("All weights are zero: raise the weight of at least one input.")
        return given

    def _to_encoding(self, posterior: FusedPosterior, weights: dict[str, float]) -> Encoding:
        return Encoding(
            mu=posterior.mu[0].float().cpu().numpy(),
            logvar=posterior.logvar[0].float().cpu().numpy(),
            shares={m: float(posterior.shares[m][0]) for m in weights},
            prior_share=float(posterior.prior_share[0]),
            weights=weights,
        )

    def save_pretrained(self, folder: str | Path) -> None:
        """Writes ``studio.json`` and every trained component (config + safetensors) to ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        spec = json.loads(json.dumps(self.spec))
        spec.update(preset=self.preset, weights_version=self.weights_version)
        save_component(self.joint, folder / spec["joint"]["subfolder"])
        for modality, encoder in self.encoders.items():
            subfolder = spec["encoders"][modality].get("subfolder")
            if subfolder:
                save_component(encoder, folder / subfolder)
        (folder / "studio.json").write_text(json.dumps(spec, indent=2) + "\n")


def save_component(model, folder: Path) -> None:
    """``save_pretrained`` for a trained model; only its config for an untrained one, so that it
    reloads as untrained (seeded) rather than passing for trained weights."""
    if getattr(model, "is_trained", True):
        model.save_pretrained(folder)
    else:
        model.save_config(folder)


def resolve_preset(preset_or_path: str | Path) -> Path:
    """A preset name (``"embedded"``) or a folder with a ``studio.json`` → that folder."""
    if str(preset_or_path) in PRESETS:
        return ASSETS / str(preset_or_path)
    folder = Path(preset_or_path)
    if (folder / "studio.json").is_file():
        return folder
    raise ValueError(
        f"{str(preset_or_path)!r} is neither a preset ({', '.join(PRESETS)}) nor a folder with a studio.json."
    )


def load_studio(preset_or_path: str | Path = "embedded", device: str | torch.device = "cpu") -> Studio:
    """Builds the studio of a preset or a saved folder, on ``device``, with no network needed.

    Components whose folder has only a config (no weights yet) start from a seeded random
    initialisation; ``Studio.is_trained`` tells.
    """
    start = time.perf_counter()
    folder = resolve_preset(preset_or_path)
    spec = json.loads((folder / "studio.json").read_text())
    encoders = {m: build_encoder(s, folder).to(device) for m, s in spec["encoders"].items()}
    joint_spec = spec["joint"]
    joint = load_or_init(JointLatentModel, folder / joint_spec["subfolder"], seed=joint_spec.get("seed", 0))
    studio = Studio(
        encoders=encoders,
        joint=joint.to(device),
        preset=spec.get("preset", folder.name),
        weights_version=spec.get("weights_version", "unknown"),
        spec=spec,
    )
    for modality, encoder in encoders.items():
        if modality in joint.modalities and encoder.embed_dim != joint.config.modality_dims[modality]:
            raise ValueError(
                f"The {modality} encoder gives {encoder.embed_dim}-d embeddings but the joint model "
                f"expects {joint.config.modality_dims[modality]}; the preset's configs disagree."
            )
    studio.load_seconds = time.perf_counter() - start
    return studio
