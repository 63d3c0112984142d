"""Robustness to noisy inputs: the classification and retrieval tables with one modality's input
embedding corrupted by Gaussian noise at three levels.

The noise on modality ``m`` is ``level * s_m * eps`` with ``s_m`` the per-dimension standard
deviation of ``m``'s training embeddings, so a level means the same for every modality. (The
tables with inputs missing are the classification table, which has a column per subset, and
the retrieval tables, whose queries are one or two modalities.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from .classification import correct
from .dataset import MODALITIES, EvalSplit
from .methods import Method
from .metrics import LinearProbe, majority_accuracy
from .retrieval import retrieval_hits
from .subsets import DIRECTIONS, NAMES, direction_name
from .table import Table

NOISE_LEVELS = (0.5, 1.0, 2.0)


def noise_scales(train: EvalSplit) -> dict[str, torch.Tensor]:
    """Per-dimension standard deviation ``[D_m]`` of each modality's training embeddings."""
    return {m: train.embeddings[m][train.present[m]].std(0) for m in MODALITIES}


class Noise:
    """Adds ``level * scale * eps`` to one modality's embeddings (seeded: the same noise for every method)."""

    def __init__(self, modality: str, level: float, scale: torch.Tensor, seed: int = 0):
        self.modality, self.level, self.scale, self.seed = modality, level, scale, seed

    def __call__(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        noisy = dict(inputs)
        if self.modality in noisy:
            clean = noisy[self.modality]
            generator = torch.Generator().manual_seed(self.seed)
            noisy[self.modality] = clean + self.level * self.scale * torch.randn(clean.shape, generator=generator)
        return noisy


def column_name(modality: str, level: float) -> str:
    return f"{NAMES[modality]} σ={level:g}"


def noisy_classification_table(
    methods: Sequence[Method], probes: Mapping[tuple[str, tuple[str, ...]], LinearProbe],
    train: EvalSplit, test: EvalSplit, levels: Sequence[float] = NOISE_LEVELS, seed: int = 0,
) -> Table:
    """Probe accuracy on held-out items given all their inputs, one of them noisy.

    Each item is classified by the probe of its own set of inputs (fitted on clean training data).
    """
    table = Table("noisy_classification", "Classification with one input noisy (all of an item's inputs given)", [],
                  note="Noise level × the modality's training standard deviation, per dimension; probes fitted on clean data.")
    table.rows = {m.name: {} for m in methods}
    table.references = {"chance (majority)": {}}
    scales = noise_scales(train)
    all_train_labels = train.labels("category", torch.arange(len(train)))
    for modality in MODALITIES:
        rows = test.rows([modality])
        groups = group_by_inputs(test, rows)
        grouped = torch.cat(list(groups.values())) if groups else rows  # the order noisy_outcomes scores them in
        truth = test.labels("category", rows)
        for level in levels:
            column = column_name(modality, level)
            table.columns.append(column)
            table.counts[column] = len(rows)
            table.references["chance (majority)"][column] = majority_accuracy(all_train_labels, truth) if len(rows) else None
            noise = Noise(modality, level, scales[modality], seed)
            for method in methods:
                table.record(method.name, column, noisy_outcomes(method, probes, test, groups, noise), ids=grouped)
    return table


def group_by_inputs(split: EvalSplit, rows: torch.Tensor) -> dict[tuple[str, ...], torch.Tensor]:
    """``rows`` grouped by the set of modalities each item has."""
    groups: dict[tuple[str, ...], list[int]] = {}
    for row in rows.tolist():
        groups.setdefault(tuple(m for m in MODALITIES if split.present[m][row]), []).append(row)
    return {pattern: torch.tensor(members) for pattern, members in groups.items()}


def noisy_outcomes(method: Method, probes, split: EvalSplit, groups, noise: Noise) -> list[bool] | None:
    """Whether each item of every group is classified right, or None if the method cannot take one of the groups' inputs."""
    predicted, truth = [], []
    for pattern, rows in groups.items():
        probe = probes.get((method.name, pattern))
        features = method.encode(noise(split.inputs(rows, pattern))) if probe is not None else None
        if features is None:
            return None
        predicted += probe.predict(features)
        truth += split.labels("category", rows)
    return correct(predicted, truth)


def noisy_retrieval_table(
    methods: Sequence[Method], train: EvalSplit, test: EvalSplit, levels: Sequence[float] = NOISE_LEVELS, seed: int = 0
) -> Table:
    """R@1 of each retrieval direction with the query's input noisy."""
    table = Table("noisy_retrieval", "Retrieval R@1 with the query's input noisy", [],
                  note="Noise level × the query modality's training standard deviation; the gallery stays clean.")
    table.rows = {m.name: {} for m in methods}
    table.references = {"chance": {}}
    scales = noise_scales(train)
    for query, target in DIRECTIONS:
        rows = test.rows([query, target])
        for level in levels:
            column = f"{direction_name(query, target)} σ={level:g}"
            table.columns.append(column)
            table.counts[column] = len(rows)
            table.references["chance"][column] = 1 / len(rows) if len(rows) else None
            noise = Noise(query, level, scales[query], seed)
            for method in methods:
                hits = retrieval_hits(method, test, rows, [query], target, noise, ks=(1,)) if len(rows) > 1 else None
                table.record(method.name, column, None if hits is None else hits[1].tolist(), ids=rows)
    return table
