"""Training the joint latent model on cached embeddings, resumably (``StageRunner``)."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

import torch
from torch.utils.data import DataLoader, TensorDataset

from ..fusion.joint import JointLatentModel
from ..fusion.objectives import JointObjective, joint_loss
from .loop import StageConfig, StageResult, StageRunner

logger = logging.getLogger(__name__)
COLLAPSED_KL = 0.1  # nats per item: below this the fused posterior is the prior


def set_stats_from_data(model: JointLatentModel, embeddings: Mapping[str, torch.Tensor], present: torch.Tensor) -> None:
    """Standardises each modality by the statistics of the items that have it."""
    for index, modality in enumerate(model.modalities):
        if modality in embeddings and present[index].sum() > 1:
            model.set_embedding_stats(modality, embeddings[modality][present[index] > 0])


class TrainingLoss(torch.nn.Module):
    """A model's training loss as a module's ``forward``, so that the module ``accelerator.prepare``
    wraps (in DDP under several processes) is the one called, and the gradients of every
    parameter the loss used are averaged across processes before the optimizer steps."""

    def __init__(self, model: torch.nn.Module, loss, objective: JointObjective | None):
        super().__init__()
        self.model, self.loss, self.objective = model, loss, objective

    def forward(self, embeddings: Mapping[str, torch.Tensor], present: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        return self.loss(self.model, embeddings, present, self.objective, generator)


def train_joint_model(
    model: JointLatentModel,
    embeddings: Mapping[str, torch.Tensor],
    present: torch.Tensor,
    config: StageConfig,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    objective: JointObjective | None = None,
    loss=joint_loss,
) -> StageResult:
    """Trains ``model`` on ``[N, D_m]`` embeddings (zeros where missing) with presence ``[M, N]``.

    The standardisation statistics are set from the data on the first call (they are saved in
    the checkpoints with the weights, so a resumed run keeps them). ``loss(model, embeddings,
    present, objective, generator)`` returns the terms with ``"loss"``; baselines pass their own.
    """
    names = [m for m in model.modalities if m in embeddings]
    count = present.shape[1]
    if any(embeddings[m].shape[0] != count for m in names):
        raise ValueError("Every modality needs one row per item (zeros where an item lacks it).")
    runner = StageRunner(config)
    if runner.latest_checkpoint() is None:
        set_stats_from_data(model, embeddings, present)
    rows = [present[model.modalities.index(m)] for m in names]
    dataset = TensorDataset(*[embeddings[m].float() for m in names], torch.stack(rows, 1).float())
    loader = DataLoader(
        dataset, batch_size=min(batch_size, count), shuffle=True, drop_last=count > batch_size,
        generator=torch.Generator().manual_seed(config.seed),
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=1e-4)
    prepared, optimizer, loader = runner.prepare(TrainingLoss(model, loss, objective), optimizer, loader)
    rank = runner.accelerator.process_index  # each process draws its own noise
    generator = torch.Generator(device=runner.device).manual_seed(config.seed + 1 + 1000 * rank)
    model.train()

    def step(batch, index: int) -> dict[str, float]:
        *tensors, mask = batch  # mask: (B, K) for the K modalities given
        batch_present = torch.zeros(len(model.modalities), mask.shape[0], device=mask.device)
        for column, modality in enumerate(names):
            batch_present[model.modalities.index(modality)] = mask[:, column]
        terms = prepared(dict(zip(names, tensors, strict=True)), batch_present, generator)
        optimizer.zero_grad(set_to_none=True)
        runner.backward(terms["loss"])
        runner.accelerator.clip_grad_norm_(prepared.parameters(), 1.0)
        optimizer.step()
        return {name: value.item() for name, value in terms.items()}

    result = runner.run(loader, step)
    model.eval()
    last = result.history[-1] if result.history else {}
    if last.get("kl", math.inf) < COLLAPSED_KL:
        logger.warning(
            "The posterior has collapsed onto the prior (KL %.4f nats): the latent carries no information. "
            "Raise the objective's reconstruction_scale or lower its beta.", last["kl"],
        )
    return result
