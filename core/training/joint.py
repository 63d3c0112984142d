"""Fitting the joint latent model on cached embeddings.

``fit_joint_model`` is the plain loop (seconds on synthetic data in the tests); the staged,
resumable ``studio-train`` entry wraps it with accelerate.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ..fusion.joint import JointLatentModel
from ..fusion.objectives import JointObjective, joint_loss


def set_stats_from_data(model: JointLatentModel, embeddings: Mapping[str, torch.Tensor], present: torch.Tensor) -> None:
    """Standardises each modality by the statistics of the items that have it."""
    for index, modality in enumerate(model.modalities):
        if modality in embeddings and present[index].sum() > 1:
            model.set_embedding_stats(modality, embeddings[modality][present[index] > 0])


def fit_joint_model(
    model: JointLatentModel,
    embeddings: Mapping[str, torch.Tensor],
    present: torch.Tensor,
    steps: int = 500,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    objective: JointObjective | None = None,
    seed: int = 0,
) -> list[float]:
    """Trains ``model`` on ``[N, D_m]`` embeddings with presence mask ``[M, N]``; returns the losses."""
    generator = torch.Generator().manual_seed(seed)
    set_stats_from_data(model, embeddings, present)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=1e-4)
    count = present.shape[1]
    model.train()
    losses = []
    for _ in range(steps):
        batch = torch.randint(0, count, (min(batch_size, count),), generator=generator)
        terms = joint_loss(
            model, {m: e[batch] for m, e in embeddings.items()}, present[:, batch], objective, generator
        )
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(terms["loss"].item())
    model.eval()
    return losses
