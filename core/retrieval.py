"""Retrieval in the joint latent space: index items by their fused posterior, query with any mix.

Two scores are offered: ``"cosine"`` between posterior means (the default), and
``"likelihood"``, the log-density that the query and the item share one latent,
``log N(mu_q; mu_i, var_q + var_i)`` summed over dimensions, which also weighs how certain
each posterior is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

METRICS = ("cosine", "likelihood")


@dataclass
class SearchHit:
    """One result: the item's key, its score (higher is closer) and its rank (0 = best)."""

    key: str
    score: float
    rank: int


@dataclass
class LatentIndex:
    """Items keyed by name, each stored as a fused posterior ``(mu, logvar)`` of ``[latent_dim]``."""

    metric: str = "cosine"
    keys: list[str] = field(default_factory=list)
    mu: torch.Tensor | None = None  # (N, Z)
    logvar: torch.Tensor | None = None  # (N, Z)

    def __post_init__(self):
        if self.metric not in METRICS:
            raise ValueError(f"Unknown metric {self.metric!r}; choose one of {METRICS}.")

    def __len__(self) -> int:
        return len(self.keys)

    def add(self, keys: list[str], mu: torch.Tensor, logvar: torch.Tensor) -> None:
        """Adds items; a key that is already indexed is replaced."""
        if len(keys) != mu.shape[0] or mu.shape != logvar.shape:
            raise ValueError(f"Need one key per row: {len(keys)} keys, mu {tuple(mu.shape)}, logvar {tuple(logvar.shape)}.")
        if len(set(keys)) != len(keys):
            raise ValueError("Keys added together must be unique.")
        mu, logvar = mu.detach().float().cpu(), logvar.detach().float().cpu()
        if self.mu is not None:
            keep = [i for i, key in enumerate(self.keys) if key not in set(keys)]
            self.keys = [self.keys[i] for i in keep] + list(keys)
            self.mu = torch.cat([self.mu[keep], mu])
            self.logvar = torch.cat([self.logvar[keep], logvar])
        else:
            self.keys, self.mu, self.logvar = list(keys), mu, logvar

    def remove(self, keys: list[str]) -> None:
        """Drops the given keys (unknown ones are ignored)."""
        drop = set(keys)
        keep = [i for i, key in enumerate(self.keys) if key not in drop]
        self.keys = [self.keys[i] for i in keep]
        if self.mu is not None:
            self.mu, self.logvar = self.mu[keep], self.logvar[keep]
            if not self.keys:
                self.mu = self.logvar = None

    def scores(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """Scores of queries ``[Q, Z]`` against every item: ``[Q, N]``."""
        if self.mu is None:
            raise ValueError("The index is empty: add items before searching.")
        mu, logvar = mu.detach().float().cpu(), logvar.detach().float().cpu()
        if self.metric == "cosine":
            return F.normalize(mu, dim=-1) @ F.normalize(self.mu, dim=-1).T
        variance = logvar.exp().unsqueeze(1) + self.logvar.exp().unsqueeze(0)  # (Q, N, Z)
        squared = (mu.unsqueeze(1) - self.mu.unsqueeze(0)).square()
        return -0.5 * (squared / variance + variance.log() + math.log(2 * math.pi)).sum(-1)

    def search(self, mu: torch.Tensor, logvar: torch.Tensor, k: int = 8) -> list[list[SearchHit]]:
        """The ``k`` best items for each query ``[Q, Z]``, best first."""
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}.")
        scores = self.scores(mu, logvar)
        best, indices = scores.topk(min(k, len(self)), dim=-1)
        return [
            [SearchHit(self.keys[i], float(s), rank) for rank, (s, i) in enumerate(zip(row_s, row_i, strict=True))]
            for row_s, row_i in zip(best.tolist(), indices.tolist(), strict=True)
        ]
