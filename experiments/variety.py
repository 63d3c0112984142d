"""How much do two seeds of one prompt differ, against two different prompts, and is the picture
still of the right concept? For a few settings of the image bank (``candidates``: how many of
the nearest training embeddings a seed draws among) and the latent temperature.

For each prompt the studio makes two images (seeds 0 and 1). Variety is the mean cosine
distance between the two images' EfficientNet features, over the mean distance between
the first images of different prompts (the issue's target: at least 0.5). Coherence is the
report's judge (the nearest real image, the prompt's own left out, has the prompt's concept),
over both seeds' images. Prompts: training captions (where a setting is chosen), held-out
captions (the report's text→image prompts, to check a chosen setting), or the showcase's
(variety only: they have no labels).

    python experiments/variety.py --corpus C --run R --split train --prompts 128 --settings 1:0 4:0 8:0
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from core import load_studio
from core.data.manifest import read_manifest
from core.evaluation.dataset import load_heldout_split, load_train_split, select_heldout
from core.evaluation.generation import build_judge, choose_prompts, judge_keys

SHOWCASE = Path(__file__).resolve().parent.parent / "assets" / "showcase" / "showcase.json"


def variety(features: torch.Tensor) -> dict[str, float]:
    """``features [2P, F]`` (seed 0 and seed 1 of each prompt, interleaved) → within, between, ratio."""
    unit = F.normalize(features.float(), dim=-1)
    first, second = unit[0::2], unit[1::2]  # (P, F)
    within = (1 - (first * second).sum(-1)).mean().item()
    similarity = first @ first.T
    between = (1 - similarity[~torch.eye(len(first), dtype=torch.bool)]).mean().item()
    return {"within": within, "between": between, "ratio": within / between}


def measure(studio, captions: list[str], candidates: int, temperature: float, judge=None, labels=None) -> dict:
    """Two images a caption with the bank drawing among ``candidates``; their variety and coherence."""
    studio.pipeline.image_prior.register_to_config(candidates=candidates)
    start, images = time.perf_counter(), []
    for caption in captions:
        images += studio.generate("image", text=caption, seed=0, num=2, temperature=temperature).outputs
    features = studio.pipeline.image_encoder.encode(images).float()
    result = {"candidates": candidates, "temperature": temperature, "prompts": len(captions), **variety(features)}
    if judge is not None:
        concepts, categories, keys = (sum(([x, x] for x in values), []) for values in labels)
        hits = judge.hits(features, concepts, categories, keys)
        result |= {f"{level}_hits": int(value.sum()) for level, value in hits.items()} | {"images": len(images)}
    result["seconds"] = round(time.perf_counter() - start, 1)
    return result


def prompts_and_judge(args, studio):
    """The captions, and for labelled splits the judge and the prompts' concept, category and own-media keys."""
    if args.split == "showcase":
        return json.loads(SHOWCASE.read_text())["prompts"], None, None
    train = load_train_split(args.run, args.corpus, studio.pipeline.audio_encoder)
    if args.split == "train":
        split, judge = train, build_judge("image", train)
    else:
        split = load_heldout_split(select_heldout(read_manifest(args.corpus), None), args.corpus, studio.pipeline, args.run / "eval")
        judge = build_judge("image", train, split)
    rows = choose_prompts(split, ("text",), "image", judge, args.prompts, args.seed)
    labels = (split.labels("concept", rows), split.labels("category", rows), judge_keys(split, "image", rows))
    return [split.items[i].caption for i in rows.tolist()], judge, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=Path.home() / ".cache/fusion-studio/corpus")
    parser.add_argument("--run", type=Path, default=Path.home() / ".cache/fusion-studio/runs/embedded")
    parser.add_argument("--split", choices=["train", "heldout", "showcase"], default="train")
    parser.add_argument("--prompts", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0, help="which prompts are drawn")
    parser.add_argument("--settings", nargs="+", default=["1:0", "4:0", "8:0"], help="candidates:temperature pairs")
    parser.add_argument("--out", type=Path, required=True, help="a json file of the results")
    parser.add_argument("--studio", default="embedded", help="a preset name or a saved studio folder")
    args = parser.parse_args()
    studio = load_studio(args.studio)
    captions, judge, labels = prompts_and_judge(args, studio)
    results = []
    for setting in args.settings:
        candidates, temperature = setting.split(":")
        results.append(measure(studio, captions, int(candidates), float(temperature), judge, labels))
        print(json.dumps(results[-1]), flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"split": args.split, "results": results}, indent=2))


if __name__ == "__main__":
    main()
