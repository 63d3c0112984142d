"""What the evaluation compares, behind one small interface: inputs → representation → embeddings.

A method ``encode``s embeddings of any subset of modalities (every row has all the modalities
given) into one representation ``[B, Z]``, and ``predict``s an output modality's embedding from
it, which the studio's decoders then turn into media. Either returns ``None`` where the method
cannot do it (the label bridge has no sound), and the report shows "n/a".
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F

from ..decoders.embedding_prior import prior_generators
from ..fusion.joint import JointLatentModel
from .label_bridge import LabelBridge

CHUNK = 1024  # rows per forward pass


class Method:
    """The interface; ``name`` is the row label in the report."""

    name: str = ""
    description: str = ""

    def encode(self, embeddings: Mapping[str, torch.Tensor]) -> torch.Tensor | None:
        raise NotImplementedError

    def predict(self, z: torch.Tensor, target: str) -> torch.Tensor | None:
        raise NotImplementedError

    def draw(self, embeddings: Mapping[str, torch.Tensor], target: str) -> torch.Tensor | None:
        """The representation to generate ``target`` from: by default the one ``encode`` gives."""
        return self.encode(embeddings)


class LatentModelMethod(Method):
    """A multimodal VAE (the joint model with any fusion rule, or the early-fusion VAE): the
    representation is the posterior mean, predictions are its embedding decoders' outputs, or
    draws from its diffusion prior where it has one for the output (``priors``, output → prior;
    row i drawn from seed ``seed + i``, as the studio draws output i). To generate, it draws the
    latent from the posterior at the output's ``latent_temperature`` (0 or absent: the mean), as
    the studio does."""

    def __init__(
        self, name: str, model, description: str = "", priors: Mapping | None = None, prior_steps: int = 25, prior_guidance: float = 1.0,
        seed: int = 0, prior_temperature: float = 1.0, latent_temperature: Mapping[str, float] | None = None,
    ):
        self.name, self.model, self.description = name, model.eval(), description
        self.priors = {target: prior.eval() for target, prior in (priors or {}).items()}
        self.prior_steps, self.prior_guidance, self.prior_temperature, self.seed = prior_steps, prior_guidance, prior_temperature, seed
        self.latent_temperature = dict(latent_temperature or {})

    @torch.no_grad()
    def posteriors(self, embeddings: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Means and log-variances ``[B, Z]`` of the fused posteriors, in chunks."""
        count = next(iter(embeddings.values())).shape[0]
        mus, logvars = [], []
        for s in range(0, count, CHUNK):
            posterior = self.model({m: e[s : s + CHUNK].to(self.model.device) for m, e in embeddings.items()})
            mus.append(posterior.mu.float().cpu())
            logvars.append(posterior.logvar.float().cpu())
        return torch.cat(mus), torch.cat(logvars)

    def encode(self, embeddings: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.posteriors(embeddings)[0]  # (B, Z)

    def draw(self, embeddings: Mapping[str, torch.Tensor], target: str) -> torch.Tensor:
        temperature = self.latent_temperature.get("caption" if target == "text" else target, 0.0)  # keyed by the studio's outputs
        if temperature == 0:
            return self.encode(embeddings)
        mu, logvar = self.posteriors(embeddings)
        return JointLatentModel.draw(mu, logvar, temperature, [self.seed + i for i in range(len(mu))])

    @torch.no_grad()
    def predict(self, z: torch.Tensor, target: str) -> torch.Tensor:
        decoded = self.model.decode(z.to(self.model.device, self.model.dtype), target)
        if target in self.priors:  # as the studio draws: the decoded mean outside the prior's components
            prior = self.priors[target]
            generators = prior_generators([self.seed + i for i in range(len(z))])
            decoded = prior.sample(
                z.to(prior.device, prior.dtype), generators, self.prior_steps, self.prior_guidance, outside=decoded, temperature=self.prior_temperature,
            )
        return decoded.float().cpu()


def studio_priors(pipeline) -> dict:
    """Output → prior: the studio's trained image prior, if it has one."""
    prior = pipeline.image_prior
    return {"image": prior} if prior is not None and getattr(prior, "is_trained", True) else {}


def prior_sampling(pipeline) -> dict:
    """How the studio draws from its prior, as ``LatentModelMethod`` keywords."""
    config = pipeline.config
    return {"prior_steps": config.prior_steps, "prior_guidance": config.prior_guidance, "prior_temperature": config.prior_temperature,
            "latent_temperature": dict(config.latent_temperature)}


def studio_method(name: str, pipeline, description: str = "", seed: int = 0) -> LatentModelMethod:
    """The studio's joint model as a method, drawing images through its prior as the studio does."""
    return LatentModelMethod(name, pipeline.joint, description, studio_priors(pipeline), seed=seed, **prior_sampling(pipeline))


class LabelBridgeMethod(Method):
    """The untrained label bridge: everything is said in MiniLM's text space.

    Text is its own embedding, an image its bridged embedding, text and image together the
    normalised sum of the two; sound is out of its reach.
    """

    def __init__(self, bridge: LabelBridge, name: str = "label bridge"):
        self.bridge, self.name = bridge, name
        self.description = "untrained: ImageNet class probabilities × MiniLM embeddings of the class names"

    def encode(self, embeddings: Mapping[str, torch.Tensor]) -> torch.Tensor | None:
        if "audio" in embeddings:
            return None
        parts = []
        if "text" in embeddings:
            parts.append(F.normalize(embeddings["text"].float(), dim=-1))
        if "image" in embeddings:
            parts.append(self.bridge(embeddings["image"]))
        return F.normalize(torch.stack(parts).sum(0), dim=-1)  # (B, D_text)

    def predict(self, z: torch.Tensor, target: str) -> torch.Tensor | None:
        return z if target == "text" else None
