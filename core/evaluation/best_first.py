"""Does ``best_first`` put a better image first? Measured on training captions, so the held-out
data of the report plays no part.

For each caption the studio makes ``variants`` images (seeds ``seed`` to ``seed + variants - 1``)
with ``best_first``; the first variant (seed ``seed``, what a one-image call gives) and the
image ranked first are scored by the guidance tool's judge: the nearest real training image in
EfficientNet feature space, the prompt's own image left out. The ranking reads each image back
through the same EfficientNet, so the judge is not independent of it: a gain here is an upper
bound on what a person would see. The contact sheet is the check by eye.

    python -m core.evaluation.best_first --corpus C --run R [--variants 4] [--prompts 160]

writes ``best-first.json`` and ``best-first.md`` beside the report.
"""

from __future__ import annotations

import argparse
import json
import logging
import time

import torch

from .cli import add_training_item_arguments
from .dataset import EvalSplit, load_train_split
from .generation import build_judge, choose_prompts, judge_keys
from .report import fmt

logger = logging.getLogger(__name__)


def best_first_comparison(studio, train: EvalSplit, variants: int = 4, prompts: int = 160, seed: int = 0, steps: int | None = None) -> dict:
    """Judge scores of the first variant and of the variant ``best_first`` ranks first, on the same images."""
    judge = build_judge("image", train)
    rows = choose_prompts(train, ("text",), "image", judge, prompts, seed)
    concepts, categories, keys = train.labels("concept", rows), train.labels("category", rows), judge_keys(train, "image", rows)
    first, ranked, moved = [], [], 0
    start = time.perf_counter()
    for count, caption in enumerate(train.labels("caption", rows), 1):
        made = studio.generate("image", text=caption, seed=seed, steps=steps, num=variants, best_first=True)
        order = made.recipe["order"]
        first.append(made.outputs[order.index(0)])
        ranked.append(made.outputs[0])
        moved += order[0] != 0
        if count % 20 == 0:
            logger.info("%d of %d prompts", count, len(rows))
    encode = studio.pipeline.image_encoder.encode
    with torch.no_grad():
        scores = {name: judge.score(encode(images).float().cpu(), concepts, categories, keys) for name, images in (("first variant", first), ("best first", ranked))}
    return {
        "variants": variants, "prompts": len(rows), "seed": seed, "steps": studio.pipeline.resolve_defaults("image", steps, None)[0],
        "results": scores, "ranked_first_is_not_variant_0": moved, "seconds": round(time.perf_counter() - start, 1),
        "chance": judge.chance(concepts, categories, keys), "prompt_ids": [train.items[i].id for i in rows.tolist()],
    }


def markdown(comparison: dict) -> str:
    """The comparison as a short report."""
    n, k = comparison["prompts"], comparison["variants"]
    lines = [
        "# Best first: the first of the variants, ranked by agreement with the prompt",
        "",
        f"{n} training captions, {k} variants each (seeds {comparison['seed']} to {comparison['seed'] + k - 1}), {comparison['steps']} steps, "
        "the studio's guidance. The judge is the nearest real training image (the prompt's own left out) in EfficientNet feature "
        "space; the ranking reads the images through the same EfficientNet, so this gain is an upper bound on what a person sees. "
        f"Chance: concept {fmt(comparison['chance']['concept'])}, category {fmt(comparison['chance']['category'])}.",
        "",
        "| image shown first | concept coherence | category coherence |",
        "|---|---|---|",
    ]
    for name, scores in comparison["results"].items():
        lines.append(f"| {name} | {fmt(scores['concept'])} | {fmt(scores['category'])} |")
    lines += ["", f"The ranking put another variant than the first first for {comparison['ranked_first_is_not_variant_0']} of {n} prompts; "
              f"{comparison['seconds']:.0f} s in all. One prompt moves a coherence column by 1/{n}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.evaluation.best_first", description=__doc__.split("\n\n")[0])
    add_training_item_arguments(parser, "best-first.json and .md")
    parser.add_argument("--variants", type=int, default=4, help="images per caption, ranked (default: %(default)s)")
    parser.add_argument("--prompts", type=int, default=160, help="training captions (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=None, help="diffusion steps (default: the studio's)")
    args = parser.parse_args(argv)
    if not 2 <= args.variants <= 16:
        parser.error("--variants takes 2 to 16.")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from .. import load_studio
    from ..studio import resolve_preset

    studio = load_studio(args.studio)
    train = load_train_split(args.run, args.corpus, studio.pipeline.audio_encoder)
    comparison = best_first_comparison(studio, train, args.variants, args.prompts, steps=args.steps)
    comparison["weights_version"] = studio.weights_version
    out = args.out or resolve_preset(args.studio) / "eval"
    out.mkdir(parents=True, exist_ok=True)
    (out / "best-first.json").write_text(json.dumps(comparison, indent=2))
    (out / "best-first.md").write_text(markdown(comparison), encoding="utf-8")
    print(markdown(comparison))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
