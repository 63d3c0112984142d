"""One table of the report: a value per method and column, with reference rows and item counts."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field


@dataclass
class Table:
    """Scores of each method (rows) in each setting (columns).

    Attributes:
        name: the key in ``report.json``.
        title: the heading in ``report.md``.
        columns: the settings, in order.
        rows: method → column → value; ``None`` where the method cannot do that setting
            (the label bridge has no sound) or there were no items to score.
        higher_is_better: False for distances.
        references: rows that are not methods, e.g. ``chance`` and ``real data``.
        counts: column → how many items (queries, prompts) each value rests on.
        note: how the numbers were made, in a sentence or two.
        outcomes: method → column → each item's score (a hit is 1, a miss 0), in the same item
            order for every method, where a value is a mean over items; the floors resample
            them for their intervals. Kept in memory only, not in ``report.json``.
    """

    name: str
    title: str
    columns: list[str]
    rows: dict[str, dict[str, float | None]] = field(default_factory=dict)
    higher_is_better: bool = True
    references: dict[str, dict[str, float | None]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    note: str = ""
    outcomes: dict[str, dict[str, list[float]]] = field(default_factory=dict, repr=False)

    def record(self, method: str, column: str, outcomes) -> None:
        """Sets ``method``'s value in ``column`` to the mean of the items' ``outcomes`` (None if there are none)."""
        outcomes = [float(o) for o in outcomes] if outcomes is not None else []
        self.rows.setdefault(method, {})[column] = sum(outcomes) / len(outcomes) if outcomes else None
        if outcomes:
            self.outcomes.setdefault(method, {})[column] = outcomes

    def value(self, method: str, column: str) -> float | None:
        value = self.rows.get(method, {}).get(column)
        return None if value is None or not math.isfinite(value) else value

    def shared_columns(self, *methods: str) -> list[str]:
        """The columns where every one of ``methods`` has a value."""
        return [c for c in self.columns if all(self.value(m, c) is not None for m in methods)]

    def average(self, method: str, columns: Iterable[str] | None = None) -> float | None:
        """Mean of ``method``'s values over ``columns`` (default: all it has); None if it has none."""
        values = [self.value(method, c) for c in (self.columns if columns is None else columns)]
        values = [v for v in values if v is not None]
        return sum(values) / len(values) if values else None

    def to_dict(self) -> dict:
        data = asdict(self)
        del data["outcomes"]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Table:
        return cls(**data)
