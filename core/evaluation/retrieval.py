"""Cross-modal retrieval on held-out items: R@1, R@5 and R@10 by cosine of the representations.

The query is an item's representation from one modality (or a subset), the gallery the
representations of every held-out item's other modality; the right answer is the item's own
(or an exact copy of its media, which concept-joined items share).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from .dataset import EvalSplit
from .methods import Method
from .metrics import cosine_scores, hits_at_k
from .subsets import DIRECTIONS, direction_name
from .table import Table

KS = (1, 5, 10)
Perturb = Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]


def retrieval_hits(
    method: Method, split: EvalSplit, rows: torch.Tensor, query: Sequence[str], target: str,
    perturb: Perturb | None = None, ks: Sequence[int] = KS,
) -> dict[int, torch.Tensor] | None:
    """Whether each row's ``target`` media is in the top k found from its ``query`` inputs:
    ``k → [Q]`` booleans, whose mean is recall@k (None if the method cannot)."""
    inputs = split.inputs(rows, query)
    queries = method.encode(perturb(inputs) if perturb else inputs)
    gallery = method.encode(split.inputs(rows, [target]))
    if queries is None or gallery is None:
        return None
    codes = {key: code for code, key in enumerate(dict.fromkeys(split.keys(target, rows)))}
    ids = torch.tensor([codes[key] for key in split.keys(target, rows)])
    positives = ids[:, None] == ids[None, :]  # (Q, N): the item and copies of its media
    return hits_at_k(cosine_scores(queries, gallery), positives, ks)


def fill(table: Table, methods: Sequence[Method], split: EvalSplit, cases, perturb: Perturb | None = None, ks=KS) -> Table:
    """Adds ``R@k`` columns for each ``(column prefix, rows, query, target)`` case, and chance."""
    table.rows = {m.name: {} for m in methods}
    table.references = {"chance": {}}
    for prefix, rows, query, target in cases:
        for k in ks:
            column = f"{prefix} R@{k}"
            table.columns.append(column)
            table.counts[column] = len(rows)
            table.references["chance"][column] = min(1.0, k / len(rows)) if len(rows) else None
        for method in methods:
            hits = retrieval_hits(method, split, rows, query, target, perturb, ks) if len(rows) > 1 else None
            for k in ks:
                table.record(method.name, f"{prefix} R@{k}", None if hits is None else hits[k].tolist(), ids=rows)
    return table


def retrieval_table(methods: Sequence[Method], test: EvalSplit) -> Table:
    """Text↔image, image↔sound and text↔sound on the held-out items that have both."""
    table = Table("retrieval", "Retrieval on held-out items (one modality → another)", [],
                  note="Cosine between single-input representations; the gallery is every held-out item with both modalities.")
    cases = [(direction_name(q, t), test.rows([q, t]), [q], t) for q, t in DIRECTIONS]
    return fill(table, methods, test, cases)


def missing_retrieval_table(methods: Sequence[Method], test: EvalSplit) -> Table:
    """Two inputs → the third, on held-out items with all three (the single-input rows are in ``retrieval``)."""
    table = Table("retrieval_missing", "Retrieval from two inputs to the missing third (held-out triples)", [],
                  note="The query fuses two modalities; compare with the one-input rows of the retrieval table.")
    modalities = ("text", "image", "audio")
    rows = test.rows(modalities)
    cases = []
    for target in modalities:
        query = [m for m in modalities if m != target]
        cases.append((direction_name(query, target), rows, query, target))
    return fill(table, methods, test, cases)


def tuxpaint_table(methods: Sequence[Method], test: EvalSplit) -> Table:
    """Image→caption on held-out Tux Paint pairs: the floor against the label bridge."""
    table = Table("retrieval_tuxpaint", "Image→caption retrieval on held-out Tux Paint pairs", [],
                  note="DATA.md measured the label bridge at R@1 0.175, R@5 0.26 on 538 Tux Paint pairs (a larger gallery).")
    sources = test.labels("source", torch.arange(len(test)))
    rows = torch.tensor([int(i) for i in test.rows(["image"]) if sources[int(i)] == "tuxpaint"], dtype=torch.long)
    return fill(table, methods, test, [("image→caption", rows, ["image"], "text")])
