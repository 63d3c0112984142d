"""``studio-eval``: the proposed model against the baselines on held-out data, as a report.

    studio-eval --corpus ~/.cache/fusion-studio/corpus --run runs/embedded           # the full report
    studio-eval --corpus ... --run ... --quick                                       # a subset, minutes

It reads a corpus (``studio-data``) and a studio-train run (its embedding cache and plan), loads
the studio to evaluate (the shipped ``embedded`` preset by default), trains the baselines on the
run's training items with the joint stage's budget (kept in the work folder, ``<run>/eval`` by
default, and reused), then writes ``report.json``, ``report.md`` and plots into
``<studio>/eval`` (``assets/embedded/eval`` for the preset) or ``--out``. The report opens with
the floors of issue 4 and says plainly which are missed; ``--fail-on-floors`` makes a missed
floor the exit status.

``--quick`` evaluates a subset (320 held-out items, 8 prompts per generation task, 8
diffusion steps) with the baselines a full run trained; where there are none yet it trains them
for at most 200 steps (a few minutes more, and a comparison the report flags as unfair).
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..data.manifest import read_manifest
from ..decoders.embedding_prior import EmbeddingBank
from .baselines import BASELINES, Budget, folder_name, train_baselines, train_image_prior
from .classification import classification_table
from .dataset import load_heldout_split, load_train_split, select_heldout
from .floors import PROPOSED, check_floors, missed
from .generation import GenerationSettings, generation_tables
from .label_bridge import LabelBridge
from .methods import (
    LabelBridgeMethod,
    LatentModelMethod,
    prior_sampling,
    studio_method,
    studio_priors,
)
from .report import write_report
from .retrieval import missing_retrieval_table, retrieval_table, tuxpaint_table
from .robustness import NOISE_LEVELS, noisy_classification_table, noisy_retrieval_table
from .table import Table

logger = logging.getLogger(__name__)

DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fusion-studio"


def proposed_description(objective: dict[str, float]) -> str:
    """What the proposed model is, with the objective its run trained it on."""
    from ..fusion.objectives import JointObjective

    terms = JointObjective(**objective)
    text = (
        "the studio's joint model: weighted product of experts with the prior, trained by studio-train with the "
        f"ELBO over subsets (β={terms.beta:g}), cross-modal reconstruction and contrastive alignment (weight {terms.contrastive:g})"
    )
    if terms.input_noise > 0:
        text += f", its experts fed noisy inputs (up to {terms.input_noise:g} std, {terms.noisy_fraction:.0%} of them"
        text += ")" if terms.text_noise == 1 else f"; text at {terms.text_noise:g} of that level)"
        if terms.clean_alignment:
            text += " in the ELBO only (cross-modal and contrastive terms from the clean inputs)"
    return text


@dataclass
class EvalOptions:
    """What to evaluate and how much of it (``quick`` picks smaller defaults for the None fields)."""

    corpus: Path
    run: Path
    studio: str = "embedded"
    out: Path | None = None
    work: Path | None = None
    quick: bool = False
    heldout_limit: int | None = None
    prompts: int | None = None
    steps: int | None = None
    baseline_steps: int | None = None
    baseline_minutes: float | None = None
    skip_generation: bool = False
    device: str = "cpu"
    seed: int = 0

    def resolved(self) -> EvalOptions:
        """A copy with every default filled in."""
        from ..studio import resolve_preset

        quick = self.quick
        return EvalOptions(
            corpus=Path(self.corpus), run=Path(self.run), studio=str(self.studio),
            out=Path(self.out) if self.out else resolve_preset(self.studio) / "eval",
            work=Path(self.work) if self.work else Path(self.run) / "eval",
            quick=quick,
            heldout_limit=self.heldout_limit if self.heldout_limit is not None else (320 if quick else None),
            prompts=self.prompts if self.prompts is not None else (8 if quick else 128),
            steps=self.steps if self.steps is not None else (8 if quick else None),
            baseline_steps=self.baseline_steps, baseline_minutes=self.baseline_minutes,
            skip_generation=self.skip_generation, device=self.device, seed=self.seed,
        )


def evaluate(options: EvalOptions) -> dict:
    """Runs the evaluation and writes the report; returns ``{"files": ..., "floors": ..., "tables": ...}``."""
    from .. import load_studio

    options = options.resolved()
    start = time.perf_counter()
    # 1. the studio under test and the data
    studio = load_studio(options.studio, device=options.device)
    pipeline = studio.pipeline
    train = load_train_split(options.run, options.corpus, pipeline.audio_encoder)
    items = select_heldout(read_manifest(options.corpus), options.heldout_limit, options.seed)
    if not items:
        raise ValueError(f"The corpus at {options.corpus} has no held-out items; build it with studio-data (it splits them off).")
    test = load_heldout_split(items, options.corpus, pipeline, options.work)
    # 2. the methods: the proposed model, the trained baselines, the label bridge
    budget = baseline_budget(options)
    trained = train_baselines(pipeline.joint, train, options.work / "baselines", budget, max_minutes=options.baseline_minutes)
    from ..training.stages import TrainPlan

    priors = image_priors(pipeline, trained, train, options)
    sampling = prior_sampling(pipeline) | {"seed": options.seed}
    description = proposed_description(TrainPlan.of_run(options.run).joint_objective)
    note = prior_note(priors)
    methods = [studio_method(PROPOSED, pipeline, description + note * bool(priors), options.seed)]
    methods += [LatentModelMethod(name, model, BASELINES[name] + note * (name in priors), priors.get(name), **sampling) for name, (model, _) in trained.items()]
    methods.append(LabelBridgeMethod(LabelBridge.from_encoders(pipeline.image_encoder, pipeline.text_encoder)))
    # 3. the tables
    logger.info("classification and retrieval on %d held-out items", len(test))
    tables = embedding_tables(methods, train, test, seed=options.seed)
    samples, sample_prompts = {}, []
    settings = GenerationSettings(prompts=options.prompts, steps=options.steps, seed=options.seed)
    if not options.skip_generation:
        generated = generation_tables(methods, pipeline, train, test, settings)
        tables += [generated.coherence, generated.coherence_category, generated.fidelity]
        samples = real_samples(options.corpus, test, generated.sample_rows) | generated.samples
        sample_prompts = test.labels("caption", generated.sample_rows)
    # 4. the floors and the report
    floors = check_floors({t.name: t for t in tables})
    meta = {
        "studio": options.studio, "weights_version": studio.weights_version, "is_trained": studio.is_trained,
        "corpus": str(options.corpus), "run": str(options.run), "quick": options.quick, "heldout_items": len(test),
        "train_items": len(train), "date": time.strftime("%Y-%m-%d %H:%M"), "seconds": round(time.perf_counter() - start, 1),
        "settings": {
            "baseline_budget": asdict(budget), "proposed_budget_steps": Budget.of_run(options.run).steps,
            "baselines_trained": {name: info for name, (_, info) in trained.items()},
            "generation": asdict(settings) | {"skipped": options.skip_generation},
            "noise_levels": list(NOISE_LEVELS), "heldout_limit": options.heldout_limit,
        },
        "notes": notes(studio, trained, Budget.of_run(options.run)) + [
            f"{name} has no trained image prior (a time stop left it short): its images come from its decoded mean."
            for name in trained if priors and name not in priors
        ],
    }
    files = write_report(options.out, meta, {m.name: m.description for m in methods}, tables, floors, samples, sample_prompts)
    return {"files": files, "floors": floors, "tables": {t.name: t for t in tables}, "meta": meta}


def prior_note(priors: dict) -> str:
    """What a method's description adds for the image prior it draws through."""
    found = priors.get(PROPOSED, {}).get("image")
    if isinstance(found, EmbeddingBank):
        return "; images from the training image embedding nearest to its decoded mean (the image bank, the same for every latent model)"
    return "; images through a diffusion prior from its latent to the image embedding"


def image_priors(pipeline, trained: dict, train, options: EvalOptions) -> dict[str, dict]:
    """Baseline → ``{"image": prior}``: where the studio has a trained image prior (the proposed model's),
    a prior of the same sizes and budget trained on each baseline's latent, so every latent model
    reaches the image decoder the same way (the proposed model's entry is the studio's own).
    Empty without a trained prior."""
    found = {PROPOSED: studio_priors(pipeline)}
    if not found[PROPOSED]:
        return {}
    from ..training.stages import TrainPlan

    prior, plan = found[PROPOSED]["image"], TrainPlan.of_run(options.run)
    if isinstance(prior, EmbeddingBank):  # it holds training images, not a model's: every method shares it
        return found | {name: {"image": prior} for name in trained}
    for name, (model, _) in trained.items():
        baseline_prior = train_image_prior(
            model, train, options.work / "baselines" / folder_name(name), prior,
            plan.steps["image_prior"], plan.batch_size["image_prior"], options.baseline_minutes,
        )
        if baseline_prior is not None:
            found[name] = {"image": baseline_prior}
    return found


def embedding_tables(methods: list, train, test, seed: int = 0) -> list[Table]:
    """The tables that need no generation: classification (probes fitted on ``train``), retrieval,
    Tux Paint, missing input, and both noisy tables, on ``test``."""
    classification, probes = classification_table(methods, train, test)
    return [
        classification, retrieval_table(methods, test), tuxpaint_table(methods, test), missing_retrieval_table(methods, test),
        noisy_classification_table(methods, probes, train, test, seed=seed),
        noisy_retrieval_table(methods, train, test, seed=seed),
    ]


def baseline_budget(options: EvalOptions) -> Budget:
    """The run's joint budget; ``--baseline-steps`` overrides it; quick caps it at 200 steps."""
    budget = Budget.of_run(options.run)
    if options.baseline_steps is not None:
        budget.steps = options.baseline_steps
    elif options.quick:
        budget.steps = min(budget.steps, 200)
    return budget


def real_samples(corpus: Path, test, rows: list[int]) -> dict:
    """The real images of the sample prompts (None where a prompt has none), shown above the generated ones."""
    from ..media import load_image

    images = [test.items[i].image for i in rows]
    if not images:
        return {}
    return {"real": [load_image(str(Path(corpus) / image)).resize((64, 64)) if image else None for image in images]}


def notes(studio, trained: dict, proposed: Budget) -> list[str]:
    """Plain warnings about what makes these numbers less than the shipped model's fair result."""
    found = []
    untrained = [name for name, c in studio.pipeline.parts.items() if c is not None and not getattr(c, "is_trained", True)]
    if untrained:
        found.append(f"The studio has untrained parts ({', '.join(untrained)}): these are not the numbers of trained weights.")
    for name, (_, info) in trained.items():
        if info["steps"] < proposed.steps:
            found.append(f"{name} was trained for {info['steps']} steps, the proposed model's budget is {proposed.steps}: not a like-for-like comparison.")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="studio-eval", description="Evaluate a studio against the baselines on held-out data.")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CACHE / "corpus", help="the corpus built by studio-data (default: %(default)s)")
    parser.add_argument("--run", type=Path, default=Path("runs/embedded"), help="the studio-train run whose cache and plan to use")
    parser.add_argument("--studio", default="embedded", help="a preset name or a saved studio folder (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=None, help="report folder (default: <studio>/eval)")
    parser.add_argument("--work", type=Path, default=None, help="held-out embeddings and trained baselines (default: <run>/eval)")
    parser.add_argument("--quick", action="store_true", help="a subset that runs in minutes")
    parser.add_argument("--heldout-limit", type=int, default=None, help="held-out items to use (default: all; quick: 320)")
    parser.add_argument("--prompts", type=int, default=None, help="prompts per generation task (default: 128; quick: 8)")
    parser.add_argument("--steps", type=int, default=None, help="diffusion steps (default: the studio's; quick: 8)")
    parser.add_argument("--baseline-steps", type=int, default=None, help="training steps of each baseline (default: the run's joint budget)")
    parser.add_argument("--baseline-minutes", type=float, default=None, help="stop baseline training after this long (resumable)")
    parser.add_argument("--skip-generation", action="store_true", help="leave out the coherence and fidelity tables")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fail-on-floors", action="store_true", help="exit with status 1 when a floor is missed")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    fail = args.fail_on_floors
    options = EvalOptions(**{k: v for k, v in vars(args).items() if k != "fail_on_floors"})
    result = evaluate(options)
    failing = missed(result["floors"])
    print(f"report: {result['files']['md']}")
    print(f"floors: {len(result['floors']) - len(failing)} met, {len(failing)} missed")
    for floor in failing:
        print(f"  MISSED {floor.name}: {floor.detail}")
    return 1 if fail and failing else 0
