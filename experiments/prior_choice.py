"""Choosing how text→image reaches the image decoder (the joint model's decoded mean, the
diffusion prior at each guidance, or the image bank), on a validation fold of the training
items, so that the held-out data the report uses plays no part.

The run's training items are split again as the objective selection splits them (whole
concepts, and media groups of seen concepts; seed 1). A prior of the studio's sizes and the
run's budget is trained on the rest, with the studio's joint model; then images are drawn from
the validation captions, once from the joint model's decoded mean and once through the fold's
prior at each guidance value (the studio's image guidance and steps, one seed per prompt), and
judged as the guidance sweep judges them: the nearest real training image (the prompt's own
left out) in EfficientNet space. The studio's joint model was trained on every training item,
the validation items included, while the fold's prior never saw them: a bias towards the
decoded mean, so a prior that wins here wins despite it. The image bank (``EmbeddingBank``,
variant ``bank``) holds every training image's embedding but the prompts' own and their
near-duplicates: like the joint model, it knows the fold's other items. The fold's bank
(``fold-bank``) holds only the images of the items the fold's prior trains on: it knows none
of the validation items, so it cannot draw a concept that only they show. ``--variants`` picks
the rows (default: ``mean,prior,bank``).

    python -m experiments.prior_choice --corpus C --run R [--values 1,2,4] [--score embeddings]

writes ``<date>-prior.json`` and ``.md`` into ``docs/experiments/``, or the folder ``--out``
names. ``--score embeddings`` skips the image decoder and judges the drawn embeddings themselves
(the same EfficientNet space), in seconds rather than minutes, into
``<date>-prior-embeddings.json`` and ``.md``: a quick way to compare priors with one another
(their steps, temperature, guidance). Against the decoded mean it is no verdict, as the nearest
real image to a concept's average embedding is often of that concept while the decoder draws
the average as a blur. ``studio-train export --prior-sampling
'{"guidance": G, "temperature": T}'`` sets how the exported studio draws from the prior (which
is exported when the run trained one: ``studio-train image_prior``).
"""

from __future__ import annotations

import argparse
import logging
import time

import torch

from core.evaluation.baselines import train_image_prior
from core.evaluation.dataset import load_train_split
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
    made_embeddings,
    real_features,
)
from core.evaluation.methods import LatentModelMethod
from core.evaluation.report import fmt
from experiments.common import add_training_item_arguments, write_result
from experiments.guidance import choice_lines, parse_values
from experiments.selection import VALIDATION_SEED, validation_split

logger = logging.getLogger(__name__)

VALUES = (1.0, 2.0, 4.0)
VARIANTS = ("mean", "prior", "bank", "fold-bank")


def compare_prior(
    pipeline, train, work, values=VALUES, prompts: int = 160, steps: int = 4000, batch_size: int = 256, seed: int = 0, temperature: float = 1.0,
    validation_seed: int = VALIDATION_SEED, decode: bool = True, variants=("mean", "prior", "bank"), size: str = "embedded",
) -> dict:
    """The decoded mean, the fold's prior at each guidance value and the image banks (each of
    ``variants``), on validation captions."""
    from core.decoders.embedding_prior import EmbeddingPrior
    from core.pipelines.build import build_image_prior

    fit, validation = validation_split(train, seed=validation_seed)
    if isinstance(pipeline.image_prior, EmbeddingPrior):
        template = pipeline.image_prior
    else:  # no prior, or a bank: the diffusion prior of the run's size
        template = build_image_prior(size, pipeline.image_encoder.embed_dim, pipeline.joint.config.latent_dim)
    judge = build_judge("image", train)
    rows = choose_prompts(validation, ("text",), "image", judge, prompts, seed)
    concepts, categories, keys = validation.labels("concept", rows), validation.labels("category", rows), judge_keys(validation, "image", rows)
    reference = real_features(train, "image", fidelity_reference(train, "image", torch.tensor([], dtype=torch.long)))
    methods, sizes = [], {}
    if "mean" in variants:
        methods.append(("decoded mean", None, LatentModelMethod(PROPOSED, pipeline.joint, seed=seed)))
    if "prior" in variants:
        prior = train_image_prior(pipeline.joint, fit, work, template, steps, batch_size)
        drawn = "prior" if temperature == 1 else f"prior at temperature {temperature:g}"
        methods += [(f"{drawn}, guidance {value:g}", value, LatentModelMethod(PROPOSED, pipeline.joint, priors={"image": prior},
                     prior_steps=pipeline.config.prior_steps, prior_guidance=value, seed=seed, prior_temperature=temperature)) for value in values]
    for variant, name in (("bank", "image bank"), ("fold-bank", "the fold's image bank")):
        if variant in variants:
            bank = prompts_left_out_bank(train, validation, rows, template.config.components) if variant == "bank" else fold_bank(fit, template.config.components)
            sizes[variant] = bank.config.size
            methods.append((name, None, LatentModelMethod(PROPOSED, pipeline.joint, priors={"image": bank}, seed=seed)))
    results = []
    for name, value, method in methods:
        start = time.perf_counter()
        if decode:
            features, _ = generate(method, MediaGenerator(pipeline, GenerationSettings(prompts=prompts, seed=seed)), validation, rows, ("text",), "image")
        else:
            features = made_embeddings(method, validation, rows, ("text",), "image").float().cpu()
        scores = judge.score(features, concepts, categories, keys)
        results.append({"variant": name, "prior_guidance": value, **scores, "fidelity": fidelity(features, reference),
                        "seconds": round(time.perf_counter() - start, 1)})
        logger.info("%s: %s", name, results[-1])
    best = max(results, key=lambda r: (r["concept"], r["category"], -(r["fidelity"] if r["fidelity"] is not None else float("inf"))))
    return {
        "chosen": best["variant"], "chosen_guidance": best["prior_guidance"], "results": results, "prompts": len(rows),
        "fit_items": len(fit), "validation_items": len(validation), "prior_steps": steps, "seed": seed, "temperature": temperature,
        "validation_seed": validation_seed, "scored": "images" if decode else "embeddings", "bank_sizes": sizes,
        "image_guidance": pipeline.resolve_defaults("image", None, None)[1], "chance": judge.chance(concepts, categories, keys),
    }


def prompts_left_out_bank(train, validation, rows, components: int, duplicate_cosine: float = 0.99):
    """An image bank of every training image but those of the validation ``rows`` and their
    near-duplicates (a cosine above ``duplicate_cosine`` in the whitened components, as the
    bank itself keeps near-duplicates once)."""
    from core.decoders.embedding_prior import EmbeddingBank

    images = train.rows(("image",))
    embeddings = train.embeddings["image"][images]
    own = set(validation.keys("image", rows))
    kept = torch.tensor([key not in own for key in train.keys("image", images)], dtype=torch.bool)
    space = EmbeddingBank(embed_dim=embeddings.shape[1], components=components)  # only its components, as the bank fits them
    space.fit_basis(embeddings)
    kept &= ~((space.directions(embeddings) @ space.directions(validation.embeddings["image"][rows]).T) > duplicate_cosine).any(dim=1)
    return EmbeddingBank.from_embeddings(embeddings[kept], components=components).eval()


def fold_bank(fit, components: int):
    """An image bank of the fit items' images only."""
    from core.decoders.embedding_prior import EmbeddingBank

    return EmbeddingBank.from_embeddings(fit.embeddings["image"][fit.rows(("image",))], components=components).eval()


def bank_lines(sizes: dict) -> list[str]:
    """What each image bank of a comparison holds."""
    lines = []
    if "bank" in sizes:
        lines += ["", f"The image bank holds the embeddings of every training image but the prompts' own and their near-duplicates "
                  f"({sizes['bank']} entries, near-duplicates once) and snaps the decoded mean to the nearest: like the joint model, "
                  "it knows the fold's other items."]
    if "fold-bank" in sizes:
        lines += ["", f"The fold's image bank holds only the images of the items the fold's prior trains on ({sizes['fold-bank']} entries): "
                  "it knows none of the validation items, so it cannot draw a concept that only they show (the joint model has seen them)."]
    return lines


def markdown(comparison: dict) -> str:
    decoded = comparison.get("scored", "images") == "images"
    judged = (f"image guidance {comparison['image_guidance']:g}, one seed per prompt; the judge is the nearest real training image"
              if decoded else "one seed per prompt; no image is decoded: the judge is the nearest real training image to each drawn embedding")
    lines = [
        "# Images from text: the decoded mean, the image prior" + (" or the image bank" if comparison.get("bank_sizes") else "")
        + " (validation fold of the training items)"
        + ("" if decoded else ", scored on the embeddings"),
        "",
        f"A prior trained for {comparison['prior_steps']} steps on {comparison['fit_items']} training items; "
        f"{comparison['prompts']} captions of the other {comparison['validation_items']} (whole concepts it never saw, and "
        f"items of seen ones), {judged} (the prompt's own left out) in EfficientNet space. No held-out item of the report is used. "
        f"Chance: concept {fmt(comparison['chance']['concept'])}, category {fmt(comparison['chance']['category'])}.",
        *([] if decoded else ["", "Scores of embeddings compare priors with one another; the decoded mean's embedding is an average, "
                              "which the decoder draws as a blur, so its row here flatters it."]),
        *bank_lines(comparison.get("bank_sizes", {})),
        "",
        "| variant | concept coherence | category coherence | Fréchet distance | seconds |",
        "|---|---|---|---|---|",
    ]
    results = comparison["results"]
    return "\n".join(lines + choice_lines([r["variant"] for r in results], results, comparison["chosen"], comparison["prompts"])) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.prior_choice", description=__doc__.split("\n\n")[0])
    add_training_item_arguments(parser, "prior.json and .md")
    parser.add_argument("--values", default=",".join(f"{v:g}" for v in VALUES), help="comma-separated prior guidance values (default: %(default)s)")
    parser.add_argument("--prompts", type=int, default=160, help="validation captions (default: %(default)s)")
    parser.add_argument("--prior-steps", type=int, default=None, help="the fold prior's training steps (default: the run's image_prior budget)")
    parser.add_argument("--validation-seed", type=int, default=VALIDATION_SEED, help="the fold (default: %(default)s, the selection's first)")
    parser.add_argument("--temperature", type=float, default=1.0, help="scale of the prior's starting noise (default: %(default)s)")
    parser.add_argument("--variants", default="mean,prior,bank", help=f"comma-separated rows, of {','.join(VARIANTS)} (default: %(default)s)")
    parser.add_argument("--score", choices=("images", "embeddings"), default="images",
                        help="judge decoded images, or the drawn embeddings without decoding (default: %(default)s)")
    args = parser.parse_args(argv)
    values = parse_values(parser, args.values, 20)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if not variants or any(v not in VARIANTS for v in variants):
        parser.error(f"--variants takes a comma-separated list of {', '.join(VARIANTS)}.")
    from core.decoders.embedding_prior import valid_temperature

    if not valid_temperature(args.temperature):
        parser.error("--temperature takes a number above 0 and at most 2.")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from core import load_studio
    from core.training.stages import TrainPlan

    pipeline = load_studio(args.studio).pipeline
    train = load_train_split(args.run, args.corpus, pipeline.audio_encoder)
    plan = TrainPlan.of_run(args.run)
    fold = "prior_fold" if args.validation_seed == VALIDATION_SEED else f"prior_fold{args.validation_seed}"
    comparison = compare_prior(pipeline, train, args.run / "eval" / fold, values, args.prompts, args.prior_steps or plan.steps["image_prior"],
                               plan.batch_size["image_prior"], temperature=args.temperature, validation_seed=args.validation_seed,
                               decode=args.score == "images", variants=variants, size=plan.size)
    comparison["weights_version"] = pipeline.config.weights_version
    write_result(args.out, "prior" if args.score == "images" else "prior-embeddings", comparison, markdown(comparison))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
