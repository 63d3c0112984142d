"""studio-eval: exact metrics, the judge, the baselines on synthetic data, floors and report, and
``studio-eval --quick`` end to end on a tiny run folder."""

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from core.data.manifest import Item
from core.evaluation.baselines import (
    BASELINES,
    Budget,
    folder_name,
    train_baseline,
    train_baselines,
)
from core.evaluation.classification import classification_table
from core.evaluation.coherence import Judge, sound_features
from core.evaluation.dataset import EvalSplit
from core.evaluation.early_fusion import EarlyFusionVAE
from core.evaluation.floors import check_floors, missed, table_floors
from core.evaluation.generation import fidelity, fidelity_to
from core.evaluation.label_bridge import LabelBridge
from core.evaluation.methods import LabelBridgeMethod, LatentModelMethod
from core.evaluation.metrics import (
    LinearProbe,
    frechet_distance,
    frechet_distance_from_statistics,
    hits_at_k,
    majority_accuracy,
    probe_accuracy,
    recall_at_k,
)
from core.evaluation.report import write_report
from core.evaluation.retrieval import retrieval_table
from core.evaluation.robustness import Noise, noisy_classification_table
from core.evaluation.table import Table
from core.fusion.joint import JointLatentModel

DIMS = {"text": 12, "image": 20, "audio": 8}
WIDE = {"text": 96, "image": 160, "audio": 64}


@pytest.fixture
def one_thread():
    """Small models train faster on one thread, and leave the other core to the machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- metrics: exact answers ----------------------------------------------------------------


def planted_scores(ranks, size, seed=0):
    """Scores ``[Q, N]`` where query i's right answer is ``perm[i]`` with exactly ``ranks[i]`` items above it."""
    generator = torch.Generator().manual_seed(seed)
    perm = torch.randperm(size, generator=generator)
    scores = torch.rand(len(ranks), size, generator=generator)
    for query, rank in enumerate(ranks):
        others = scores[query][torch.arange(size) != perm[query]].sort(descending=True).values
        above = others[rank - 1] if rank > 0 else others[0] + 1
        below = others[rank] if rank < size - 1 else others[-1] - 1
        scores[query, perm[query]] = (above + below) / 2
    return scores, perm


def test_recall_at_k_on_a_planted_permutation():
    ranks = list(range(20))  # query i has its right answer at rank i
    scores, perm = planted_scores(ranks, 20)
    assert recall_at_k(scores, perm, ks=(1, 5, 10, 20)) == {1: 0.05, 5: 0.25, 10: 0.5, 20: 1.0}
    # a mask with a second right answer (a copy of the media): the better of the two counts
    mask = torch.nn.functional.one_hot(perm, 20).bool()
    mask[3, scores[3].argmax()] = True
    assert recall_at_k(scores, mask, ks=(1,))[1] == pytest.approx(0.10)


def test_recall_counts_ties_against_the_model():
    assert recall_at_k(torch.zeros(4, 4), torch.arange(4), ks=(1, 4)) == {1: 0.0, 4: 1.0}
    with pytest.raises(ValueError, match="right answer"):
        recall_at_k(torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.bool))


def test_frechet_distance_is_zero_for_identical_gaussians_and_exact_in_one_dimension():
    features = np.random.default_rng(0).normal(size=(200, 6))
    assert frechet_distance(features, features) == pytest.approx(0.0, abs=1e-6)
    # N(1, 2^2) against N(3, 3^2): (1 - 3)^2 + (2 - 3)^2 = 5
    assert frechet_distance_from_statistics(np.array([1.0]), np.array([[4.0]]), np.array([3.0]), np.array([[9.0]])) == pytest.approx(5.0)
    # independent dimensions add up
    mu1, mu2 = np.array([0.0, 1.0]), np.array([1.0, 1.0])
    cov1, cov2 = np.diag([1.0, 4.0]), np.diag([4.0, 1.0])
    assert frechet_distance_from_statistics(mu1, cov1, mu2, cov2) == pytest.approx(1.0 + 1.0 + 1.0)


def test_probe_is_perfect_on_separable_data_and_unseen_labels_count_as_wrong():
    generator = torch.Generator().manual_seed(0)
    centres = torch.tensor([[5.0, 0, 0], [0, 5.0, 0], [0, 0, 5.0]])
    labels = [["cat", "dog", "cow"][i % 3] for i in range(90)]
    features = centres[torch.arange(90) % 3] + 0.3 * torch.randn(90, 3, generator=generator)
    assert probe_accuracy(features[:60], labels[:60], features[60:], labels[60:]) == 1.0
    assert probe_accuracy(features[:60], labels[:60], features[60:63], ["cat", "dog", "owl"]) == pytest.approx(2 / 3)
    assert LinearProbe().fit(features, labels).classes == ["cat", "cow", "dog"]
    assert majority_accuracy(["a", "a", "b"], ["a", "b", "b", "a"]) == 0.5


# --- the judge, the label bridge, noise -----------------------------------------------------


def test_judge_leaves_out_the_prompts_own_media_and_knows_chance():
    features = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    judge = Judge(features, ["cow", "cow", "owl", "frog"], ["farm", "farm", "birds", "pond"], ["a", "b", "c", "d"])
    query = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # the first query's own media ("a") is left out, so its nearest is "b" (a cow); the second's nearest is "d"
    assert judge.score(query, ["cow", "owl"], ["farm", "birds"], ["a", "c"]) == {"concept": 0.5, "category": 0.5}
    assert judge.chance(["cow", "owl"], ["farm", "birds"], ["a", "c"]) == {"concept": pytest.approx(1 / 6), "category": pytest.approx(1 / 6)}
    assert judge.judgeable(["cow", "owl"], ["a", "c"]).tolist() == [True, False]
    assert sound_features(torch.ones(2, 80, 10)).shape == (2, 160)


def test_label_bridge_weights_class_name_embeddings_by_class_probabilities():
    classifier = torch.nn.Linear(2, 3)
    with torch.no_grad():
        classifier.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]))
        classifier.bias.zero_()
    bridge = LabelBridge(classifier, torch.eye(3))
    features = torch.tensor([[math.log(3.0), 0.0]])  # probabilities 3/5, 1/5, 1/5
    expected = torch.nn.functional.normalize(torch.tensor([[3.0, 1.0, 1.0]]), dim=-1)
    torch.testing.assert_close(bridge(features), expected)
    method = LabelBridgeMethod(bridge)
    assert method.encode({"audio": torch.zeros(1, 4)}) is None and method.predict(expected, "image") is None


def test_noise_is_scaled_seeded_and_touches_one_modality():
    inputs = {"text": torch.zeros(1000, 2), "image": torch.ones(1000, 2)}
    noisy = Noise("text", 2.0, torch.tensor([1.0, 10.0]), seed=3)(inputs)
    assert torch.equal(noisy["image"], inputs["image"])
    std = noisy["text"].std(0)
    assert 1.8 < std[0] < 2.2 and 18 < std[1] < 22
    assert torch.equal(noisy["text"], Noise("text", 2.0, torch.tensor([1.0, 10.0]), seed=3)(inputs)["text"])


# --- synthetic multimodal data from a shared latent --------------------------------------------


def synthetic_split(count, seed, categories=4, dims=DIMS):
    """Items of ``categories`` categories; each modality a fixed nonlinear map of a shared latent
    near the category's centre; some items lack the image or the sound."""
    generator = torch.Generator().manual_seed(seed)
    maps = torch.Generator().manual_seed(1234)
    centres = 2.5 * torch.randn(categories, 4, generator=maps)
    label = torch.arange(count) % categories
    shared = centres[label] + 0.5 * torch.randn(count, 4, generator=generator)
    embeddings = {}
    for modality, dim in sorted(dims.items()):
        matrix = torch.randn(4, dim, generator=maps)
        embeddings[modality] = 3 * torch.tanh(shared @ matrix / 2) + 1 + 0.05 * torch.randn(count, dim, generator=generator)
    present = {
        "text": torch.ones(count, dtype=torch.bool),
        "image": torch.arange(count) % 5 != 0,  # a fifth lack the image
        "audio": torch.arange(count) % 3 != 0,  # a third lack the sound
    }
    for modality in ("image", "audio"):
        embeddings[modality][~present[modality]] = 0
    items = [
        Item(id=f"{seed}-{i}", concept=f"thing{i}", category=f"c{int(label[i])}", caption=f"thing {i}", source="synthetic",
             package="test", licence="CC0", origin="test", image=f"i{seed}-{i}.png", sound=f"s{seed}-{i}.wav", split="train")
        for i in range(count)
    ]
    return EvalSplit(items=items, embeddings=embeddings, present=present, sound_features=torch.zeros(count, 160))


def tiny_joint(fusion="poe", dims=DIMS):
    torch.manual_seed(0)
    return JointLatentModel(modality_dims=dims, latent_dim=6, hidden_dim=32, fusion=fusion).eval()


class PeerMethod:
    """Predicts the real embedding of another item of the prompt's concept (``same``) or of another concept."""

    def __init__(self, split, same: bool):
        self.split, self.same, self.name = split, same, "same concept" if same else "other concept"

    def encode(self, embeddings):
        modality, values = next(iter(embeddings.items()))
        return (values[:, None] == self.split.embeddings[modality][None]).all(-1).float().argmax(1)  # each prompt's row

    def predict(self, rows, target):
        concepts = self.split.labels("concept", range(len(self.split)))
        present = self.split.present[target].tolist()
        peers = [next(j for j, c in enumerate(concepts) if j != i and present[j] and (c == concepts[i]) == self.same) for i in rows.tolist()]
        return self.split.embeddings[target][peers]


def recorded_with_ids(table: Table) -> bool:
    """Whether the table kept replicates, each with the ids of the items it was scored on."""
    kept = [r for columns in table.replicates.values() for r in columns.values()]
    return bool(kept) and all(r.ids is not None for r in kept)


def test_predicted_coherence_scores_the_predicted_embedding_against_other_items():
    from dataclasses import replace

    from core.evaluation.generation import predicted_coherence_table

    train, test = synthetic_split(80, seed=0), synthetic_split(80, seed=1)
    test.items = [replace(item, concept=f"k{i % 20}") for i, item in enumerate(test.items)]  # four items a concept
    bridge = LabelBridgeMethod(LabelBridge(torch.nn.Linear(DIMS["image"], 5), torch.randn(5, DIMS["text"])))
    table = predicted_coherence_table([PeerMethod(test, True), PeerMethod(test, False), bridge], train, test)
    assert table.columns == ["text→image", "image→sound", "image→caption", "text+image→image"]
    assert all(table.value("same concept", c) == 1.0 and table.value("other concept", c) == 0.0 for c in table.columns)
    assert table.value("label bridge", "text→image") is None and table.value("label bridge", "image→caption") is not None
    # every prompt with the inputs whose concept has another item with the output (k0, k5, k10, k15 have no image)
    assert table.counts["text→image"] == 64
    sound_peers = [i for i in range(80) if i % 5 and any(j % 3 for j in range(i % 20, 80, 20) if j != i)]
    assert table.counts["image→sound"] == len(sound_peers)
    assert 0 < table.references["chance"]["text→image"] < 0.1 and table.references["real data"]["text→image"] is not None
    assert recorded_with_ids(table)


def test_early_fusion_shapes_missing_inputs_and_round_trip(tmp_path):
    torch.manual_seed(0)
    model = EarlyFusionVAE(modality_dims=DIMS, latent_dim=6, hidden_dim=32).eval()
    split = synthetic_split(10, seed=0)
    with torch.no_grad():
        posterior = model(split.embeddings)
        assert posterior.mu.shape == posterior.logvar.shape == (10, 6)
        without = model({"text": split.embeddings["text"], "image": split.embeddings["image"]})
        masked = model(split.embeddings, weights={"audio": 0.0})
        torch.testing.assert_close(without.mu, masked.mu)  # leaving a modality out = weight 0
        model.save_pretrained(tmp_path)
        loaded = EarlyFusionVAE.from_pretrained(tmp_path).eval()
        torch.testing.assert_close(loaded(split.embeddings).mu, posterior.mu)
        assert model.decode(posterior.mu, "image").shape == (10, 20)


def test_a_latent_method_draws_at_the_outputs_temperature_as_the_studio_does():
    from core.fusion.joint import JointLatentModel

    torch.manual_seed(0)
    model = EarlyFusionVAE(modality_dims=DIMS, latent_dim=6, hidden_dim=32).eval()
    inputs = {"text": synthetic_split(5, seed=0).embeddings["text"]}
    method = LatentModelMethod("vae", model, seed=3, latent_temperature={"image": 0.5, "caption": 1.0})
    mean = method.encode(inputs)
    with torch.no_grad():
        posterior = model(inputs)
    torch.testing.assert_close(method.draw(inputs, "image"), JointLatentModel.draw(posterior.mu, posterior.logvar, 0.5, [3, 4, 5, 6, 7]))
    torch.testing.assert_close(method.draw(inputs, "text"), JointLatentModel.draw(posterior.mu, posterior.logvar, 1.0, [3, 4, 5, 6, 7]))
    assert torch.equal(method.draw(inputs, "audio"), mean) and not torch.allclose(method.draw(inputs, "image"), mean)


@pytest.mark.slow
def test_baselines_train_and_beat_chance_on_a_shared_latent(tmp_path, one_thread):
    # embeddings of realistic width: the objective's likelihood is summed over dimensions, and
    # on a dozen dimensions it carries too little weight against the KL to train in 120 steps
    train, test = synthetic_split(600, seed=0, dims=WIDE), synthetic_split(120, seed=1, dims=WIDE)
    budget = Budget(steps=120, batch_size=64, learning_rate=3e-3)
    trained = train_baselines(tiny_joint(dims=WIDE), train, tmp_path, budget)
    assert set(trained) == set(BASELINES)
    assert all(info["finished"] and info["steps"] == 120 for _, info in trained.values())
    methods = [LatentModelMethod(name, model) for name, (model, _) in trained.items()]
    classification, _ = classification_table(methods, train, test)
    retrieval = retrieval_table(methods, test)
    for method in methods:
        for column in ("text", "image", "sound", "text+image+sound"):
            assert classification.value(method.name, column) > classification.references["chance (majority)"][column] + 0.3, (method.name, column)
        for column in ("text→image R@1", "image→sound R@1", "sound→text R@1"):
            assert retrieval.value(method.name, column) > 10 * retrieval.references["chance"][column], (method.name, column)
    assert recorded_with_ids(classification) and recorded_with_ids(retrieval)
    # a second call loads the saved baseline instead of training again
    again, info = train_baseline("MVAE", tiny_joint(dims=WIDE), train, tmp_path, budget)
    assert info["seconds"] == trained["MVAE"][1]["seconds"]
    torch.testing.assert_close(again(test.embeddings).mu, trained["MVAE"][0](test.embeddings).mu)


def test_noisy_classification_falls_with_noise():
    train, test = synthetic_split(300, seed=0), synthetic_split(90, seed=1)

    class Concatenation(LatentModelMethod):  # an untrained method: the embeddings themselves
        def __init__(self):
            self.name, self.description = "concat", ""

        def encode(self, embeddings):
            return torch.cat([embeddings[m] for m in sorted(embeddings)], dim=-1)

    methods = [Concatenation()]
    classification, probes = classification_table(methods, train, test)
    noisy = noisy_classification_table(methods, probes, train, test, levels=(0.5, 8.0))
    assert noisy.value("concat", "text σ=0.5") > noisy.value("concat", "text σ=8")
    assert noisy.counts["sound σ=0.5"] == int(test.present["audio"].sum())
    assert recorded_with_ids(classification) and recorded_with_ids(noisy)  # the floors pair methods by them


# --- floors and report ---------------------------------------------------------------------------


def report_tables(proposed_classification=0.8):
    classification = Table("classification", "Classification", ["text", "image"],
                           rows={"proposed": {"text": proposed_classification, "image": 0.6}, "MVAE": {"text": 0.7, "image": 0.65},
                                 "label bridge": {"text": 0.5, "image": None}},
                           references={"chance (majority)": {"text": 0.1, "image": 0.1}}, counts={"text": 10, "image": 8})
    tuxpaint = Table("retrieval_tuxpaint", "Tux Paint", ["image→caption R@1"],
                     rows={"proposed": {"image→caption R@1": 0.4}, "label bridge": {"image→caption R@1": 0.25}},
                     references={"chance": {"image→caption R@1": 0.01}})
    coherence = Table("coherence", "Coherence", ["text→image", "image→sound", "image→caption"],
                      rows={"proposed": {"text→image": 0.2, "image→sound": 0.05, "image→caption": 0.3}},
                      references={"chance": {"text→image": 0.01, "image→sound": 0.02, "image→caption": 0.01}})
    fidelity = Table("fidelity", "Fidelity", ["text→image"], higher_is_better=False,
                     rows={"proposed": {"text→image": 10.0}, "MVAE": {"text→image": 12.0}})
    noisy = Table("noisy_classification", "Noisy", ["text σ=0.5", "text σ=1"],
                  rows={"proposed": {"text σ=0.5": 0.7, "text σ=1": 0.5}, "MVAE": {"text σ=0.5": 0.6, "text σ=1": 0.4}})
    return {t.name: t for t in (classification, tuxpaint, coherence, fidelity, noisy)}


def test_floors_flag_each_missed_floor():
    floors = {f.name: f for f in check_floors(report_tables())}
    # classification: proposed (0.8 + 0.6) / 2 = 0.7 ≥ MVAE 0.675; against the bridge only the text column counts
    assert floors["classification: proposed ≥ MVAE (average)"].passed
    assert floors["classification: proposed ≥ label bridge (average)"].measured == pytest.approx(0.8)
    assert floors["fidelity: proposed ≤ MVAE (average)"].passed
    # 0.4 < 2 × 0.25, and image→sound 0.05 < 5 × 0.02
    assert not floors["Tux Paint image→caption R@1 ≥ 2× label bridge"].passed
    assert floors["Tux Paint image→caption R@1 ≥ 2× label bridge"].required == pytest.approx(0.5)
    assert not floors["image→sound coherence ≥ 5× chance"].passed
    assert floors["text→image coherence ≥ 5× chance"].passed
    worse = {f.name: f for f in check_floors(report_tables(proposed_classification=0.6))}
    assert not worse["classification: proposed ≥ MVAE (average)"].passed
    # a table left out (no generation) is a missed floor, not a silent pass
    without = {name: t for name, t in report_tables().items() if name != "coherence"}
    assert len([f for f in missed(check_floors(without)) if "coherence" in f.name]) == 3



def test_hits_at_k_are_the_items_behind_recall():
    scores, perm = planted_scores(list(range(20)), 20)
    hits = hits_at_k(scores, perm, ks=(1, 5))
    assert hits[1].tolist() == [True] + [False] * 19 and int(hits[5].sum()) == 5
    assert recall_at_k(scores, perm, ks=(5,))[5] == float(hits[5].double().mean())


def test_a_table_keeps_bootstrap_replicates_in_memory_only():
    table = Table("retrieval", "R", ["a→b R@1", "b→a R@1"])
    table.record("proposed", "a→b R@1", [True, False, False, True])
    table.record("proposed", "b→a R@1", [])  # no items: no value, no replicates
    assert table.value("proposed", "a→b R@1") == 0.5 and table.value("proposed", "b→a R@1") is None
    items, ids, replicates = table.replicates["proposed"]["a→b R@1"]
    assert items == 4 and ids is None and list(table.replicates["proposed"]) == ["a→b R@1"]
    assert set(np.unique(replicates)) <= {0, 0.25, 0.5, 0.75, 1} and abs(replicates.mean() - 0.5) < 0.05
    saved = table.to_dict()
    assert "replicates" not in saved and Table.from_dict(json.loads(json.dumps(saved))).rows == table.rows


def paired_table(ours: list[list[float]], theirs: list[list[float]]) -> Table:
    table = Table("retrieval_missing", "Missing", [f"c{i}" for i in range(len(ours))])
    for method, columns in (("proposed", ours), ("MVAE", theirs)):
        for column, outcomes in zip(table.columns, columns, strict=True):
            table.record(method, column, outcomes)
    return table


def test_floor_intervals_tell_a_miss_within_noise_from_a_clear_one():
    # 33 items, four lost and two won: a miss of 2/33 whose interval holds zero
    ours, theirs = [1.0] * 18 + [0.0] * 4 + [1.0] * 2 + [0.0] * 9, [1.0] * 22 + [0.0] * 11
    near = table_floors(paired_table([ours], [theirs]), "proposed")[0]
    assert not near.passed and near.interval[0] < -2 / 33 < 0 < near.interval[1]
    assert "within the noise" in near.detail
    # 1,000 items, 200 of them lost, in two columns: a clear miss, the interval all below zero
    clear = table_floors(paired_table([[1.0] * 300 + [0.0] * 700] * 2, [[1.0] * 500 + [0.0] * 500] * 2), "proposed")[0]
    assert not clear.passed and clear.interval[1] < 0 and "within the noise" not in clear.detail
    assert clear.interval[0] < -0.2 < clear.interval[1]
    # the pairing: 50 against 56 hits on 100 items, theirs holding all of ours, is a clear miss
    # (an unpaired bootstrap would put zero inside, at about -0.20 to +0.08)
    paired = table_floors(paired_table([[1.0] * 50 + [0.0] * 50], [[1.0] * 56 + [0.0] * 44]), "proposed")[0]
    assert not paired.passed and paired.interval[0] < -0.06 < paired.interval[1] < 0
    # the same outcomes: a difference of exactly zero, a met floor
    same = table_floors(paired_table([ours], [ours]), "proposed")[0]
    assert same.passed and same.interval == (0.0, 0.0)
    # values set without their items have no interval
    assert all(f.interval is None for f in check_floors(report_tables()))


def test_floor_intervals_pair_only_methods_scored_on_the_same_items():
    ours, theirs = [1.0] * 50 + [0.0] * 50, [1.0] * 56 + [0.0] * 44
    rows = torch.arange(100)

    def interval(their_ids):
        table = Table("retrieval_missing", "Missing", ["c"])
        table.record("proposed", "c", ours, ids=rows)
        table.record("MVAE", "c", theirs, ids=their_ids)
        return table_floors(table, "proposed")[0].interval

    assert interval(rows.clone()) is not None
    # the same count of items but other items, or the same items in another order, or items
    # not named: not paired, no interval
    assert interval(rows + 100) is None and interval(rows.flip(0)) is None and interval(None) is None
    with pytest.raises(ValueError, match="99 ids for 100 items"):
        Table("t", "T", ["c"]).record("proposed", "c", ours, ids=rows[:99])
    # a method that could not score the column has no value, whatever ids it was given
    table = Table("t", "T", ["c"])
    table.record("proposed", "c", None, ids=rows)
    assert table.value("proposed", "c") is None and "proposed" not in table.replicates


def test_a_distance_floor_resamples_the_generated_media():
    generator = torch.Generator().manual_seed(0)
    real = torch.randn(400, 6, generator=generator)
    distance = fidelity_to(real, components=4)
    table = Table("fidelity", "Fidelity", ["text→image"], higher_is_better=False)
    ours = torch.randn(64, 6, generator=generator) + 0.1
    table.record_statistic("proposed", "text→image", ours, distance)
    table.record_statistic("MVAE", "text→image", torch.randn(64, 6, generator=generator), distance)
    table.record_statistic("MMVAE", "text→image", torch.randn(64, 6, generator=generator) + 3.0, distance)
    table.record_statistic("MoPoE", "text→image", None, distance)  # cannot generate: no value, no floor
    assert table.value("proposed", "text→image") == pytest.approx(fidelity(ours, real, components=4))
    assert table.value("MoPoE", "text→image") is None and "MoPoE" not in table.replicates
    floors = {f.name: f for f in table_floors(table, "proposed")}
    assert set(floors) == {"fidelity: proposed ≤ MVAE (average)", "fidelity: proposed ≤ MMVAE (average)"}
    near, far = floors["fidelity: proposed ≤ MVAE (average)"], floors["fidelity: proposed ≤ MMVAE (average)"]
    # each interval holds its observed difference (resampling inflates a Fréchet distance; the
    # replicates are centred on the value); a shift of 0.1 against none, on 64 samples, is
    # within the noise, one of 3 is clearly worse
    for floor in (near, far):
        assert floor.interval[0] <= floor.measured - floor.required <= floor.interval[1]
    assert near.interval[0] < 0 < near.interval[1]
    assert far.passed and far.interval[1] < 0

def test_report_files_say_which_floors_are_missed(tmp_path):
    from PIL import Image

    tables = report_tables()
    floors = check_floors(tables)
    samples = {"real": [Image.new("RGB", (64, 64), "red")], "proposed": [Image.new("RGB", (64, 64), "blue")]}
    files = write_report(tmp_path, {"studio": "tiny", "quick": True, "notes": ["weights are untrained"]},
                         {"proposed": "ours"}, list(tables.values()), floors, samples, ["a red circle"])
    for name in ("report.json", "report.md", "averages.png", "noise.png", "samples.png"):
        assert (tmp_path / name).is_file() and (tmp_path / name).stat().st_size > 0, name
    report = json.loads(files["json"].read_text())
    assert set(report["tables"]) == set(tables) and len(report["floors"]) == len(floors)
    markdown = files["md"].read_text()
    assert "2 of" in markdown and "floors are MISSED" in markdown
    assert "**MISSED**" in markdown and "image→sound coherence" in markdown and "> weights are untrained" in markdown
    assert Table.from_dict(report["tables"]["classification"]).average("proposed") == pytest.approx(0.7)


# --- studio-eval --quick end to end ----------------------------------------------------------------

COLOURS = {"red": (220, 30, 30), "green": (30, 180, 60), "blue": (40, 60, 220), "yellow": (230, 200, 20)}
PITCHES = {"red": 330.0, "green": 440.0, "blue": 660.0, "yellow": 880.0}


def split_corpus(folder):
    """Per colour: image, sound and image+sound items in train and held out; yellow is a held-out concept."""
    import soundfile
    from PIL import Image, ImageDraw

    from core.data.manifest import write_manifest

    (folder / "images").mkdir(parents=True)
    (folder / "sounds").mkdir()
    items = []
    for colour, rgb in COLOURS.items():
        for copy, split in enumerate(("train", "heldout_item")):
            if colour == "yellow":
                split = "heldout_concept"
            for kind in ("image", "sound", "both"):
                key = f"{colour}-{kind}-{copy}"
                image = sound = None
                if kind in ("image", "both"):
                    picture = Image.new("RGB", (64, 64), "white")
                    ImageDraw.Draw(picture).ellipse((8 + 4 * copy, 8, 52, 52 - 4 * copy), fill=rgb)
                    image = f"images/{key}.png"
                    picture.save(folder / image)
                if kind in ("sound", "both"):
                    t = np.arange(22050) / 22050
                    sound = f"sounds/{key}.wav"
                    wave = 0.4 * np.sin(2 * np.pi * PITCHES[colour] * (1 + 0.01 * copy) * t)
                    soundfile.write(folder / sound, wave.astype(np.float32), 22050)
                items.append(Item(id=key, concept=colour, category="warm" if colour in ("red", "yellow") else "cool",
                                  caption=f"a {colour} circle", source="tuxpaint" if kind == "image" else "test",
                                  package="test", licence="CC0", origin=key, image=image, sound=sound, split=split))
    write_manifest(items, folder)


@pytest.mark.slow
def test_studio_eval_quick_runs_end_to_end_on_a_tiny_run(tmp_path, one_thread):
    from core.evaluation.cli import main as studio_eval
    from core.training.stages import main as studio_train

    corpus, run = tmp_path / "corpus", tmp_path / "run"
    split_corpus(corpus)
    steps = json.dumps({"sound_encoder": 2, "joint": 4, "image_prior": 3})
    common = ["--corpus", str(corpus), "--run", str(run), "--size", "tiny", "--steps", steps]
    for stage in ("embeddings", "sound_encoder", "joint", "image_prior"):
        studio_train([stage, *common])
    studio_train(["export", *common, "--export-to", str(tmp_path / "studio")])

    out, work = tmp_path / "report", tmp_path / "work"
    arguments = ["--quick", "--corpus", str(corpus), "--run", str(run), "--studio", str(tmp_path / "studio"),
                 "--out", str(out), "--work", str(work), "--baseline-steps", "4", "--prompts", "3", "--steps", "2"]
    assert studio_eval(arguments) == 0
    report = json.loads((out / "report.json").read_text())
    expected = {"classification", "retrieval", "retrieval_tuxpaint", "retrieval_missing", "noisy_classification",
                "noisy_retrieval", "coherence", "coherence_category", "fidelity"}
    assert set(report["tables"]) == expected
    assert set(report["tables"]["classification"]["rows"]) == {"proposed", *BASELINES, "label bridge"}
    assert report["meta"]["heldout_items"] == 15 and report["meta"]["quick"]
    assert report["tables"]["retrieval_tuxpaint"]["counts"]["image→caption R@1"] == 5
    coherence = Table.from_dict(report["tables"]["coherence"])
    assert coherence.counts["text→image"] == 3
    assert all(coherence.value("proposed", task) is not None for task in coherence.columns)
    assert coherence.value("label bridge", "image→caption") is not None and coherence.value("label bridge", "text→image") is None
    assert coherence.references["real data"]["text→image"] is not None
    assert any("untrained" in note for note in report["meta"]["notes"])  # its decoders never trained
    # every comparison of averages carries its bootstrap interval, the distances' too
    averages = [f for f in report["floors"] if "(average)" in f["name"]]
    assert averages and all(f["interval"] is not None for f in averages)
    assert all(f["interval"][0] <= f["measured"] - f["required"] <= f["interval"][1] for f in averages)
    assert any(f["name"] == "fidelity: proposed ≤ MVAE (average)" for f in averages)
    assert "difference, 95% interval" in (out / "report.md").read_text()
    for name in ("report.md", "averages.png", "noise.png", "samples.png"):
        assert (out / name).is_file(), name
    assert (work / "heldout.safetensors").is_file() and (work / "baselines" / "mopoe" / "model" / "config.json").is_file()
    # the studio draws images through its prior, so every latent baseline gets one of the same sizes and budget
    for name in BASELINES:
        assert json.loads((work / "baselines" / folder_name(name) / "image_prior" / "trained.json").read_text())["steps"] == 3
        assert "diffusion prior" in report["methods"][name]
    assert "diffusion prior" in report["methods"]["proposed"] and "diffusion prior" not in report["methods"]["label bridge"]
    # floors can be the exit status
    assert studio_eval([*arguments, "--fail-on-floors", "--skip-generation"]) == 1  # generation floors unmeasured


# --- the shipped weights against the floors (needs the corpus and the run's cache) ---------------------


def shipped_evaluation_inputs():
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fusion-studio"
    corpus = Path(os.environ.get("FUSION_STUDIO_CORPUS", root / "corpus"))
    run = Path(os.environ.get("FUSION_STUDIO_RUN", root / "runs" / "embedded"))
    return corpus, run


@pytest.mark.slow
def test_shipped_weights_meet_the_floors_on_the_quick_subset():
    corpus, run = shipped_evaluation_inputs()
    index = json.loads((Path(__file__).resolve().parent.parent / "assets/embedded/model_index.json").read_text())
    if index.get("weights_version", "untrained") == "untrained":
        pytest.skip("the embedded preset ships no trained weights yet")
    if not (corpus / "manifest.jsonl").is_file() or not (run / "cache" / "embeddings.safetensors").is_file():
        pytest.skip("needs the corpus and the studio-train run's cache (FUSION_STUDIO_CORPUS, FUSION_STUDIO_RUN)")
    from core.evaluation.cli import EvalOptions, evaluate

    options = EvalOptions(corpus=corpus, run=run, quick=True, out=Path(os.environ.get("TMPDIR", "/tmp")) / "studio-eval-quick")
    result = evaluate(options)
    shipped = json.loads((Path(__file__).resolve().parent.parent / "assets/embedded/eval/report.json").read_text())
    full = {floor["name"]: floor for floor in shipped["floors"]}
    known_misses = {name for name, floor in full.items() if not floor["passed"]}
    # A coherence rate the full run measured so low that the quick prompts expect under two
    # hits at it cannot be checked on them (the full report checks it on 128 prompts).
    prompts = options.resolved().prompts
    unresolved = {name for name, floor in full.items() if "coherence ≥" in name and (floor["measured"] or 0) * prompts < 2}
    # Likewise a coherence-table average the full run met by less than two quick prompts move it
    # (2 / (prompts x the table's columns)): the quick subset cannot tell such methods apart.
    columns = {name: len(table["columns"]) for name, table in shipped["tables"].items()}
    level = {name for name, floor in full.items() if name.startswith("coherence") and floor["passed"] and "(average)" in name
             and abs(floor["measured"] - floor["required"]) < 2 / (prompts * columns[name.split(":")[0]])}
    # Every other floor the full evaluation met must hold on the quick subset too, within the
    # noise of its smaller sample: within 10%, or a miss whose own bootstrap interval holds zero
    # (eight prompts on one column cannot tell two methods apart; an untrained or broken model
    # misses by more than that interval); the floors the shipped report misses are listed there.
    regressed = [f for f in missed(result["floors"]) if f.name not in known_misses | unresolved | level and not within(f, 0.10)
                 and not f.within_noise]
    assert not regressed, "\n".join(f"{f.name}: {f.detail}" for f in regressed)
    assert len(unresolved) <= 3 and len(result["floors"]) == len(full)


def test_a_quick_miss_within_its_own_interval_is_noise_and_one_below_it_is_not():
    from core.evaluation.floors import Floor

    assert Floor("a", 0.375, 0.5, False, "", (-0.625, 0.375)).within_noise
    assert not Floor("b", 0.1, 0.5, False, "", (-0.5, -0.2)).within_noise
    assert not Floor("c", 0.1, 0.5, False, "", None).within_noise  # e.g. coherence ≥ 5x chance: no interval, so it counts


def within(floor, tolerance: float) -> bool:
    """Whether a missed floor's measure is within ``tolerance`` of what it requires."""
    if floor.measured is None or floor.required is None:
        return False
    if "≤" in floor.name:  # a distance: lower is better
        return floor.measured <= floor.required * (1 + tolerance)
    return floor.measured >= floor.required * (1 - tolerance)


def test_the_baselines_share_the_beta_the_run_trained_its_joint_model_with(tmp_path):
    import json

    from core.training.stages import TrainPlan

    assert Budget.of_run(tmp_path).beta == TrainPlan().joint_objective["beta"]  # no plan saved: the defaults
    (tmp_path / "plan.json").write_text(json.dumps({"steps": {"joint": 300}, "joint_objective": {"beta": 0.25, "contrastive": 1.0}}))
    budget = Budget.of_run(tmp_path)
    assert (budget.steps, budget.beta) == (300, 0.25)
    (tmp_path / "plan.json").write_text(json.dumps({"steps": {"joint": 300}}))  # a run from before the field
    assert Budget.of_run(tmp_path).beta == 1.0


def test_a_baseline_of_another_beta_is_trained_again_from_scratch(tmp_path, one_thread):
    train = synthetic_split(64, seed=0)
    first, info = train_baseline("MVAE", tiny_joint(), train, tmp_path, Budget(steps=4, batch_size=32, beta=1.0))
    assert info["beta"] == 1.0 and info["steps"] == 4
    loaded, again = train_baseline("MVAE", tiny_joint(), train, tmp_path, Budget(steps=4, batch_size=32, beta=1.0))
    assert again["seconds"] == info["seconds"]  # the same budget: loaded, not trained
    other, changed = train_baseline("MVAE", tiny_joint(), train, tmp_path, Budget(steps=4, batch_size=32, beta=0.5))
    assert changed["beta"] == 0.5 and changed["steps"] == 4 and changed["finished"]
    assert not torch.equal(next(other.parameters()), next(first.parameters()))  # trained anew, not resumed at step 4


def test_a_saved_baseline_from_before_the_objective_fields_still_matches_its_budget():
    budget = Budget(steps=100, beta=0.5)
    old = {"steps": 100, "batch_size": 256, "learning_rate": 1e-3, "seed": 0, "beta": 0.5}  # no contrastive, no input noise
    assert budget.matches(old)
    assert not Budget(steps=100, beta=0.5, input_noise=2.0).matches(old)
    assert not Budget(steps=101, beta=0.5).matches(old)
