"""Does a mix blend? Text "a cat" with a picture of a car at rising image weights.

    python -m experiments.mixing [--studio embedded] [--corpus C] [--seeds 3]

For image weights 0, 0.5, 1, 2 and 4 (the text's weight stays 1) the studio draws the mix,
through the image bank (the default) and from the decoded mean (``use_image_prior=False``).
Each picture's place between the ends is measured with EfficientNet-Lite0 features: with
``a`` its cosine distance to the text alone's picture and ``b`` to the car picture alone's,
``progress = a / (a + b)`` (0: the cat end, 1: the car end). A blend moves step by step; a
jump puts most of the way in one step. Writes ``<date>-mixing.{json,md,png}``.
"""

from __future__ import annotations

import argparse
import json
from itertools import pairwise
from pathlib import Path

import torch
from PIL import Image

from core import load_studio
from core.evaluation.cli import DEFAULT_CACHE
from core.evaluation.showcase import contact_sheet
from experiments.common import dated, results_folder

WEIGHTS = (0.0, 0.5, 1.0, 2.0, 4.0)
CAR = "images/openclipart/openclipart-transportation-vehicles-car.png"  # a training picture of the concept "car"


def sweep(studio, car: Image.Image, seed: int, use_image_prior: bool) -> list[Image.Image]:
    """The text alone, each image weight's mix, then the car picture alone."""
    pictures = [studio.generate("image", text="a cat", image=car, weights={"text": 1.0, "image": w}, seed=seed,
                                use_image_prior=use_image_prior).outputs[0] for w in WEIGHTS]
    alone = studio.generate("image", image=car, weights={"image": 1.0}, seed=seed, use_image_prior=use_image_prior).outputs[0]
    return [*pictures, alone]


def progress(studio, pictures: list[Image.Image]) -> list[float]:
    """Each mix's place between the first picture (0) and the last (1), by feature distance."""
    features = torch.nn.functional.normalize(studio.pipeline.image_encoder.encode(pictures), dim=-1)
    start, end = features[0], features[-1]
    places = []
    for row in features[:-1]:
        a, b = float(1 - row @ start), float(1 - row @ end)
        places.append(a / (a + b) if a + b > 0 else 0.0)
    return places


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studio", default="embedded")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CACHE / "corpus")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    studio = load_studio(args.studio)
    car = Image.open(args.corpus / CAR).convert("RGB")
    results, rows = {}, []
    for name, prior in (("image bank", True), ("decoded mean", False)):
        runs = []
        for seed in range(args.seeds):
            pictures = sweep(studio, car, seed, prior)
            places = progress(studio, pictures)
            steps = [b - a for a, b in pairwise(places)]
            runs.append({"seed": seed, "progress": places, "largest_step": max(steps), "backwards": sum(s < -0.05 for s in steps)})
            if seed == 0:
                rows.append((name, pictures))
        results[name] = runs
    out = results_folder(args.out)
    stem = dated("mixing")
    (out / f"{stem}.json").write_text(json.dumps({"weights": WEIGHTS, "studio": studio.weights_version, "results": results}, indent=2))
    lines = ['Text "a cat" (weight 1) with a picture of a car at image weights ' + ", ".join(f"{w:g}" for w in WEIGHTS)
             + "; progress 0 is the text alone's picture, 1 the car alone's.", "",
             "| path | seed | progress at each weight | largest step | steps back |", "| --- | --- | --- | --- | --- |"]
    for name, runs in results.items():
        lines += [f"| {name} | {r['seed']} | {' → '.join(f'{p:.2f}' for p in r['progress'])} | {r['largest_step']:.2f} | {r['backwards']} |" for r in runs]
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    heads = ["a cat", *[f"w={w:g}" for w in WEIGHTS[1:]], "car alone"]
    sheet = contact_sheet([p for _, pictures in rows for p in pictures],
                          [f"{head} ({name})" if c == 0 else head for name, _ in rows for c, head in enumerate(heads)], columns=len(heads))
    sheet.save(out / f"{stem}.png")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
