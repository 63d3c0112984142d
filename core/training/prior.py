"""Training an embedding prior ``p(e | z)`` on a trained latent model's posterior means.

Each training item that has the output modality gives one pair per non-empty subset of the
modalities it has: the posterior mean ``z`` of that subset, and the item's real embedding of
the output. So the prior learns to sample an image embedding from a text alone, an image
alone, text and image, a sound, and so on, as the studio fuses them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from itertools import combinations

import torch
from diffusers.training_utils import EMAModel
from torch.utils.data import DataLoader, TensorDataset

from ..decoders.embedding_prior import EmbeddingPrior
from .diffusion import run_averaged
from .loop import StageConfig, StageResult, StageRunner

logger = logging.getLogger(__name__)
CHUNK = 1024


@torch.no_grad()
def prior_training_pairs(model, embeddings: Mapping[str, torch.Tensor], present: Mapping[str, torch.Tensor], output: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(conditions [P, Z], targets [P, D])``: for every item with ``output`` and every non-empty
    subset of its modalities, the posterior mean of ``model`` given that subset and the item's
    ``output`` embedding. ``embeddings`` are ``[N, D_m]`` (zeros where missing), ``present`` ``[N]``
    booleans, both keyed by modality; ``model(inputs).mu`` gives the posterior mean."""
    names = [m for m in embeddings if m in present]
    conditions, targets = [], []
    for size in range(1, len(names) + 1):
        for subset in combinations(names, size):
            rows = present[output].clone()
            for modality in subset:
                rows &= present[modality]
            rows = rows.nonzero().flatten()
            for start in range(0, len(rows), CHUNK):
                chunk = rows[start : start + CHUNK]
                inputs = {m: embeddings[m][chunk].to(model.device, model.dtype) for m in subset}
                conditions.append(model(inputs).mu.float().cpu())
                targets.append(embeddings[output][chunk].float())
    if not conditions:
        raise ValueError(f"No training item has a {output} embedding to learn the prior from.")
    return torch.cat(conditions), torch.cat(targets)


def train_embedding_prior(
    prior: EmbeddingPrior,
    conditions: torch.Tensor,
    targets: torch.Tensor,
    config: StageConfig,
    batch_size: int = 256,
    learning_rate: float = 3e-4,
    drop_probability: float = 0.1,
    ema_decay: float = 0.999,
) -> StageResult:
    """Trains ``prior`` on ``conditions [P, Z]`` and ``targets [P, D]``, resumably; the principal
    components are fitted from the distinct targets on the first call (a checkpoint keeps them).
    Once the step budget is reached the prior holds the moving average of its weights."""
    if conditions.shape[0] != targets.shape[0]:
        raise ValueError(f"{conditions.shape[0]} conditions but {targets.shape[0]} targets.")
    runner = StageRunner(config)
    if runner.latest_checkpoint() is None:
        share = prior.fit_basis(torch.unique(targets, dim=0))
        logger.info("the prior's %d components keep %.1f%% of the embeddings' variance", prior.config.components, 100 * share)
    parameters = list(prior.parameters())
    optimizer = torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=1e-4)
    average = EMAModel(parameters, decay=ema_decay)
    runner.accelerator.register_for_checkpointing(average)
    loader = DataLoader(
        TensorDataset(conditions, targets), batch_size=min(batch_size, len(targets)), shuffle=True,
        drop_last=len(targets) > batch_size, generator=torch.Generator().manual_seed(config.seed),
    )
    prepared, optimizer, loader = runner.prepare(prior, optimizer, loader)
    generator = torch.Generator(device=runner.device).manual_seed(config.seed + 1)
    prepared.train()

    result = run_averaged(runner, loader, parameters, optimizer, average, lambda batch: prior.loss(batch[1], batch[0], drop_probability, generator))
    prior.eval()
    return result
