"""The experiment tools (``experiments/``) that chose the shipped studio's settings on training
items: the objective, the guidance, temperature and steps, the image prior, best first and the
image decoder's paths, on synthetic data or a tiny run folder. Their results are dated files."""

import json
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from core.evaluation.baselines import BASELINES, Budget
from experiments import common
from tests.test_evaluation import (
    DIMS,
    WIDE,
    one_thread,  # noqa: F401 (a fixture, used by name)
    split_corpus,
    synthetic_split,
    tiny_joint,
)

DAY = "2026-12-05"


@pytest.fixture(autouse=True)
def same_day(monkeypatch):
    """Every result is dated ``DAY``, whenever the test runs."""
    monkeypatch.setattr(common, "today", lambda: DAY)


def test_results_go_to_dated_files_under_docs_experiments_by_default(tmp_path, monkeypatch, capsys):
    assert Path(__file__).resolve().parent.parent / "docs" / "experiments" == common.RESULTS  # never the preset's eval/
    monkeypatch.setattr(common, "RESULTS", tmp_path / "docs" / "experiments")
    stem = common.write_result(None, "guidance", {"chosen": 7.0}, "# a sweep\n")
    assert stem == tmp_path / "docs" / "experiments" / f"{DAY}-guidance"
    assert json.loads((tmp_path / "docs" / "experiments" / f"{DAY}-guidance.json").read_text()) == {"chosen": 7.0}
    assert (tmp_path / "docs" / "experiments" / f"{DAY}-guidance.md").read_text() == "# a sweep\n" and "# a sweep" in capsys.readouterr().out
    # --out names another folder; the names keep their date
    assert common.write_result(tmp_path / "out", "prior", {}, "") == tmp_path / "out" / f"{DAY}-prior"
    assert common.dated("selection", "2026-12-04") == "2026-12-04-selection"


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_guidance_is_chosen_on_training_prompts_only(tmp_path):
    from core.training.stages import main as studio_train
    from experiments.guidance import main as choose_guidance

    corpus, run = tmp_path / "corpus", tmp_path / "run"
    split_corpus(corpus)
    common = ["--corpus", str(corpus), "--run", str(run), "--size", "tiny", "--steps", json.dumps({"sound_encoder": 2, "joint": 4})]
    for stage in ("embeddings", "sound_encoder", "joint"):
        studio_train([stage, *common])
    studio_train(["export", *common, "--export-to", str(tmp_path / "studio")])
    arguments = ["--corpus", str(corpus), "--run", str(run), "--studio", str(tmp_path / "studio"), "--out", str(tmp_path / "out"),
                 "--values", "1,4", "--prompts", "3", "--steps", "2"]
    assert choose_guidance(arguments) == 0
    sweep = json.loads((tmp_path / "out" / f"{DAY}-guidance.json").read_text())
    assert [r["guidance"] for r in sweep["results"]] == [1.0, 4.0] and sweep["steps"] == 2
    # training items only (held-out items and the held-out concept yellow play no part)
    assert sweep["prompts"] == 3 and all(i.endswith("-0") and not i.startswith("yellow") for i in sweep["prompt_ids"])
    best = max(sweep["results"], key=lambda r: (r["concept"], r["category"], -r["fidelity"]))
    assert sweep["chosen"] == best["guidance"]
    assert f"**{sweep['chosen']:g}**" in (tmp_path / "out" / f"{DAY}-guidance.md").read_text()
    # sounds: made from training images, written beside the image sweep without replacing it
    assert choose_guidance([*arguments, "--output", "sound"]) == 0
    sound = json.loads((tmp_path / "out" / f"{DAY}-guidance-sound.json").read_text())
    assert (sound["output"], sound["task"], sound["prompts"], sound["steps"]) == ("audio", "image→sound", 3, 2)
    assert all(i.endswith("-0") and "-sound-" not in i and not i.startswith("yellow") for i in sound["prompt_ids"])
    assert all(r["fidelity"] is not None for r in sound["results"])
    assert "image→sound" in (tmp_path / "out" / f"{DAY}-guidance-sound.md").read_text()
    assert json.loads((tmp_path / "out" / f"{DAY}-guidance.json").read_text()) == sweep
    with pytest.raises(SystemExit):
        choose_guidance([*arguments[:-6], "--values", "three"])
    # the latent temperature, swept the same way at the studio's guidance, written beside the guidance sweep
    assert choose_guidance([*arguments[:-6], "--setting", "temperature", "--values", "0,1", "--prompts", "3", "--steps", "2"]) == 0
    temperature = json.loads((tmp_path / "out" / f"{DAY}-temperature.json").read_text())
    assert [r["temperature"] for r in temperature["results"]] == [0.0, 1.0] and temperature["setting"] == "temperature"
    exported = json.loads((tmp_path / "studio" / "model_index.json").read_text())["default_guidance"]["image"]
    assert temperature["prompt_ids"] == sweep["prompt_ids"] and temperature["guidance"] == exported
    assert "| temperature |" in (tmp_path / "out" / f"{DAY}-temperature.md").read_text()
    with pytest.raises(SystemExit):
        choose_guidance([*arguments[:-6], "--setting", "temperature", "--values", "3"])
    # the diffusion steps, with another sampler: written as steps-dpmpp.*, beside the others
    assert choose_guidance([*arguments[:-6], "--setting", "steps", "--values", "1,2", "--prompts", "3", "--scheduler", "dpm++"]) == 0
    steps = json.loads((tmp_path / "out" / f"{DAY}-steps-dpmpp.json").read_text())
    assert [r["steps"] for r in steps["results"]] == [1.0, 2.0] and (steps["scheduler"], steps["steps"]) == ("dpm++", None)
    assert steps["prompt_ids"] == sweep["prompt_ids"] and steps["guidance"] == exported
    assert "the dpm++ scheduler" in (tmp_path / "out" / f"{DAY}-steps-dpmpp.md").read_text()
    for wrong in (["--setting", "steps", "--values", "2.5"], ["--setting", "steps", "--values", "0"], ["--scheduler", "euler"], ["--steps", "0"]):
        with pytest.raises(SystemExit):
            choose_guidance([*arguments[:-6], *wrong])
    from core import load_studio
    from core.evaluation.generation import GenerationSettings, MediaGenerator

    pipeline = load_studio(tmp_path / "studio").pipeline
    embedding = torch.randn(1, pipeline.image_encoder.embed_dim)
    made = {name: np.asarray(MediaGenerator(pipeline, GenerationSettings(steps=2, scheduler=name)).make(embedding, "image", [0])[0])
            for name in (None, "ddim", "dpm++")}
    assert np.array_equal(made[None], made["ddim"]) and not np.array_equal(made["ddim"], made["dpm++"])  # the sampler is used
    # the image decoder fed the caption's, the image's through the latent, and the real embedding
    from experiments.image_paths import PATHS
    from experiments.image_paths import main as image_paths

    assert image_paths([*arguments[:-6], "--prompts", "3", "--steps", "2"]) == 0
    paths = json.loads((tmp_path / "out" / f"{DAY}-image-paths.json").read_text())
    assert list(paths["results"]) == list(PATHS) and paths["prompts"] == 3 and all(not i.startswith("yellow") for i in paths["prompt_ids"])
    assert paths["real data"]["concept"] is not None and "| the item's image embedding itself |" in (tmp_path / "out" / f"{DAY}-image-paths.md").read_text()
    assert PIL.Image.open(tmp_path / "out" / f"{DAY}-image-paths.png").size == (4 * 128, 3 * (128 + 30))  # three items, four tiles each
    # best_first on the same training prompts: the first variant and the ranked first, both judged
    from experiments.best_first import main as best_first

    assert best_first([*arguments[:-6], "--variants", "2", "--prompts", "3", "--steps", "2", "--temperature", "0.5"]) == 0
    comparison = json.loads((tmp_path / "out" / f"{DAY}-best-first.json").read_text())
    assert comparison["temperature"] == 0.5 and "latent temperature 0.5" in (tmp_path / "out" / f"{DAY}-best-first.md").read_text()
    assert comparison["prompt_ids"] == sweep["prompt_ids"] and comparison["variants"] == 2
    assert set(comparison["results"]) == {"first variant", "best first"} and 0 <= comparison["ranked_first_is_not_variant_0"] <= 3
    assert "| best first |" in (tmp_path / "out" / f"{DAY}-best-first.md").read_text()
    assert best_first([*arguments[:-6], "--output", "sound", "--variants", "2", "--prompts", "3", "--steps", "2"]) == 0
    sound = json.loads((tmp_path / "out" / f"{DAY}-best-first-sound.json").read_text())
    assert sound["output"] == "audio" and sound["prompt_ids"] == json.loads((tmp_path / "out" / f"{DAY}-guidance-sound.json").read_text())["prompt_ids"]
    assert all(0 <= r["concept"] <= 1 for r in sound["results"].values()) and "log-mel" in (tmp_path / "out" / f"{DAY}-best-first-sound.md").read_text()
    with pytest.raises(SystemExit):
        best_first([*arguments[:-6], "--variants", "1"])



@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_objective_selection_trains_and_scores_on_training_items_only(tmp_path):
    from experiments.selection import markdown, select_objective, validation_split

    train = synthetic_split(400, seed=0, dims=WIDE)
    fit, validation = validation_split(train)
    fit_ids, validation_ids = {i.id for i in fit.items}, {i.id for i in validation.items}
    assert validation_ids and not fit_ids & validation_ids and fit_ids | validation_ids == {i.id for i in train.items}
    rows = [int(item.id.split("-")[1]) for item in validation.items]  # ids are "<seed>-<row>"
    torch.testing.assert_close(validation.embeddings["image"], train.embeddings["image"][rows])
    assert validation.present["audio"].tolist() == train.present["audio"][rows].tolist()

    budget = Budget(steps=40, batch_size=64, learning_rate=3e-3, beta=0.5)
    candidates = [{"contrastive": 0.5}, {"contrastive": 5.0, "input_noise": 2.0}]
    selection = select_objective(train, tiny_joint(dims=WIDE), None, budget, tmp_path, candidates)
    scores = selection["scores"]
    assert selection["complete"] and set(scores) == {"contrastive0.5", "contrastive5-input_noise2"}
    chosen = scores[selection["chosen"]]
    assert all(len(chosen["missed"]) <= len(s["missed"]) for s in scores.values())
    assert selection["objective"] == candidates[list(scores).index(selection["chosen"])]
    # the candidates carry their terms, the baselines none; every model saw only the fit items
    assert selection["trained"]["contrastive5-input_noise2"]["input_noise"] == 2.0
    assert all(selection["trained"][name]["contrastive"] == 0.0 for name in BASELINES)
    assert selection["tables"]["classification"]["counts"]["text"] == len(validation)
    assert (selection["fit_items"], selection["validation_items"]) == (len(fit), len(validation))
    # each candidate is scored against the baselines alone: one floor per baseline and table it shares columns with
    assert all(s["floors"] > 4 and set(s["averages"]) >= {"classification", "retrieval"} for s in scores.values())
    assert f"**{selection['chosen']}**" in markdown(selection)
    # a second call loads every saved model instead of training again
    again = select_objective(train, tiny_joint(dims=WIDE), None, budget, tmp_path, candidates)
    assert again["trained"] == selection["trained"] and again["scores"] == selection["scores"]
    # another fold fits other items, so it trains its own models
    fold = select_objective(train, tiny_joint(dims=WIDE), None, budget, tmp_path, candidates[:1], validation_seed=2)
    assert fold["validation_seed"] == 2
    assert (tmp_path / "seed2" / "baselines" / "mvae" / "model" / "trained.json").is_file()
    assert (tmp_path / "seed2" / "candidates" / "contrastive0.5" / "model" / "trained.json").is_file()


def test_the_choice_over_folds_counts_every_folds_misses_then_margins():
    from experiments.selection import combine, combined_markdown

    def fold(seed, misses, margins):
        scores = {name: {"missed": ["a floor"] * m, "floors": 34, "margins": {"t": margins[name]}} for name, m in misses.items()}
        return {"scores": scores, "candidates": {name: {"input_noise": i} for i, name in enumerate(misses)}, "validation_seed": seed, "complete": True}

    # a wins fold 1 and b fold 2; over both, c misses fewest; b and d tie on misses, d has the larger margin
    folds = [fold(1, {"a": 1, "b": 5, "c": 2, "d": 4}, {"a": 0.1, "b": 0.0, "c": 0.0, "d": 0.2}),
             fold(2, {"a": 6, "b": 0, "c": 2, "d": 1}, {"a": 0.0, "b": 0.0, "c": 0.0, "d": 0.0})]
    combined = combine(folds)
    assert combined["chosen"] == "c" and combined["objective"] == {"input_noise": 2}
    assert combined["totals"]["a"]["missed"] == [1, 6] and combined["totals"]["a"]["floors"] == 68
    folds[1]["scores"]["c"]["missed"] = ["a floor"] * 4  # c now misses 6; b and d tie at 5: the margin decides
    assert combine(folds)["chosen"] == "d"
    assert "**d**" in combined_markdown(combine(folds)) and combined["validation_seeds"] == [1, 2]


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_the_prior_is_compared_with_the_decoded_mean_on_a_validation_fold(tmp_path):
    from core.training.stages import main as studio_train
    from experiments.prior_choice import main as choose_prior
    from experiments.selection import validation_split

    corpus, run = tmp_path / "corpus", tmp_path / "run"
    split_corpus(corpus)
    common = ["--corpus", str(corpus), "--run", str(run), "--size", "tiny", "--steps", json.dumps({"sound_encoder": 2, "joint": 4, "image_prior": 3})]
    for stage in ("embeddings", "sound_encoder", "joint", "image_bank"):
        studio_train([stage, *common])
    studio_train(["export", *common, "--export-to", str(tmp_path / "studio")])  # a bank, no diffusion prior: the run's sizes are used
    arguments = ["--corpus", str(corpus), "--run", str(run), "--studio", str(tmp_path / "studio"), "--out", str(tmp_path / "out"),
                 "--values", "1,3", "--prompts", "4"]
    assert choose_prior(arguments) == 0
    comparison = json.loads((tmp_path / "out" / f"{DAY}-prior.json").read_text())
    assert [r["variant"] for r in comparison["results"]] == ["decoded mean", "prior, guidance 1", "prior, guidance 3", "image bank"]
    best = max(comparison["results"], key=lambda r: (r["concept"], r["category"], -(r["fidelity"] or float("inf"))))
    assert comparison["chosen"] == best["variant"] and f"**{best['variant']}**" in (tmp_path / "out" / f"{DAY}-prior.md").read_text()
    # the fold's prior never saw the validation items it is judged on
    from core.evaluation.dataset import load_train_split
    from core.training.prior import prior_training_pairs

    train = load_train_split(run, corpus, None)
    fit, validation = validation_split(train)
    assert comparison["fit_items"] == len(fit) and comparison["validation_items"] == len(validation) > 0
    assert 0 < comparison["bank_sizes"]["bank"] <= len(train.rows(("image",)))
    # the fold's bank alone, scored on the embeddings
    assert choose_prior([*arguments, "--variants", "mean,fold-bank", "--score", "embeddings"]) == 0
    alone = json.loads((tmp_path / "out" / f"{DAY}-prior-embeddings.json").read_text())
    assert [r["variant"] for r in alone["results"]] == ["decoded mean", "the fold's image bank"]
    assert alone["bank_sizes"]["fold-bank"] <= len(fit.rows(("image",)))
    assert "knows none of the validation items" in (tmp_path / "out" / f"{DAY}-prior-embeddings.md").read_text()
    assert json.loads((run / "eval" / "prior_fold" / "image_prior" / "trained.json").read_text())["pairs"] == len(
        prior_training_pairs(core_joint(tmp_path / "studio"), fit.embeddings, fit.present, "image")[1])
    # scored on the drawn embeddings, without decoding: the same fold's prior, its own files
    assert choose_prior([*arguments, "--score", "embeddings"]) == 0
    scored = json.loads((tmp_path / "out" / f"{DAY}-prior-embeddings.json").read_text())
    assert scored["scored"] == "embeddings" and [r["variant"] for r in scored["results"]] == [r["variant"] for r in comparison["results"]]
    assert "scored on the embeddings" in (tmp_path / "out" / f"{DAY}-prior-embeddings.md").read_text()
    assert json.loads((tmp_path / "out" / f"{DAY}-prior.json").read_text()) == comparison  # the decoded comparison is kept
    with pytest.raises(SystemExit):
        choose_prior([*arguments[:-4], "--values", "-1"])
    with pytest.raises(SystemExit):
        choose_prior([*arguments, "--score", "pixels"])
    with pytest.raises(SystemExit):
        choose_prior([*arguments, "--variants", "mean,banks"])


def test_the_folds_image_bank_holds_every_training_image_but_the_prompts_own():
    from experiments.prior_choice import prompts_left_out_bank

    train = synthetic_split(40, seed=0)
    validation = train.subset(torch.arange(40) >= 30)
    rows = validation.rows(("image",))[:3]  # three prompts with an image
    train.embeddings["image"][6] = validation.embeddings["image"][rows[0]] * 1.0001  # a near-duplicate of a prompt's image
    bank = prompts_left_out_bank(train, validation, rows, components=DIMS["image"])
    with_images = len(train.rows(("image",)))  # 32: a fifth lack the image
    assert bank.config.size == with_images - 3 - 1  # the prompts' own images and the near-duplicate
    entries = bank.from_components(bank.entries())
    gaps = torch.cdist(validation.embeddings["image"][rows], entries).min(dim=1).values
    others = torch.cdist(train.embeddings["image"][train.rows(("image",))[:2]], entries).min(dim=1).values  # rows 1 and 2
    assert (gaps > 10 * others.max()).all()  # the prompts' own images are not in it; the others are, up to int8



def core_joint(studio_folder):
    from core import load_studio

    return load_studio(studio_folder).pipeline.joint
