"""Trains a tiny joint model on synthetic embeddings, alone or as one of several processes
under ``accelerate launch`` (for ``tests/test_distributed.py``). Each process writes its final
weights to ``<out>/rank<N>.safetensors`` and the main process the run's steps to ``<out>/result.json``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from core.fusion import JointLatentModel, joint_loss
from core.fusion.objectives import gaussian_kl, reconstruction_error
from core.training.joint import train_joint_model
from core.training.loop import StageConfig, process_state

DIMS = {"text": 12, "image": 20, "audio": 8}
ITEMS = 64


def exact_loss(model, embeddings, present, objective, generator):
    """The ELBO at the posterior mean (no sampling): one process and two give the same steps."""
    fused = model(embeddings, weights=present)
    reconstruction = reconstruction_error(model, fused.mu, embeddings, present).mean()
    kl = gaussian_kl(fused.mu, fused.logvar).mean()
    return {"loss": reconstruction + kl, "kl": kl}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--batch", type=int, required=True, help="items per process and step")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--loss", choices=["exact", "joint"], default="exact")
    args = parser.parse_args()
    generator = torch.Generator().manual_seed(0)
    embeddings = {m: torch.randn(ITEMS, d, generator=generator) for m, d in DIMS.items()}
    present = (torch.rand(len(DIMS), ITEMS, generator=generator) < 0.7).float()
    present[0, present.sum(0) == 0] = 1
    torch.manual_seed(0)
    model = JointLatentModel(modality_dims=DIMS, latent_dim=6, hidden_dim=32)
    config = StageConfig(args.out / "stage", max_steps=args.steps, checkpoint_every=6, log_every=3)
    result = train_joint_model(model, embeddings, present, config, batch_size=args.batch, learning_rate=1e-2,
                               loss=exact_loss if args.loss == "exact" else joint_loss)
    state = process_state()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(args.out / f"rank{state.process_index}.safetensors"))
    if state.is_main_process:
        (args.out / "result.json").write_text(json.dumps({
            "processes": state.num_processes, "step": result.step, "logged": [entry["step"] for entry in result.history],
            "seconds": result.seconds}))


if __name__ == "__main__":
    main()
