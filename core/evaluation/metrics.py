"""The numbers of the report: recall@k, linear probe accuracy and the Fréchet distance.

Plain functions over tensors and arrays; nothing here knows about models or the corpus.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy import linalg


def cosine_scores(queries: torch.Tensor, gallery: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every query ``[Q, D]`` with every gallery item ``[N, D]``: ``[Q, N]``."""
    return F.normalize(queries.float(), dim=-1) @ F.normalize(gallery.float(), dim=-1).T


def hits_at_k(scores: torch.Tensor, positives: torch.Tensor, ks: Sequence[int] = (1, 5, 10)) -> dict[int, torch.Tensor]:
    """Whether each query finds a right answer in its top k, ranking the gallery by ``scores [Q, N]``
    (higher is closer): ``k → [Q]`` booleans.

    ``positives`` is a ``[Q, N]`` boolean mask of the right answers (several where the gallery
    holds copies of one item), or ``[Q]`` indices of the one right answer. A query's rank is
    the number of wrong items scoring at least as high as its best right one, so ties count
    against the model.
    """
    if positives.dim() == 1:
        positives = F.one_hot(positives.long(), scores.shape[1]).bool()
    if positives.shape != scores.shape or not positives.any(-1).all():
        raise ValueError("positives must be [Q, N] like scores, with at least one right answer per query.")
    best = scores.masked_fill(~positives, -torch.inf).amax(-1, keepdim=True)  # (Q, 1)
    rank = ((scores >= best) & ~positives).sum(-1)  # (Q,)
    return {k: rank < k for k in ks}


def recall_at_k(scores: torch.Tensor, positives: torch.Tensor, ks: Sequence[int] = (1, 5, 10)) -> dict[int, float]:
    """Recall@k: the share of queries whose top k hold a right answer (see ``hits_at_k``)."""
    return {k: float(hits.double().mean()) for k, hits in hits_at_k(scores, positives, ks).items()}


class LinearProbe:
    """Multinomial logistic regression on standardised features, fitted by L-BFGS with an L2 penalty."""

    def __init__(self, l2: float = 1e-3, max_iter: int = 200):
        self.l2, self.max_iter = l2, max_iter
        self.classes: list[str] = []

    def fit(self, features: torch.Tensor, labels: Sequence[str]) -> LinearProbe:
        """Fits ``[N, D]`` features to string labels; returns itself."""
        features = features.detach().double()
        self.classes = sorted(set(labels))
        index = {name: i for i, name in enumerate(self.classes)}
        targets = torch.tensor([index[label] for label in labels])
        self.mean = features.mean(0)
        self.std = features.std(0).clamp(min=1e-6) if len(features) > 1 else torch.ones_like(self.mean)
        x = (features - self.mean) / self.std  # (N, D)
        self.weight = torch.zeros(x.shape[1], len(self.classes), dtype=torch.float64, requires_grad=True)
        self.bias = torch.zeros(len(self.classes), dtype=torch.float64, requires_grad=True)
        optimizer = torch.optim.LBFGS([self.weight, self.bias], max_iter=self.max_iter, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            loss = F.cross_entropy(x @ self.weight + self.bias, targets) + self.l2 * self.weight.square().sum()
            loss.backward()
            return loss

        optimizer.step(closure)
        return self

    @torch.no_grad()
    def predict(self, features: torch.Tensor) -> list[str]:
        """The most probable class of each row of ``[N, D]``."""
        if not self.classes:
            raise ValueError("Fit the probe before predicting.")
        x = (features.detach().double() - self.mean) / self.std
        return [self.classes[i] for i in (x @ self.weight + self.bias).argmax(-1).tolist()]


def probe_accuracy(
    train_features: torch.Tensor, train_labels: Sequence[str], test_features: torch.Tensor, test_labels: Sequence[str]
) -> float:
    """Accuracy on the test rows of a linear probe fitted on the train rows (unseen labels count as wrong)."""
    predicted = LinearProbe().fit(train_features, train_labels).predict(test_features)
    return float(np.mean([p == t for p, t in zip(predicted, test_labels, strict=True)]))


def majority_accuracy(train_labels: Sequence[str], test_labels: Sequence[str]) -> float:
    """Accuracy of always answering the most common training label (the probe's chance level)."""
    values, counts = np.unique(np.asarray(train_labels), return_counts=True)
    return float(np.mean(np.asarray(test_labels) == values[counts.argmax()]))


def gaussian_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``[D]`` and covariance ``[D, D]`` of ``[N, D]`` features (N >= 2)."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"Need at least two feature rows [N, D], got shape {features.shape}.")
    return features.mean(0), np.atleast_2d(np.cov(features, rowvar=False))


def frechet_distance_from_statistics(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """``|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))``, the Fréchet distance of two Gaussians (Dowson & Landau 1982)."""
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    cov1, cov2 = np.atleast_2d(cov1), np.atleast_2d(cov2)
    with warnings.catch_warnings():  # fewer samples than dimensions give singular covariances
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        root = linalg.sqrtm(cov1 @ cov2)
        if not np.isfinite(root).all():  # then nudge both off singularity
            offset = np.eye(cov1.shape[0]) * 1e-6
            root = linalg.sqrtm((cov1 + offset) @ (cov2 + offset))
    root = np.real(root)  # imaginary parts are numerical noise
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(cov1) + np.trace(cov2) - 2.0 * np.trace(root))


def frechet_distance(features1: np.ndarray, features2: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two sets of ``[N, D]`` features (as FID does)."""
    return frechet_distance_from_statistics(*gaussian_statistics(features1), *gaussian_statistics(features2))
