"""Does ``best_first`` put a better image or sound first? Measured on training items, so the
held-out data of the report plays no part.

For each training caption (images) or image (sounds) the studio makes ``variants`` outputs
(seeds ``seed`` to ``seed + variants - 1``) with ``best_first``; the first variant (seed
``seed``, what a one-output call gives) and the output ranked first are scored by the guidance
tool's judge: the nearest real training item, the prompt's own media left out, in EfficientNet
feature space for images and log-mel band statistics for sounds. The ranking reads images back
through the same EfficientNet, so for images the judge is not independent of it and a gain is
an upper bound on what a person would see (the contact sheet is the check by eye); sounds are
read back through the project's audio encoder, which the log-mel judge does not share.

    python -m experiments.best_first --corpus C --run R [--output sound] [--variants 4] [--prompts 160]

writes ``<date>-best-first.json`` and ``.md`` (``<date>-best-first-sound.*`` for sounds) into
``docs/experiments/``, or the folder ``--out`` names.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import torch

from core.evaluation.dataset import EvalSplit, load_train_split
from core.evaluation.generation import (
    GenerationSettings,
    MediaGenerator,
    build_judge,
    choose_prompts,
    judge_keys,
    waveform_log_mels,
)
from core.evaluation.report import fmt
from core.media import load_image
from experiments.common import add_training_item_arguments, write_result
from experiments.guidance import FILES, INPUTS

logger = logging.getLogger(__name__)


def best_first_comparison(
    studio, train: EvalSplit, variants: int = 4, prompts: int = 160, seed: int = 0, steps: int | None = None, output: str = "image", corpus: Path | None = None,
    temperature: float | None = None,
) -> dict:
    """Judge scores of the first variant and of the variant ``best_first`` ranks first, on the
    same outputs: images from training captions, or sounds from training images (read from ``corpus``)."""
    (given,) = INPUTS[output]
    judge = build_judge(output, train)
    rows = choose_prompts(train, (given,), output, judge, prompts, seed)
    concepts, categories, keys = train.labels("concept", rows), train.labels("category", rows), judge_keys(train, output, rows)
    first, ranked, moved = [], [], 0
    start = time.perf_counter()
    for count, row in enumerate(rows.tolist(), 1):
        item = train.items[row]
        prompt = {"text": item.caption} if given == "text" else {"image": load_image(str(corpus / item.image))}
        made = studio.generate(output, **prompt, seed=seed, steps=steps, num=variants, best_first=True, temperature=temperature)
        order = made.recipe["order"]
        first.append(made.outputs[order.index(0)])
        ranked.append(made.outputs[0])
        moved += order[0] != 0
        if count % 20 == 0:
            logger.info("%d of %d prompts", count, len(rows))
    with torch.no_grad():
        scores = {name: judge.score(judge_features(studio, outputs, output), concepts, categories, keys)
                  for name, outputs in (("first variant", first), ("best first", ranked))}
    return {
        "output": output, "variants": variants, "prompts": len(rows), "seed": seed, "steps": studio.pipeline.resolve_defaults(output, steps, None)[0],
        "temperature": studio.pipeline.resolve_temperature(output, temperature),
        "results": scores, "ranked_first_is_not_variant_0": moved, "seconds": round(time.perf_counter() - start, 1),
        "chance": judge.chance(concepts, categories, keys), "prompt_ids": [train.items[i].id for i in rows.tolist()],
    }


def judge_features(studio, outputs: list, output: str) -> torch.Tensor:
    """The judge's features of generated images or sounds, as the report reads them (``MediaGenerator.describe``)."""
    describe = MediaGenerator(studio.pipeline, GenerationSettings()).describe
    return describe(outputs, "image") if output == "image" else describe(waveform_log_mels(outputs), "audio")


def markdown(comparison: dict) -> str:
    """The comparison as a short report."""
    n, k = comparison["prompts"], comparison["variants"]
    if comparison.get("output", "image") == "image":
        made, prompts, judged = "image", "captions", (
            "The judge is the nearest real training image (the prompt's own left out) in EfficientNet feature space; the ranking "
            "reads the images through the same EfficientNet, so this gain is an upper bound on what a person sees.")
    else:
        made, prompts, judged = "sound", "images", (
            "The judge is the nearest real training sound (the prompt's own left out) in log-mel band statistics, after the "
            "vocoder; the ranking reads the sounds through the project's audio encoder, which the judge does not share.")
    lines = [
        f"# Best first: the first of the variants, ranked by agreement with the prompt ({made}s)",
        "",
        f"{n} training {prompts}, {k} variants each (seeds {comparison['seed']} to {comparison['seed'] + k - 1}), {comparison['steps']} steps, "
        f"the studio's guidance, latent temperature {comparison.get('temperature', 0.0):g}. {judged} "
        f"Chance: concept {fmt(comparison['chance']['concept'])}, category {fmt(comparison['chance']['category'])}.",
        "",
        f"| {made} shown first | concept coherence | category coherence |",
        "|---|---|---|",
    ]
    for name, scores in comparison["results"].items():
        lines.append(f"| {name} | {fmt(scores['concept'])} | {fmt(scores['category'])} |")
    lines += ["", f"The ranking put another variant than the first first for {comparison['ranked_first_is_not_variant_0']} of {n} prompts; "
              f"{comparison['seconds']:.0f} s in all. One prompt moves a coherence column by 1/{n}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.best_first", description=__doc__.split("\n\n")[0])
    add_training_item_arguments(parser, "best-first.json and .md (best-first-sound.* for sounds)")
    parser.add_argument("--output", choices=["image", "sound"], default="image", help="images from captions or sounds from images (default: %(default)s)")
    parser.add_argument("--variants", type=int, default=4, help="images per caption, ranked (default: %(default)s)")
    parser.add_argument("--prompts", type=int, default=160, help="training captions (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=None, help="diffusion steps (default: the studio's)")
    parser.add_argument("--temperature", type=float, default=None, help="latent temperature, 0 to 2 (default: the studio's)")
    args = parser.parse_args(argv)
    if args.temperature is not None and not 0 <= args.temperature <= 2:
        parser.error("--temperature takes 0 to 2.")
    if not 2 <= args.variants <= 16:
        parser.error("--variants takes 2 to 16.")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from core import load_studio

    studio = load_studio(args.studio)
    train = load_train_split(args.run, args.corpus, studio.pipeline.audio_encoder)
    output = "audio" if args.output == "sound" else "image"
    comparison = best_first_comparison(studio, train, args.variants, args.prompts, steps=args.steps, output=output, corpus=args.corpus, temperature=args.temperature)
    comparison["weights_version"] = studio.weights_version
    write_result(args.out, FILES[output].replace("guidance", "best-first"), comparison, markdown(comparison))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
