"""The baselines the proposed model is measured against, trained on the same data and budget.

- early fusion: one VAE encoder over the concatenated embeddings (``early_fusion``);
- MVAE: the joint model with a product of experts (Wu & Goodman 2018);
- MMVAE: the joint model with a mixture of experts (Shi et al. 2019);
- MoPoE: the joint model with a mixture of products of experts (Sutter et al. 2021);
- the label bridge of DATA.md, untrained (``label_bridge``).

The trained baselines share the proposed model's sizes (latent, hidden, layers), its training
items, step budget, batch size, learning rate and seed, and its objective (the same beta) minus
the contrastive and input-noise terms: MVAE, MMVAE and MoPoE go through the very
``train_joint_model`` that studio-train uses, so they differ from the proposed model only in
the fusion rule, the contrastive alignment and the noisy inputs.
Each is saved (``save_pretrained``) in the work folder with the budget it reached, and is
loaded from there next time; a larger budget resumes its training.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..decoders.embedding_prior import EmbeddingPrior
from ..fusion.joint import JointLatentModel
from ..fusion.objectives import JointObjective
from ..training.joint import train_joint_model
from ..training.loop import StageConfig
from ..training.prior import prior_training_pairs, train_embedding_prior
from .dataset import MODALITIES, EvalSplit
from .early_fusion import EarlyFusionVAE, train_early_fusion

logger = logging.getLogger(__name__)

SAME_BUDGET = "same items, steps, batch size, learning rate, seed and β as the proposed model"
BASELINES = {
    "early fusion": "concatenated embeddings (zeros and presence flags for missing ones) into one VAE encoder, "
    f"trained on the ELBO over the same input subsets; {SAME_BUDGET}",
    "MVAE": f"joint model, product of experts with the prior (Wu & Goodman 2018); its objective without the contrastive and input-noise terms; {SAME_BUDGET}",
    "MMVAE": "joint model, mixture of experts, moment-matched (Shi et al. 2019); the project's subset ELBO rather "
    f"than the paper's IWAE estimator, without the contrastive and input-noise terms; {SAME_BUDGET}",
    "MoPoE": "joint model, mixture of products of experts over subsets (Sutter et al. 2021); its objective without "
    f"the contrastive and input-noise terms; {SAME_BUDGET}",
}
FUSION = {"MVAE": "poe", "MMVAE": "moe", "MoPoE": "mopoe"}


@dataclass
class Budget:
    """How much training a latent model gets, and on which objective terms: the baselines get the
    proposed model's steps, batch size and beta (read from the run's plan) and no contrastive or
    input-noise term; candidates of the objective selection (``experiments/selection.py``) set those
    terms too."""

    steps: int
    batch_size: int = 256
    learning_rate: float = 1e-3
    seed: int = 0
    beta: float = 1.0  # the KL weight, the proposed model's
    contrastive: float = 0.0
    input_noise: float = 0.0
    noisy_fraction: float = 0.5
    clean_alignment: bool = False
    text_noise: float = 1.0

    @classmethod
    def of_run(cls, run_folder: Path) -> Budget:
        """The joint stage's budget and beta of a studio-train run (its ``plan.json``, else studio-train's defaults)."""
        from ..training.stages import TrainPlan

        plan = TrainPlan.of_run(run_folder)
        return cls(steps=plan.steps["joint"], batch_size=plan.batch_size["joint"], beta=JointObjective(**plan.joint_objective).beta)

    def objective(self) -> JointObjective:
        return JointObjective(beta=self.beta, contrastive=self.contrastive, input_noise=self.input_noise,
                              noisy_fraction=self.noisy_fraction, clean_alignment=bool(self.clean_alignment),
                              text_noise=self.text_noise)

    def recipe(self) -> dict:
        """Everything but the step count: a model trained to another recipe cannot be reused or resumed."""
        return {k: v for k, v in asdict(self).items() if k != "steps"}

    def matches(self, info: dict) -> bool:
        """Whether a saved model's ``trained.json`` reached this budget with this recipe (a field
        it lacks was not a choice then: beta 1, no contrastive or input-noise term, noisy alignment)."""
        legacy = {"beta": 1.0, "contrastive": 0.0, "input_noise": 0.0, "noisy_fraction": 0.5, "clean_alignment": False, "text_noise": 1.0}
        return info["steps"] >= self.steps and {k: info.get(k, legacy.get(k)) for k in self.recipe()} == self.recipe()


def folder_name(name: str) -> str:
    return name.lower().replace(" ", "_")


def training_data(split: EvalSplit, modalities: tuple[str, ...]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Embeddings ``[N, D_m]`` (zeros where missing) and presence ``[M, N]`` in ``modalities`` order."""
    embeddings = {m: split.embeddings[m] for m in modalities}
    present = torch.stack([split.present[m].float() for m in modalities])
    return embeddings, present


def build_baseline(name: str, like: JointLatentModel, seed: int = 0):
    """An untrained baseline of the proposed model's sizes."""
    if name not in BASELINES:
        raise ValueError(f"Unknown baseline {name!r}; choose from {list(BASELINES)}.")
    config = like.config
    sizes = {
        "modality_dims": dict(config.modality_dims), "latent_dim": config.latent_dim,
        "hidden_dim": config.hidden_dim, "num_layers": config.num_layers,
    }
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if name == "early fusion":
            return EarlyFusionVAE(**sizes)
        return JointLatentModel(**sizes, fusion=FUSION[name])


def train_baseline(
    name: str, like: JointLatentModel, split: EvalSplit, folder: Path, budget: Budget, max_minutes: float | None = None
) -> tuple[torch.nn.Module, dict]:
    """The baseline ``name`` trained to ``budget`` (loaded if already trained that far): ``(model, info)``."""
    return train_to_budget(build_baseline(name, like, budget.seed), split, Path(folder) / folder_name(name), budget, max_minutes)


def train_to_budget(
    model: torch.nn.Module, split: EvalSplit, folder: Path, budget: Budget, max_minutes: float | None = None
) -> tuple[torch.nn.Module, dict]:
    """``model`` (freshly built) trained on ``split`` to ``budget`` and saved in ``folder``, or the
    model saved there if it already reached the budget with this recipe: ``(model, info)``.

    ``info`` records the steps reached and whether the budget was met (a ``max_minutes`` stop
    leaves it short; running again resumes).
    """
    folder = Path(folder)
    info_path = folder / "model" / "trained.json"
    if info_path.is_file():
        info = json.loads(info_path.read_text())
        if budget.matches(info):
            return type(model).from_pretrained(str(folder / "model")).eval(), info
    stage, recipe_path = folder / "stage", folder / "stage" / "budget.json"
    if stage.is_dir() and (not recipe_path.is_file() or json.loads(recipe_path.read_text()) != budget.recipe()):
        shutil.rmtree(stage)  # checkpoints of another recipe: start over
    stage.mkdir(parents=True, exist_ok=True)
    recipe_path.write_text(json.dumps(budget.recipe()))
    if set(model.modalities) - set(MODALITIES):
        raise ValueError(f"The evaluation knows the modalities {MODALITIES}; the model has {model.modalities}.")
    embeddings, present = training_data(split, model.modalities)
    config = StageConfig(
        stage, max_steps=budget.steps, checkpoint_every=500, log_every=100,
        max_minutes=max_minutes, seed=budget.seed,
    )
    start = time.perf_counter()
    logger.info("training %s for %d steps", folder.name, budget.steps)
    train = train_early_fusion if isinstance(model, EarlyFusionVAE) else train_joint_model
    result = train(model, embeddings, present, config, batch_size=budget.batch_size, learning_rate=budget.learning_rate, objective=budget.objective())
    info = {**asdict(budget), "steps": result.step, "finished": result.finished, "seconds": round(time.perf_counter() - start, 1)}
    if result.finished:
        model.save_pretrained(folder / "model")
        info_path.write_text(json.dumps(info, indent=2))
    return model.eval(), info


def train_baselines(
    like: JointLatentModel, split: EvalSplit, folder: Path, budget: Budget, names: list[str] | None = None,
    max_minutes: float | None = None,
) -> Mapping[str, tuple[torch.nn.Module, dict]]:
    """Every trained baseline (or those ``names``), each as ``(model, info)``."""
    return {name: train_baseline(name, like, split, folder, budget, max_minutes) for name in names or list(BASELINES)}


def train_image_prior(
    model: torch.nn.Module, split: EvalSplit, folder: Path, template: EmbeddingPrior, steps: int, batch_size: int,
    max_minutes: float | None = None,
) -> EmbeddingPrior | None:
    """A diffusion prior from ``model``'s latent to the image embedding, of ``template``'s sizes,
    trained as studio-train trains the proposed model's (same pairs, steps and batch size) and
    saved in ``folder / "image_prior"``; loaded from there once it reached ``steps``. None if a
    ``max_minutes`` stop left it short (running again resumes)."""
    target, stage = Path(folder) / "image_prior", Path(folder) / "image_prior_stage"
    info_path = target / "trained.json"
    conditions, targets = prior_training_pairs(model, split.embeddings, split.present, "image")
    pairs = hashlib.sha1(conditions.numpy().tobytes() + targets.numpy().tobytes()).hexdigest()[:16]  # another model or split: start over
    if info_path.is_file():
        info = json.loads(info_path.read_text())
        if info["pairs_digest"] == pairs and info["steps"] >= steps and info["batch_size"] == batch_size:
            return EmbeddingPrior.from_pretrained(str(target)).eval()
    if (stage / "pairs.txt").is_file() and (stage / "pairs.txt").read_text() != pairs:
        shutil.rmtree(stage)
    stage.mkdir(parents=True, exist_ok=True)
    (stage / "pairs.txt").write_text(pairs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        prior = EmbeddingPrior.from_config(template.config)
    config = StageConfig(stage, max_steps=steps, checkpoint_every=500, log_every=500, max_minutes=max_minutes)
    logger.info("training the image prior of %s for %d steps on %d pairs", Path(folder).name, steps, len(targets))
    result = train_embedding_prior(prior, conditions, targets, config, batch_size=batch_size)
    if not result.finished:
        return None
    prior.save_pretrained(target)
    info_path.write_text(json.dumps({"steps": result.step, "batch_size": batch_size, "pairs": len(targets), "pairs_digest": pairs}))
    return prior.eval()
