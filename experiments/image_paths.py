"""Where text→image loses the concept: the image decoder fed three image embeddings for the same
training prompts.

- **from the caption**: the caption through the joint model, its decoded mean image embedding
  (what the studio draws from text);
- **from the item's image, through the joint model**: the item's own image through the joint
  latent and back (what a perfect text→latent mapping could give at best);
- **the item's image embedding itself**: the image decoder alone, fed the real EfficientNet
  embedding.

Each is judged like the guidance sweep: the nearest real training image, the prompt's own left
out, in EfficientNet feature space. The gap between the first two is the joint model's; between
the last and the real images' own score, the decoder's.

    python -m experiments.image_paths --corpus C --run R [--prompts 160]

writes ``<date>-image-paths.json``, ``.md`` and ``.png`` (for the first ``--sheet`` items: the
real image, then the image decoded from each path) into ``docs/experiments/``, or the folder
``--out`` names.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import torch
from PIL import Image

from core.evaluation.dataset import EvalSplit, load_train_split
from core.evaluation.floors import PROPOSED
from core.evaluation.generation import (
    GenerationSettings,
    MediaGenerator,
    build_judge,
    choose_prompts,
    judge_keys,
    made_embeddings,
    real_features,
)
from core.evaluation.methods import studio_method
from core.evaluation.report import fmt
from experiments.common import add_training_item_arguments, write_result

logger = logging.getLogger(__name__)

PATHS = {
    "from the caption": ("text",),
    "from the item's image, through the joint model": ("image",),
    "the item's image embedding itself": None,
}


def image_paths(pipeline, train: EvalSplit, prompts: int = 160, seed: int = 0, steps: int | None = None) -> tuple[dict, dict[str, list[Image.Image]]]:
    """Judge scores of images decoded from each path's embedding, on training items with a
    caption and an image; and the images, by path."""
    judge = build_judge("image", train)
    rows = choose_prompts(train, ("text", "image"), "image", judge, prompts, seed)
    concepts, categories, keys = train.labels("concept", rows), train.labels("category", rows), judge_keys(train, "image", rows)
    method = studio_method(PROPOSED, pipeline, seed=seed)
    generator = MediaGenerator(pipeline, GenerationSettings(prompts=prompts, steps=steps, seed=seed))
    results, images = {}, {}
    for name, inputs in PATHS.items():
        start = time.perf_counter()
        with torch.no_grad():
            embeddings = train.embeddings["image"][rows] if inputs is None else made_embeddings(method, train, rows, inputs, "image")
            features, images[name] = generator.features(embeddings, "image")
        results[name] = {**judge.score(features, concepts, categories, keys), "seconds": round(time.perf_counter() - start, 1)}
        logger.info("%s: %s", name, results[name])
    return {
        "prompts": len(rows), "seed": seed, "steps": pipeline.resolve_defaults("image", steps, None)[0], "guidance": pipeline.resolve_defaults("image", None, None)[1],
        "results": results, "chance": judge.chance(concepts, categories, keys),
        "real data": judge.score(real_features(train, "image", rows), concepts, categories, keys),
        "prompt_ids": [train.items[i].id for i in rows.tolist()],
    }, images


def paths_sheet(paths: dict, images: dict[str, list[Image.Image]], train: EvalSplit, corpus: Path, count: int) -> Image.Image:
    """For the first ``count`` items, a row each: the real image, then the image from each path."""
    from core.evaluation.showcase import contact_sheet
    from core.media import load_image

    items = {item.id: item for item in train.items}
    tiles, labels = [], []
    for index, key in enumerate(paths["prompt_ids"][:count]):
        item = items[key]
        tiles += [load_image(str(corpus / item.image))] + [images[name][index] for name in PATHS]
        labels += [f"real: {item.caption}", "from the caption", "image via latent", "real embedding"]
    return contact_sheet(tiles, labels, columns=4)


def markdown(paths: dict) -> str:
    """The comparison as a short report."""
    real, chance = paths["real data"], paths["chance"]
    lines = [
        "# Where text→image loses the concept: the image decoder fed three embeddings",
        "",
        f"{paths['prompts']} training items with a caption and an image, {paths['steps']} steps, guidance {paths['guidance']:g}, one seed per "
        "prompt; the judge is the nearest real training image (the prompt's own left out) in EfficientNet feature space. "
        f"Chance: concept {fmt(chance['concept'])}, category {fmt(chance['category'])}.",
        "",
        "| image decoded from | concept coherence | category coherence |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {fmt(r['concept'])} | {fmt(r['category'])} |" for name, r in paths["results"].items()]
    lines += [f"| (the real images themselves) | {fmt(real['concept'])} | {fmt(real['category'])} |", "",
              f"One prompt moves a coherence column by 1/{paths['prompts']}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.image_paths", description=__doc__.split("\n\n")[0])
    add_training_item_arguments(parser, "image-paths.json, .md and .png")
    parser.add_argument("--prompts", type=int, default=160, help="training items (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=None, help="diffusion steps (default: the studio's)")
    parser.add_argument("--sheet", type=int, default=8, help="items on <date>-image-paths.png (default: %(default)s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from core import load_studio

    pipeline = load_studio(args.studio).pipeline
    train = load_train_split(args.run, args.corpus, pipeline.audio_encoder)
    paths, images = image_paths(pipeline, train, args.prompts, steps=args.steps)
    paths["weights_version"] = pipeline.config.weights_version
    stem = write_result(args.out, "image-paths", paths, markdown(paths))
    paths_sheet(paths, images, train, args.corpus, args.sheet).save(stem.with_name(f"{stem.name}.png"), optimize=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
