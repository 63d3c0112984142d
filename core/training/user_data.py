"""``studio-train --data FOLDER_OR_NAME --preset PRESET --out STUDIO``: a studio on a user's own data.

The preset (``embedded`` or any saved studio folder) lends its frozen encoders and its decoders;
the user's items (``core.data.user``: any mix of caption, picture and sound) are encoded once
into a cache, the preset's joint latent model is trained further on them, and the image bank is
rebuilt from the user's pictures, so text→image draws them. ``STUDIO`` is then a studio folder
for ``load_studio``, ``python app.py --preset STUDIO`` and ``studio-eval``-style use, with a
README that says what it was trained on. The decoders are not fine-tuned.

The cache and the joint stage's checkpoints live in ``--run`` (default: the user cache), so a
call stopped by ``--max-minutes`` (exit 3) resumes when run again. Under ``accelerate launch``
the main process encodes and writes, the others wait for it and train their shard of every batch.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..data.user import UserData
from ..decoders.embedding_prior import EmbeddingBank
from ..fusion.objectives import JointObjective
from ..pipelines.build import load_studio_pipeline
from ..studio import resolve_preset
from .joint import train_joint_model
from .loop import StageConfig, process_state
from .stages import TrainPlan, weights_digest

logger = logging.getLogger(__name__)
CACHE = "user-embeddings.safetensors"
ITEMS = "user-items.json"
BATCH = 32  # items encoded at once


def encode_user_data(pipeline, data: UserData) -> tuple[dict[str, torch.Tensor], torch.Tensor, dict]:
    """Every item's embeddings ``[N, D_m]`` (zeros where it lacks the modality), presence ``[M, N]``
    in the joint model's modality order, and a summary (counts, where each item came from, problems)."""
    modalities = list(pipeline.joint.modalities)
    rows: dict[str, list[torch.Tensor]] = {m: [] for m in modalities}
    present: list[list[float]] = []
    where: list[str] = []
    batch: list = []

    def flush() -> None:
        for modality in modalities:
            given = [getattr(item, modality) for item in batch]
            encoded = pipeline.encoder(modality).encode([g for g in given if g is not None]) if any(g is not None for g in given) else None
            size = pipeline.joint.config.modality_dims[modality]
            next_row = iter(encoded if encoded is not None else [])
            rows[modality] += [next(next_row).cpu() if g is not None else torch.zeros(size) for g in given]
        present.extend([[float(getattr(item, m) is not None) for m in modalities] for item in batch])
        where.extend(item.where for item in batch)
        batch.clear()

    for item in data:
        batch.append(item)
        if len(batch) == BATCH:
            flush()
    if batch:
        flush()
    if not where:
        raise ValueError(f"No usable item in {data.source}: {'; '.join(data.problems[:5]) or 'the metadata names no file and no caption'}.")
    embeddings = {m: torch.stack(rows[m]) for m in modalities}
    presence = torch.tensor(present).T.contiguous()  # (M, N)
    summary = {"items": len(where), "where": where, "problems": data.problems,
               "with": {m: int(presence[i].sum()) for i, m in enumerate(modalities)}}
    return embeddings, presence, summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="studio-train", description="Train a studio's joint latent model on your own data.")
    parser.add_argument("--data", required=True, help="a folder with metadata.jsonl (or .csv) and its media, or a Hub dataset name")
    parser.add_argument("--preset", default="embedded", help="the studio whose encoders and decoders to use: embedded or a studio folder")
    parser.add_argument("--out", type=Path, required=True, help="the studio folder to write")
    parser.add_argument("--run", type=Path, default=None, help="cache and checkpoints (default: ~/.cache/fusion-studio/runs/user-<out name>)")
    parser.add_argument("--steps", type=int, default=1000, help="joint model steps (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=128, help="items per step and process (default: %(default)s)")
    parser.add_argument("--max-minutes", type=float, default=55.0, help="stop (resumably, exit 3) after this long")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.batch_size < 1:
        parser.error("--steps and --batch-size must be at least 1.")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    run = args.run or Path.home() / ".cache" / "fusion-studio" / "runs" / f"user-{args.out.resolve().name}"
    run.mkdir(parents=True, exist_ok=True)
    try:
        preset = resolve_preset(args.preset)
    except ValueError as error:
        parser.error(str(error))
    pipeline = load_studio_pipeline(preset)
    state = process_state()
    with state.main_process_first():  # the main process encodes; the others then read its cache
        if not (run / CACHE).is_file():
            try:
                embeddings, presence, summary = encode_user_data(pipeline, UserData(args.data))
            except ValueError as error:
                parser.error(str(error))
            save_file({**{f"embedding.{m}": e for m, e in embeddings.items()}, "present": presence}, str(run / CACHE))
            (run / ITEMS).write_text(json.dumps(summary, indent=1))
            for problem in summary["problems"]:
                logger.warning("left out: %s", problem)
    cache, summary = load_file(str(run / CACHE)), json.loads((run / ITEMS).read_text())
    embeddings = {key.removeprefix("embedding."): value for key, value in cache.items() if key.startswith("embedding.")}
    logger.info("%d items (%s); %d problems", summary["items"], ", ".join(f"{n} with {m}" for m, n in summary["with"].items()), len(summary["problems"]))

    joint = pipeline.joint.train()
    config = StageConfig(run / "stages" / "joint", max_steps=args.steps, checkpoint_every=250, log_every=50, max_minutes=args.max_minutes)
    objective = JointObjective(**TrainPlan().joint_objective)  # the preset's own training objective
    result = train_joint_model(joint, embeddings, cache["present"], config, batch_size=args.batch_size, objective=objective)
    if not result.finished:
        raise SystemExit(3)  # out of time: run the same command again to go on
    pipeline.joint = joint.eval()
    images = embeddings["image"][cache["present"][list(joint.modalities).index("image")] > 0] if "image" in embeddings else torch.zeros(0)
    if len(images) and isinstance(pipeline.image_prior, EmbeddingBank):
        bank = pipeline.image_prior
        pipeline.image_prior = EmbeddingBank.from_embeddings(images, components=bank.config.components, candidates=bank.config.candidates)
    if state.is_main_process:
        pipeline.joint.is_trained = True
        pipeline.register_to_config(weights_version=f"user-{time.strftime('%Y%m%d')}-{weights_digest(pipeline)}")
        pipeline.save_pretrained(args.out)
        (args.out / "README.md").write_text(card(args, preset, summary, result.step))
        print(f"wrote {args.out}: {summary['items']} items, {len(summary['problems'])} problems (its README lists them); "
              f"open it with python app.py --preset {args.out}")
    state.wait_for_everyone()


def card(args, preset: Path, summary: dict, steps: int) -> str:
    """A short model card: what the studio was trained on, from what, and what was left out."""
    counts = ", ".join(f"{count} with {modality}" for modality, count in summary["with"].items())
    problems = "".join(f"- {problem}\n" for problem in summary["problems"][:50]) or "- none\n"
    more = f"- ... and {len(summary['problems']) - 50} more\n" if len(summary["problems"]) > 50 else ""
    return (
        f"---\nlibrary_name: diffusers\ntags:\n- fusion-studio\n---\n\n# A studio trained on {args.data}\n\n"
        f"Made by `studio-train --data {args.data} --preset {args.preset} --out {args.out}`: the encoders and decoders of "
        f"`{preset}`, its joint latent model trained {steps} more steps on {summary['items']} items ({counts}), and the image "
        f"bank rebuilt from the items' pictures where there were any. The decoders were not fine-tuned.\n\n"
        f"Problems (path and reason; an item with nothing usable left was left out):\n\n{problems}{more}"
    )
