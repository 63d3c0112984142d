"""Classification: a linear probe on each method's representation predicts the item's category.

For every subset of inputs, a probe is fitted on the training items that have those inputs
and scored on the held-out items that have them (held-out concepts included: their categories
are seen in training). Chance is always answering the most common training category.
"""

from __future__ import annotations

from collections.abc import Sequence

from .dataset import EvalSplit
from .methods import Method
from .metrics import LinearProbe, majority_accuracy
from .subsets import SUBSETS, subset_name
from .table import Table

MIN_TRAIN = 2  # items needed to fit a probe


def classification_table(
    methods: Sequence[Method], train: EvalSplit, test: EvalSplit
) -> tuple[Table, dict[tuple[str, tuple[str, ...]], LinearProbe]]:
    """Probe accuracy for each method and input subset, and the fitted probes (for the noisy tables)."""
    table = Table(
        "classification", "Classification: category accuracy of a linear probe, by inputs given",
        [subset_name(s) for s in SUBSETS],
        note="Logistic regression on the representation (posterior mean; the label bridge's text-space "
        "embedding), fitted on training items with those inputs, scored on held-out items with them.",
    )
    table.rows = {method.name: {} for method in methods}
    table.references = {"chance (majority)": {}}
    probes = {}
    for subset in SUBSETS:
        column = subset_name(subset)
        train_rows, test_rows = train.rows(subset), test.rows(subset)
        table.counts[column] = len(test_rows)
        usable = len(test_rows) > 0 and len(train_rows) >= MIN_TRAIN
        train_labels, test_labels = train.labels("category", train_rows), test.labels("category", test_rows)
        table.references["chance (majority)"][column] = majority_accuracy(train_labels, test_labels) if usable else None
        for method in methods:
            table.rows[method.name][column] = None
            if not usable:
                continue
            train_features = method.encode(train.inputs(train_rows, subset))
            if train_features is None:
                continue
            probe = LinearProbe().fit(train_features, train_labels)
            probes[(method.name, subset)] = probe
            predicted = probe.predict(method.encode(test.inputs(test_rows, subset)))
            table.record(method.name, column, correct(predicted, test_labels), ids=test_rows)
    return table, probes


def correct(predicted: Sequence[str], truth: Sequence[str]) -> list[bool]:
    """Whether each prediction is right; its mean is the accuracy."""
    return [p == t for p, t in zip(predicted, truth, strict=True)]
