"""Training the caption decoder on (caption, text embedding) pairs, resumably, with ``StageRunner``.

The embeddings are computed beforehand (by the frozen text encoder, or anything of the same
size) so that a step touches only the decoder. Checkpoints go to ``config.output_dir/checkpoints``;
calling ``train_caption_decoder`` again with a larger ``max_steps`` continues from the newest one.
Save the result with ``decoder.save_pretrained(path)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch.utils.data import DataLoader, TensorDataset

from ..decoders.caption import CaptionDecoder, caption_loss, check_embeddings
from .loop import StageConfig, StageResult, StageRunner


def caption_step(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, runner: StageRunner, max_grad_norm: float = 1.0
) -> Callable[[tuple[torch.Tensor, ...], int], dict[str, float]]:
    """One teacher-forcing step on a batch ``(embeddings, token_ids, attention_mask)``, for ``StageRunner.run``.

    ``model`` is the decoder as returned by ``runner.prepare`` (it is called, not its ``loss``
    method, so that a distributed wrapper sees the forward pass).
    """

    def step(batch: tuple[torch.Tensor, ...], index: int) -> dict[str, float]:
        embeddings, token_ids, attention_mask = batch
        loss = caption_loss(model(embeddings, token_ids, attention_mask), token_ids, attention_mask)
        optimizer.zero_grad(set_to_none=True)
        runner.backward(loss)
        runner.accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
        optimizer.step()
        return {"loss": loss.item()}

    return step


def train_caption_decoder(
    decoder: CaptionDecoder,
    texts: Sequence[str],
    embeddings: torch.Tensor,
    config: StageConfig,
    batch_size: int = 32,
    learning_rate: float = 3e-4,
    weight_decay: float = 0.01,
) -> StageResult:
    """Trains ``decoder`` in place to write ``texts[i]`` from ``embeddings[i]`` (``[N, embed_dim]``).

    Resumes from the newest checkpoint in ``config.output_dir`` and leaves the decoder in eval mode.
    """
    # 1. check inputs
    if isinstance(texts, str) or len(texts) == 0:
        raise ValueError("texts must be a non-empty list of captions.")
    embeddings = check_embeddings(embeddings, decoder.config.embed_dim).float()
    if embeddings.shape[0] != len(texts):
        raise ValueError(f"Got {len(texts)} captions but {embeddings.shape[0]} embeddings; pass one embedding per caption.")
    if batch_size < 1 or not learning_rate > 0:
        raise ValueError(f"batch_size must be >= 1 and learning_rate > 0, got {batch_size} and {learning_rate}.")
    # 2. tokenize once and build the loader
    tokens = decoder.tokenize(list(texts))
    dataset = TensorDataset(embeddings, tokens["token_ids"], tokens["attention_mask"])
    loader = DataLoader(
        dataset,
        batch_size=min(batch_size, len(texts)),
        shuffle=True,
        drop_last=len(texts) >= batch_size,  # equal batches when there are enough captions
        generator=torch.Generator().manual_seed(config.seed),
    )
    # 3. train
    runner = StageRunner(config)
    optimizer = torch.optim.AdamW(decoder.parameters(), lr=learning_rate, weight_decay=weight_decay)
    decoder.train()
    model, optimizer, loader = runner.prepare(decoder, optimizer, loader)
    try:
        return runner.run(loader, caption_step(model, optimizer, runner))
    finally:
        decoder.eval()
