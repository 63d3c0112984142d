"""One table of the report: a value per method and column, with reference rows and item counts."""

from __future__ import annotations

import copy
import hashlib
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np

RESAMPLES = 1000  # bootstrap resamples behind the floors' intervals


@lru_cache(maxsize=8)
def resample_indices(count: int, resamples: int = RESAMPLES) -> np.ndarray:
    """``[resamples, count]`` item indices drawn with replacement, fixed by ``count``: every
    method of a column gets the same draws, so the bootstrap is paired, as long as every
    method's outcomes of a column are of the same items in the same order (as the tables
    score them)."""
    indices = np.random.default_rng([20261128, count]).integers(0, count, size=(resamples, count))
    indices.flags.writeable = False
    return indices


class Replicates(NamedTuple):
    """A value recomputed on the bootstrap resamples of its items."""

    count: int  # how many items the value rests on
    ids: str | None  # a digest of the items' ids, in order; None if they were not given
    draws: np.ndarray  # [RESAMPLES] values

    def pairs_with(self, other: Replicates) -> bool:
        """Whether the two were drawn from the same items in the same order, so their
        resamples are paired."""
        return self.count == other.count and self.ids == other.ids


def digest(ids: Any) -> str | None:
    """A short fingerprint of a sequence of integer item ids (rows), in order."""
    if ids is None:
        return None
    return hashlib.sha1(np.asarray(ids, dtype=np.int64).tobytes()).hexdigest()[:16]


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
        replicates: method → column → ``Replicates``: the value recomputed on bootstrap
            resamples of its items (the same resamples for every method), where the value was
            recorded with its items (``record``, ``record_statistic``); the floors' intervals
            come from them, pairing two methods only where their items' ids agree. Kept in
            memory only, not in ``report.json``.
    """

    name: str
    title: str
    columns: list[str]
    rows: dict[str, dict[str, float | None]] = field(default_factory=dict)
    higher_is_better: bool = True
    references: dict[str, dict[str, float | None]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    note: str = ""
    replicates: dict[str, dict[str, Replicates]] = field(default_factory=dict, repr=False, compare=False)

    def record(self, method: str, column: str, outcomes: Sequence[float] | None, ids: Any = None) -> None:
        """Sets ``method``'s value in ``column`` to the mean of the items' ``outcomes`` (a hit 1,
        a miss 0), with its bootstrap replicates; None if there are no items. ``ids`` are the
        items' ids (held-out rows), in the order of ``outcomes``."""
        outcomes = np.asarray([] if outcomes is None else outcomes, dtype=np.float64)
        draws = outcomes[resample_indices(len(outcomes))].mean(1) if len(outcomes) else None
        self._set(method, column, float(outcomes.mean()) if len(outcomes) else None, len(outcomes), ids, draws)

    def record_statistic(
        self, method: str, column: str, items: Any, statistic: Callable[[Any], float | None], ids: Any = None
    ) -> None:
        """Sets ``method``'s value in ``column`` to ``statistic(items)`` (a distance over generated
        media, say), with its bootstrap replicates over ``items`` (indexable by an index array).
        ``ids`` are the items' ids (held-out rows), in order.

        A statistic need not be unbiased under resampling (a Fréchet distance grows when
        repeated samples shrink its spread), so the replicates are centred on the value: they
        give its spread, not its bias.
        """
        value = statistic(items) if items is not None else None
        draws = None
        if value is not None:
            draws = [statistic(items[indices.copy()]) for indices in resample_indices(len(items))]  # a tensor wants writable indices
            draws = np.asarray([np.nan if d is None else d for d in draws], dtype=np.float64)  # nan: a degenerate resample
            draws += value - np.nanmean(draws)
        self._set(method, column, value, 0 if items is None else len(items), ids, draws)

    def _set(self, method: str, column: str, value: float | None, count: int, ids: Any, draws: np.ndarray | None) -> None:
        if draws is not None and ids is not None and len(ids) != count:
            raise ValueError(f"{len(ids)} ids for {count} items in {self.name} / {column}.")
        self.rows.setdefault(method, {})[column] = value
        if draws is None:
            self.replicates.get(method, {}).pop(column, None)
        else:
            self.replicates.setdefault(method, {})[column] = Replicates(count, digest(ids), draws)

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
        return {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self) if f.name != "replicates"}

    @classmethod
    def from_dict(cls, data: dict) -> Table:
        return cls(**data)
