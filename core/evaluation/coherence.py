"""A judge of generated media that was not trained with the model: nearest real neighbour.

A generated image, sound or caption is put in a fixed feature space (frozen pretrained
EfficientNet features for images, statistics of log-mel bands for sounds, frozen MiniLM for
captions), next to real items of the corpus. It counts as coherent when its nearest real item
is of the prompt's concept (or, more leniently, of its category). The prompt's own media and
exact copies of it (concept-joined items reuse their parents' files) are left out of the
reference, so a model cannot score by reproducing its input; the same rule scores real data
(the prompt item's own real output-modality media) and gives chance (the share of the
reference that is of the prompt's concept).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

LEVELS = ("concept", "category")


def sound_features(log_mels: torch.Tensor) -> torch.Tensor:
    """Log-mel spectrograms ``[N, bands, frames]`` → mean and standard deviation of each band ``[N, 2 * bands]``."""
    log_mels = torch.as_tensor(log_mels).float()
    return torch.cat([log_mels.mean(-1), log_mels.std(-1)], dim=-1)


@dataclass
class Judge:
    """Nearest-neighbour judge over a reference set of real items.

    Attributes:
        features: ``[R, D]`` reference features.
        concepts, categories: the reference items' labels.
        keys: the reference items' media identities (a file path, or the caption text), so a
            prompt's own media and copies of it can be left out.
        metric: ``"cosine"`` or ``"euclidean"`` (after standardising by the reference's statistics).
    """

    features: torch.Tensor
    concepts: Sequence[str]
    categories: Sequence[str]
    keys: Sequence[str]
    metric: str = "cosine"

    def __post_init__(self):
        if self.metric not in ("cosine", "euclidean"):
            raise ValueError(f"Unknown metric {self.metric!r}; use cosine or euclidean.")
        if not len(self.features) == len(self.concepts) == len(self.categories) == len(self.keys):
            raise ValueError("The judge needs one concept, category and key per reference row.")
        self.features = self.features.float()
        self.mean = self.features.mean(0)
        self.std = self.features.std(0).clamp(min=1e-6) if len(self.features) > 1 else torch.ones_like(self.mean)
        self._concepts, self._categories = np.asarray(self.concepts), np.asarray(self.categories)
        self._keys = np.asarray(self.keys)

    def _space(self, features: torch.Tensor) -> torch.Tensor:
        features = torch.as_tensor(features).float()
        if self.metric == "cosine":
            return F.normalize(features, dim=-1)
        return (features - self.mean) / self.std

    def allowed(self, exclude_keys: Sequence[str]) -> np.ndarray:
        """``[Q, R]``: which reference items each query may be matched with."""
        return self._keys[None, :] != np.asarray(exclude_keys)[:, None]

    def nearest(self, queries: torch.Tensor, exclude_keys: Sequence[str]) -> np.ndarray:
        """Index of each query's nearest allowed reference item: ``[Q]``."""
        q, r = self._space(queries), self._space(self.features)
        scores = q @ r.T if self.metric == "cosine" else -torch.cdist(q, r)  # (Q, R), higher is nearer
        scores = scores.masked_fill(~torch.from_numpy(self.allowed(exclude_keys)), -torch.inf)
        return scores.argmax(-1).numpy()

    def hits(
        self, queries: torch.Tensor, concepts: Sequence[str], categories: Sequence[str], exclude_keys: Sequence[str]
    ) -> dict[str, np.ndarray]:
        """Whether each query's nearest allowed real item has the prompt's concept / category: ``[Q]`` booleans."""
        index = self.nearest(queries, exclude_keys)
        return {"concept": self._concepts[index] == np.asarray(concepts), "category": self._categories[index] == np.asarray(categories)}

    def score(
        self, queries: torch.Tensor, concepts: Sequence[str], categories: Sequence[str], exclude_keys: Sequence[str]
    ) -> dict[str, float]:
        """Share of queries whose nearest allowed real item has the prompt's concept / category."""
        return {level: float(np.mean(hits)) for level, hits in self.hits(queries, concepts, categories, exclude_keys).items()}

    def chance(self, concepts: Sequence[str], categories: Sequence[str], exclude_keys: Sequence[str]) -> dict[str, float]:
        """The score of a uniformly random pick among the allowed reference items."""
        allowed = self.allowed(exclude_keys)  # (Q, R)
        counts = allowed.sum(-1).clip(min=1)
        same_concept = (self._concepts[None, :] == np.asarray(concepts)[:, None]) & allowed
        same_category = (self._categories[None, :] == np.asarray(categories)[:, None]) & allowed
        return {
            "concept": float(np.mean(same_concept.sum(-1) / counts)),
            "category": float(np.mean(same_category.sum(-1) / counts)),
        }

    def judgeable(self, concepts: Sequence[str], exclude_keys: Sequence[str]) -> np.ndarray:
        """``[Q]``: whether any allowed reference item shares the prompt's concept (else no output can score)."""
        same = self._concepts[None, :] == np.asarray(concepts)[:, None]
        return (same & self.allowed(exclude_keys)).any(-1)
