"""The floors the shipped weights must meet on held-out data (issue 4, item 5).

1. The proposed model at least matches every baseline on the average of each table (over the
   columns both have values in; for distances, at most).
2. Image→caption R@1 on held-out Tux Paint pairs is at least twice the label bridge's.
3. Generation coherence (concept level) is at least 5x chance for text→image, image→sound and
   image→caption.

A floor that cannot be measured (no items, or a table left out) counts as missed.

Each comparison of averages carries a 95% interval of the difference (proposed minus the other
method), from a paired bootstrap over the held-out items of every column: the same resampled
items for both methods. Nothing is retrained or generated again; for the Fréchet distances the
generated media are resampled against the fixed real reference. A floor missed with an
interval that holds zero is missed within the noise of the held-out set: more items would be
needed to tell the two apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from .table import Table

PROPOSED = "proposed"
LABEL_BRIDGE = "label bridge"
BRIDGE_FACTOR = 2.0
CHANCE_FACTOR = 5.0
COHERENCE_TASKS = ("text→image", "image→sound", "image→caption")


@dataclass
class Floor:
    """One floor: what was measured against what was required, and whether it was met."""

    name: str
    measured: float | None
    required: float | None
    passed: bool
    detail: str
    interval: tuple[float, float] | None = None  # 95% interval of measured − required (see difference_interval)

    @property
    def within_noise(self) -> bool:
        """Whether its 95% interval of the difference holds zero: the items cannot tell the two
        methods apart (False without an interval)."""
        return self.interval is not None and self.interval[0] <= 0 <= self.interval[1]

    def to_dict(self) -> dict:
        return asdict(self)


def check_floors(tables: Mapping[str, Table], proposed: str = PROPOSED) -> list[Floor]:
    """Every floor of the report's tables, met or not, in the order above."""
    floors = []
    for table in tables.values():
        floors += table_floors(table, proposed)
    floors.append(bridge_floor(tables.get("retrieval_tuxpaint"), proposed))
    floors += coherence_floors(tables.get("coherence"), proposed)
    return floors


def table_floors(table: Table, proposed: str) -> list[Floor]:
    """The proposed model against each other method on the average of ``table``."""
    if proposed not in table.rows:
        return [Floor(f"{table.name}: proposed ≥ baselines", None, None, False, "the proposed model has no row here")]
    floors = []
    for method in table.rows:
        if method == proposed:
            continue
        columns = table.shared_columns(proposed, method)
        if not columns:
            continue  # nothing to compare (the label bridge cannot take sound)
        ours, theirs = table.average(proposed, columns), table.average(method, columns)
        better = ours >= theirs if table.higher_is_better else ours <= theirs
        relation = "≥" if table.higher_is_better else "≤"
        floor = Floor(f"{table.name}: proposed {relation} {method} (average)", ours, theirs, bool(better), "",
                      difference_interval(table, proposed, method, columns))
        noise = ""
        if floor.interval is not None:
            noise = f"; 95% interval of the difference {floor.interval[0]:+.3f} to {floor.interval[1]:+.3f}"
            if not better and floor.within_noise:
                noise += ", so within the noise of the held-out items"
        floor.detail = f"average over {len(columns)} of {len(table.columns)} columns: proposed {ours:.3f}, {method} {theirs:.3f}{noise}"
        floors.append(floor)
    return floors


def difference_interval(table: Table, proposed: str, other: str, columns: Sequence[str]) -> tuple[float, float] | None:
    """95% interval of ``proposed``'s average minus ``other``'s over ``columns``, from the paired
    bootstrap replicates of each column. None where a value was set without its items (no
    replicates) or the two methods were scored on different items in a column (they cannot be
    paired)."""
    mine, theirs = table.replicates.get(proposed, {}), table.replicates.get(other, {})
    if not columns or any(c not in mine or c not in theirs or not mine[c].pairs_with(theirs[c]) for c in columns):
        return None
    differences = np.mean([mine[c].draws - theirs[c].draws for c in columns], axis=0)
    differences = differences[np.isfinite(differences)]  # a resample a distance could not be computed on
    if not len(differences):
        return None
    low, high = np.quantile(differences, [0.025, 0.975])
    return float(low), float(high)


def bridge_floor(table: Table | None, proposed: str) -> Floor:
    """Image→caption R@1 on held-out Tux Paint pairs ≥ twice the label bridge's."""
    name = f"Tux Paint image→caption R@1 ≥ {BRIDGE_FACTOR:g}× label bridge"
    column = "image→caption R@1"
    ours = table.value(proposed, column) if table else None
    bridge = table.value(LABEL_BRIDGE, column) if table else None
    if ours is None or bridge is None:
        return Floor(name, ours, None, False, "not measured: no held-out Tux Paint pairs, or a method is missing")
    required = BRIDGE_FACTOR * bridge
    return Floor(name, ours, required, ours >= required,
                 f"proposed {ours:.3f}, label bridge {bridge:.3f} on {table.counts.get(column, 0)} pairs")


def coherence_floors(table: Table | None, proposed: str) -> list[Floor]:
    """Coherence ≥ 5x chance for each generation task of the floor."""
    floors = []
    for task in COHERENCE_TASKS:
        name = f"{task} coherence ≥ {CHANCE_FACTOR:g}× chance"
        ours = table.value(proposed, task) if table else None
        chance = table.references.get("chance", {}).get(task) if table else None
        if ours is None or chance is None:
            floors.append(Floor(name, ours, None, False, "not measured: generation was skipped or had no prompts"))
            continue
        required = CHANCE_FACTOR * chance
        floors.append(Floor(name, ours, required, ours >= required,
                            f"proposed {ours:.3f}, chance {chance:.4f}, on {table.counts.get(task, 0)} prompts"))
    return floors


def missed(floors: list[Floor]) -> list[Floor]:
    return [floor for floor in floors if not floor.passed]
