"""Choosing the joint model's objective on a validation split of the training items, so that the
held-out data the report uses plays no part in the choice.

The training items are split again the way studio-data splits the corpus (whole concepts, and
groups of items sharing media within seen concepts), with another seed. Each candidate objective
trains the proposed model on the rest, with the run's joint budget; the baselines are trained on
the same rest with the same budget. The report's tables that need no generation (classification,
retrieval, Tux Paint, missing input, both noisy tables) are filled on the validation items and
checked against the same floors; so is the coherence of the predicted embedding (the generation
tasks judged before any decoder), which stands in for the generation tables. The candidate that
misses the fewest floors wins; a tie goes to the larger summed margin over the best baseline of
each table.

    python -m experiments.selection --corpus C --run R [--candidates JSON]

writes ``<date>-selection-seed<N>.json`` and ``.md`` into ``docs/experiments/``, or the folder
``--out`` names (``--validation-seed N``, 1 by default: another seed is another fold; with
several seeds, ``<date>-selection.json`` and ``.md`` hold the choice over all the folds). Every
model is saved in the work folder under its fold, so a stopped run resumes and a second run only
fills the tables again.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import torch

from core.data.splits import assign_splits
from core.evaluation.baselines import Budget, train_baselines, train_to_budget
from core.evaluation.cli import embedding_tables
from core.evaluation.dataset import EvalSplit, load_train_split
from core.evaluation.floors import PROPOSED, bridge_floor, table_floors
from core.evaluation.generation import predicted_coherence_table
from core.evaluation.label_bridge import LabelBridge
from core.evaluation.methods import LabelBridgeMethod, LatentModelMethod
from core.evaluation.report import fmt
from core.evaluation.table import Table
from core.fusion.joint import JointLatentModel
from experiments.common import add_training_item_arguments, dated, results_folder, today

logger = logging.getLogger(__name__)

VALIDATION_SEED = 1  # studio-data splits the corpus with seed 0
CANDIDATES = (
    {"beta": 0.5, "contrastive": 0.5},
    {"beta": 0.5, "contrastive": 0.5, "input_noise": 2.0},
    {"beta": 0.5, "contrastive": 20.0},
    {"beta": 0.5, "contrastive": 20.0, "input_noise": 1.0},
    {"beta": 0.5, "contrastive": 20.0, "input_noise": 2.0},
    {"beta": 0.5, "contrastive": 20.0, "input_noise": 3.0},
    {"beta": 0.5, "contrastive": 20.0, "input_noise": 1.0, "clean_alignment": 1.0},
    {"beta": 0.5, "contrastive": 20.0, "input_noise": 2.0, "clean_alignment": 1.0},
    {"beta": 0.5, "contrastive": 20.0, "input_noise": 3.0, "clean_alignment": 1.0},
    {"beta": 0.5, "contrastive": 20.0, "input_noise": 3.0, "noisy_fraction": 0.25, "clean_alignment": 1.0},
    *({"beta": 0.5, "contrastive": 20.0, "input_noise": 2.0, "clean_alignment": 1.0, "text_noise": share} for share in (0.0, 0.25, 0.5)),
)


def validation_split(train: EvalSplit, concepts: float = 0.1, items: float = 0.1, seed: int = VALIDATION_SEED) -> tuple[EvalSplit, EvalSplit]:
    """``(fit, validation)``: ``train`` split as studio-data splits the corpus, with ``seed``."""
    held = {item.id for item in assign_splits(train.items, concepts, items, seed) if item.split != "train"}
    mask = torch.tensor([item.id in held for item in train.items], dtype=torch.bool)
    return train.subset(~mask), train.subset(mask)


def candidate_name(objective: Mapping[str, float]) -> str:
    """``beta0.5-contrastive20-input_noise2``: a folder name and row label."""
    return "-".join(f"{key}{value:g}" for key, value in sorted(objective.items()))


def fresh_like(like: JointLatentModel, seed: int) -> JointLatentModel:
    """An untrained joint model of ``like``'s configuration, seeded."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return JointLatentModel.from_config(like.config)


def score(tables: Sequence[Table], candidate: str, others: Sequence[str]) -> dict:
    """The floors ``candidate`` misses among ``others`` on ``tables``, and its margins over the best of them."""
    def rename(per_method: dict) -> dict:
        return {(PROPOSED if m == candidate else m): v for m, v in per_method.items() if m == candidate or m in others}

    renamed = {t.name: replace(t, rows=rename(t.rows), replicates=rename(t.replicates)) for t in tables}
    # the report's floors but the coherence ones, which need generation
    floors = [f for t in renamed.values() for f in table_floors(t, PROPOSED)] + [bridge_floor(renamed.get("retrieval_tuxpaint"), PROPOSED)]
    margins = {}
    for table in renamed.values():
        mine = table.average(PROPOSED)
        best = [table.average(m, table.shared_columns(PROPOSED, m)) for m in others if m in table.rows]
        best = [b for b in best if b is not None]
        if mine is not None and best:
            margins[table.name] = (mine - max(best)) if table.higher_is_better else (min(best) - mine)
    return {
        "missed": [f.name for f in floors if not f.passed], "floors": len(floors),
        "averages": {t.name: t.average(PROPOSED) for t in renamed.values()}, "margins": margins,
    }


def select_objective(
    train: EvalSplit, like: JointLatentModel, bridge: LabelBridge | None, budget: Budget, work: Path,
    candidates: Sequence[Mapping[str, float]] = CANDIDATES, max_minutes: float | None = None, seed: int = 0,
    validation_seed: int = VALIDATION_SEED,
) -> dict:
    """Trains every candidate and baseline on the fit part of ``train`` and scores them on its
    validation part; returns the selection (``complete`` is False while a model is unfinished)."""
    fit, validation = validation_split(train, seed=validation_seed)
    logger.info("objective selection: %d items to fit, %d to validate", len(fit), len(validation))
    work = Path(work) / f"seed{validation_seed}"  # each fold's models fit other items
    baseline_budget = replace(budget, contrastive=0.0, input_noise=0.0)
    trained = train_baselines(like, fit, work / "baselines", baseline_budget, max_minutes=max_minutes)
    methods = [LatentModelMethod(name, model) for name, (model, _) in trained.items()]
    infos = {name: info for name, (_, info) in trained.items()}
    names = []
    for objective in candidates:
        name = candidate_name(objective)
        terms = replace(budget, **{k: float(v) for k, v in objective.items()})
        model, infos[name] = train_to_budget(fresh_like(like, budget.seed), fit, work / "candidates" / name, terms, max_minutes)
        methods.append(LatentModelMethod(name, model))
        names.append(name)
    if bridge is not None:
        methods.append(LabelBridgeMethod(bridge))
    tables = [*embedding_tables(methods, fit, validation, seed=seed), predicted_coherence_table(methods, fit, validation, seed=seed)]
    others = [m.name for m in methods if m.name not in names]
    scores = {name: score(tables, name, others) for name in names}
    chosen = best(names, {n: len(scores[n]["missed"]) for n in names}, {n: sum(scores[n]["margins"].values()) for n in names})
    return {
        "chosen": chosen, "objective": dict(candidates[names.index(chosen)]), "candidates": {n: dict(c) for n, c in zip(names, candidates, strict=True)},
        "scores": scores, "baselines": {m: {t.name: t.average(m) if m in t.rows else None for t in tables} for m in others}, "complete": all(info["finished"] for info in infos.values()), "trained": infos,
        "fit_items": len(fit), "validation_items": len(validation), "validation_seed": validation_seed, "budget": budget.recipe() | {"steps": budget.steps},
        "tables": {t.name: t.to_dict() for t in tables},
    }


def best(names: Sequence[str], missed: Mapping[str, int], margin: Mapping[str, float]) -> str:
    """The selection rule, for one fold or several: fewest missed floors, then the largest summed margin."""
    return min(names, key=lambda n: (missed[n], -margin[n]))


def combine(selections: Sequence[Mapping]) -> dict:
    """The choice over several folds: the candidate with the fewest missed floors in all folds
    together, ties going to the larger summed margin; with each fold's misses and margins."""
    names = list(selections[0]["scores"])
    totals = {
        name: {
            "missed": [len(s["scores"][name]["missed"]) for s in selections],
            "floors": sum(s["scores"][name]["floors"] for s in selections),
            "margin": sum(sum(s["scores"][name]["margins"].values()) for s in selections),
        }
        for name in names
    }
    chosen = best(names, {n: sum(totals[n]["missed"]) for n in names}, {n: totals[n]["margin"] for n in names})
    return {
        "chosen": chosen, "objective": selections[0]["candidates"][chosen], "totals": totals,
        "validation_seeds": [s["validation_seed"] for s in selections], "complete": all(s["complete"] for s in selections),
    }


def combined_markdown(combined: Mapping) -> str:
    """The choice over several folds as a short report."""
    seeds = combined["validation_seeds"]
    lines = [
        "# Choosing the joint objective over several validation folds",
        "",
        f"Folds (validation seeds): {', '.join(map(str, seeds))}; each fold's tables are in `<date>-selection-seed<N>.md` beside this file.",
        "",
        "| objective | " + " | ".join(f"missed, seed {seed}" for seed in seeds) + " | missed in all | summed margin |",
        "|---|" + "---|" * (len(seeds) + 2),
    ]
    for name, total in combined["totals"].items():
        bold = "**" if name == combined["chosen"] else ""
        lines.append(f"| {bold}{name}{bold} | " + " | ".join(str(m) for m in total["missed"])
                     + f" | {sum(total['missed'])} of {total['floors']} | {total['margin']:+.3f} |")
    lines += ["", f"Chosen: **{combined['chosen']}** (fewest missed floors over all folds, then the largest summed margin)."]
    return "\n".join(lines) + "\n"


def markdown(selection: Mapping) -> str:
    """The selection as a short report: the candidates' averages, margins and missed floors."""
    scores = selection["scores"]
    tables = list(next(iter(scores.values()))["averages"])
    lines = [
        "# Choosing the joint objective on a validation split",
        "",
        f"{selection['fit_items']} training items fit every model; {selection['validation_items']} validation items "
        f"(training items split off by concept and media group, seed {selection['validation_seed']}) score them. No held-out item "
        "of the report is used. Each candidate is the proposed model trained with that objective; the baselines are "
        f"trained on the same items and budget ({selection['budget']['steps']} steps, batch {selection['budget']['batch_size']}, "
        f"β {selection['budget']['beta']:g}).",
        "",
        "| objective | " + " | ".join(tables) + " | missed floors |",
        "|---|" + "---|" * (len(tables) + 1),
    ]
    for name, entry in scores.items():
        bold = "**" if name == selection["chosen"] else ""
        cells = [fmt(entry["averages"][t]) for t in tables]
        lines.append(f"| {bold}{name}{bold} | " + " | ".join(cells) + f" | {len(entry['missed'])} of {entry['floors']} |")
    for method, averages in selection["baselines"].items():
        cells = [fmt(averages[t]) if averages.get(t) is not None else "n/a" for t in tables]
        lines.append(f"| {method} | " + " | ".join(cells) + " | — |")
    lines += [
        "",
        f"Chosen: **{selection['chosen']}** (fewest missed floors, then the largest summed margin over the best baseline of each table).",
        "",
        "Missed floors of the chosen objective: " + ("; ".join(scores[selection["chosen"]]["missed"]) or "none") + ".",
    ]
    if not selection["complete"]:
        lines += ["", "**Incomplete:** some models stopped short of the budget; run again to resume."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.selection", description=__doc__.split("\n\n")[0])
    add_training_item_arguments(parser, "selection-seed<N>.json and .md")  # the run's joint budget; the studio's joint configuration
    parser.add_argument("--work", type=Path, default=None, help="where the models are saved (default: <run>/eval/selection)")
    parser.add_argument("--candidates", type=json.loads, default=None, help="JSON list of joint objectives (default: the built-in thirteen)")
    parser.add_argument("--validation-seed", type=int, nargs="+", default=[VALIDATION_SEED],
                        help="seed of the validation split (default: %(default)s); another seed is another fold, several choose over all of them")
    parser.add_argument("--max-minutes", type=float, default=None, help="stop training after this long in each model (resumable)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from core import load_studio

    pipeline = load_studio(args.studio).pipeline
    train = load_train_split(args.run, args.corpus, pipeline.audio_encoder)
    bridge = LabelBridge.from_encoders(pipeline.image_encoder, pipeline.text_encoder)
    candidates = args.candidates or CANDIDATES
    if not candidates or not all(isinstance(c, dict) for c in candidates):
        parser.error("--candidates takes a JSON list of objects, e.g. '[{\"contrastive\": 20}]'.")
    out, day = results_folder(args.out), today()  # every fold's files dated as the run's start
    selections = []
    for seed in args.validation_seed:
        fold_start = time.perf_counter()
        selection = select_objective(
            train, pipeline.joint, bridge, Budget.of_run(args.run), args.work or args.run / "eval" / "selection",
            candidates, max_minutes=args.max_minutes, validation_seed=seed,
        )
        selection["seconds"] = round(time.perf_counter() - fold_start, 1)
        (out / f"{dated(f'selection-seed{seed}', day)}.json").write_text(json.dumps(selection, indent=2, ensure_ascii=False))
        (out / f"{dated(f'selection-seed{seed}', day)}.md").write_text(markdown(selection), encoding="utf-8")
        print(markdown(selection))
        selections.append(selection)
    if len(selections) > 1:
        combined = combine(selections)
        (out / f"{dated('selection', day)}.json").write_text(json.dumps(combined, indent=2, ensure_ascii=False))
        (out / f"{dated('selection', day)}.md").write_text(combined_markdown(combined), encoding="utf-8")
        print(combined_markdown(combined))
    complete = all(s["complete"] for s in selections)
    return 0 if complete else 2


if __name__ == "__main__":
    raise SystemExit(main())
