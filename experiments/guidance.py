"""Choosing the default classifier-free guidance, latent temperature or diffusion steps of an
output on training prompts, so that the held-out data the report uses plays no part in the choice.

For each guidance value (or, with ``--setting temperature``, each latent temperature at the
studio's guidance: how far the latent is drawn from the fused posterior's mean; with
``--setting steps``, each number of diffusion steps), the proposed model turns training items
into the output (images from their captions, sounds from their images; the studio's steps and
scheduler unless ``--steps`` or ``--scheduler`` say otherwise, one seed per prompt); the judge
is the report's nearest-real-item judge over the training items, the prompt's own media left
out. The value with the highest concept coherence wins; ties go to category coherence, then
to the lower Fréchet distance to the other training media.

    python -m experiments.guidance --corpus C --run R [--output sound] [--values 2,3,5,7,10]
    python -m experiments.guidance --corpus C --run R --setting temperature --values 0,0.5,1
    python -m experiments.guidance --corpus C --run R --setting steps --values 25,50 --scheduler dpm++

writes ``<date>-guidance.json`` and ``.md`` (``<date>-guidance-sound.*`` for sounds;
``<date>-temperature*`` and ``<date>-steps*`` for the other settings, with ``-<scheduler>`` when
one is named) into ``docs/experiments/``, or the folder ``--out`` names. ``studio-train export
--guidance '{"image": G}'`` (or ``--temperature '{"image": T}'``; ``"audio"`` for sounds) puts
the chosen value into the exported studio.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence

import torch

from core.decoders.diffusion_unets import SCHEDULERS
from core.evaluation.dataset import EvalSplit, load_train_split
from core.evaluation.floors import PROPOSED
from core.evaluation.generation import (
    GenerationSettings,
    MediaGenerator,
    build_judge,
    choose_prompts,
    fidelity,
    fidelity_reference,
    generate,
    judge_keys,
    real_features,
    task_name,
)
from core.evaluation.methods import studio_method
from core.evaluation.report import fmt
from experiments.common import add_training_item_arguments, write_result

logger = logging.getLogger(__name__)

VALUES = (2.0, 3.0, 5.0, 7.0, 10.0)
INPUTS = {"image": ("text",), "audio": ("image",)}  # the generation task each output's guidance is chosen on
FILES = {"image": "guidance", "audio": "guidance-sound"}
SETTINGS = {"guidance": (VALUES, 50), "temperature": ((0.0, 0.5, 1.0), 2), "steps": ((25, 50), 200)}  # default values and the highest allowed
SETTING_NAMES = {"guidance": "guidance", "temperature": "latent temperature", "steps": "diffusion steps"}


def guidance_sweep(
    pipeline, train: EvalSplit, values: Sequence[float] = VALUES, prompts: int = 160, steps: int | None = None, seed: int = 0, output: str = "image",
    setting: str = "guidance", scheduler: str | None = None,
) -> dict:
    """Coherence and fidelity of the proposed model's ``output`` (``"image"`` from text,
    ``"audio"`` from images) on training prompts at each value of ``setting`` (``"guidance"``,
    ``"temperature"`` or ``"steps"``, the others at the studio's defaults or ``steps``, and with
    ``scheduler``, a name of ``SCHEDULERS``, or the studio's); returns the sweep with the chosen value."""
    inputs = INPUTS[output]
    judge = build_judge(output, train)
    rows = choose_prompts(train, inputs, output, judge, prompts, seed)
    concepts, categories, keys = train.labels("concept", rows), train.labels("category", rows), judge_keys(train, output, rows)
    reference = real_features(train, output, fidelity_reference(train, output, rows))
    with_media = rows[train.present[output][rows]]
    real = judge.score(real_features(train, output, with_media), train.labels("concept", with_media),
                       train.labels("category", with_media), judge_keys(train, output, with_media)) if len(with_media) else None
    results = []
    for value in values:
        start = time.perf_counter()
        settings = GenerationSettings(prompts=prompts, steps=int(value) if setting == "steps" else steps,
                                      guidance=float(value) if setting == "guidance" else None, seed=seed, scheduler=scheduler)
        method = studio_method(PROPOSED, pipeline, seed=seed)
        if setting == "temperature":
            method.latent_temperature[output] = float(value)
        features, _ = generate(method, MediaGenerator(pipeline, settings), train, rows, inputs, output)
        scores = judge.score(features, concepts, categories, keys)
        results.append({setting: float(value), **scores, "fidelity": fidelity(features, reference), "seconds": round(time.perf_counter() - start, 1)})
        logger.info("%s %g: %s", setting, value, results[-1])
    best = max(results, key=lambda r: (r["concept"], r["category"], -(r["fidelity"] if r["fidelity"] is not None else float("inf"))))
    return {
        "output": output, "task": task_name(inputs, output), "setting": setting,
        "guidance": pipeline.resolve_defaults(output, None, None)[1] if setting != "guidance" else None,
        "chosen": best[setting], "results": results, "prompts": len(rows),
        "steps": None if setting == "steps" else pipeline.resolve_defaults(output, steps, None)[0], "scheduler": scheduler,
        "seed": seed, "chance": judge.chance(concepts, categories, keys), "real data": real,
        "prompt_ids": [train.items[i].id for i in rows.tolist()],
    }


def markdown(sweep: dict) -> str:
    """The sweep as a short report."""
    output, setting = sweep.get("output", "image"), sweep.get("setting", "guidance")
    media, space = ("image", "EfficientNet feature") if output == "image" else ("sound", "log-mel statistics")
    real = sweep["real data"]
    lines = [
        f"# Choosing the default {sweep.get('task', 'text→image')} {SETTING_NAMES[setting]} on training prompts",
        "",
        f"{sweep['prompts']} training {'captions' if output == 'image' else 'images'}"
        + (f", {sweep['steps']} steps" if sweep.get("steps") else "")
        + (f", the {sweep['scheduler']} scheduler" if sweep.get("scheduler") else "") + ", one seed per prompt"
        + (f", guidance {sweep['guidance']:g}" if sweep.get("guidance") is not None else "")
        + ("; the latent is drawn at the temperature from the fused posterior (0: its mean)" if setting == "temperature" else "")
        + "; "
        f"the judge is the nearest real training {media} (the prompt's own left out) in {space} space. No held-out item of the "
        f"report is used. Chance: concept {fmt(sweep['chance']['concept'])}, category {fmt(sweep['chance']['category'])}; "
        + (f"the prompts' real {media}s: concept {fmt(real['concept'])}, category {fmt(real['category'])}." if real else f"no prompt has a real {media}."),
        "",
        f"| {setting} | concept coherence | category coherence | Fréchet distance | seconds |",
        "|---|---|---|---|---|",
    ]
    return "\n".join(lines + choice_lines([f"{r[setting]:g}" for r in sweep["results"]], sweep["results"], f"{sweep['chosen']:g}", sweep["prompts"])) + "\n"


def choice_lines(labels: Sequence[str], results: Sequence[dict], chosen: str, prompts: int) -> list[str]:
    """The rows of a choice's table (the chosen label in bold) and the line saying how it was chosen."""
    lines = []
    for label, r in zip(labels, results, strict=True):
        bold = "**" if label == chosen else ""
        lines.append(f"| {bold}{label}{bold} | {fmt(r['concept'])} | {fmt(r['category'])} | {fmt(r['fidelity'])} | {r['seconds']:.0f} |")
    return lines + ["", f"Chosen: **{chosen}** (highest concept coherence, then category coherence, then the lower Fréchet distance).",
                    f"One prompt moves a coherence column by 1/{prompts}."]


def parse_values(parser: argparse.ArgumentParser, text: str, highest: float) -> list[float]:
    """``--values``: comma-separated numbers from 0 to ``highest`` (a parser error otherwise)."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        parser.error(f"--values takes comma-separated numbers, not {text!r}.")
    if not values or any(not 0 <= v <= highest for v in values):
        parser.error(f"--values takes numbers from 0 to {highest:g}.")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.guidance", description=__doc__.split("\n\n")[0])
    add_training_item_arguments(parser, "guidance.json and .md (guidance-sound.* for sounds; temperature* for temperatures)")
    parser.add_argument("--setting", choices=list(SETTINGS), default="guidance", help="what to sweep (default: %(default)s)")
    parser.add_argument("--output", choices=["image", "sound"], default="image", help="images from captions or sounds from images (default: %(default)s)")
    parser.add_argument("--values", default=None, help="comma-separated values (default: 2,3,5,7,10 for guidance, 0,0.5,1 for temperature)")
    parser.add_argument("--prompts", type=int, default=160, help="training prompts (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=None, help="diffusion steps (default: the studio's)")
    parser.add_argument("--scheduler", choices=list(SCHEDULERS), default=None, help="the sampler (default: the studio's)")
    args = parser.parse_args(argv)
    defaults, highest = SETTINGS[args.setting]
    values = parse_values(parser, args.values or ",".join(f"{v:g}" for v in defaults), highest)
    if args.setting == "steps" and any(v < 1 or v != int(v) for v in values):
        parser.error("--values takes whole numbers of steps from 1 for --setting steps.")
    if args.steps is not None and not 1 <= args.steps <= 200:
        parser.error("--steps takes a whole number from 1 to 200.")
    output = "audio" if args.output == "sound" else "image"
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from core import load_studio

    pipeline = load_studio(args.studio).pipeline
    train = load_train_split(args.run, args.corpus, pipeline.audio_encoder)
    with torch.no_grad():
        sweep = guidance_sweep(pipeline, train, values, args.prompts, args.steps, output=output, setting=args.setting, scheduler=args.scheduler)
    sweep["weights_version"] = pipeline.config.weights_version
    name = FILES[output].replace("guidance", args.setting) + (f"-{args.scheduler.replace('+', 'p')}" if args.scheduler else "")
    write_result(args.out, name, sweep, markdown(sweep))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
