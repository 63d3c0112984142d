"""The corpus manifest: one JSON line per item, naming its concept, caption, media files, source and split."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

MANIFEST_NAME = "manifest.jsonl"
SPLITS = ("train", "heldout_item", "heldout_concept")


@dataclass(frozen=True)
class Item:
    """One corpus item. ``image`` and ``sound`` are paths relative to the corpus folder, or None.

    ``split``: ``train``; ``heldout_item`` (an item held out from a concept seen in training);
    ``heldout_concept`` (every item of a concept never seen in training). ``parents`` names the
    items whose media a concept-joined item reuses. ``image_side``: the longest side of the
    image's drawing in its source, in pixels (None in corpora built before it was recorded).
    """

    id: str
    concept: str
    category: str
    caption: str
    source: str
    package: str
    licence: str
    origin: str
    image: str | None = None
    sound: str | None = None
    split: str = "train"
    parents: tuple[str, ...] = field(default=())
    image_side: int | None = None

    @property
    def modalities(self) -> tuple[str, ...]:
        """The modalities the item has, in the order image, sound, text."""
        present = (("image", self.image), ("sound", self.sound), ("text", self.caption))
        return tuple(name for name, value in present if value)

    def to_json(self) -> str:
        """One manifest line (``modalities`` included for readers that do not use this class)."""
        row = asdict(self)
        row["parents"] = list(self.parents)
        row["modalities"] = list(self.modalities)
        return json.dumps(row, ensure_ascii=False)

    @classmethod
    def from_json(cls, line: str) -> Item:
        """Parses one manifest line."""
        row = json.loads(line)
        row.pop("modalities", None)
        row["parents"] = tuple(row.get("parents", ()))
        return cls(**row)

    def with_split(self, split: str) -> Item:
        """A copy of the item in ``split``."""
        if split not in SPLITS:
            raise ValueError(f"Unknown split {split!r}; use one of {SPLITS}.")
        return replace(self, split=split)


def write_manifest(items: Iterable[Item], folder: Path) -> Path:
    """Writes ``manifest.jsonl`` into the corpus folder, items sorted by id."""
    path = Path(folder) / MANIFEST_NAME
    lines = [item.to_json() for item in sorted(items, key=lambda item: item.id)]
    path.write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")
    return path


def read_manifest(folder: Path) -> list[Item]:
    """Reads the items of a corpus folder (or of a manifest file given directly)."""
    path = Path(folder)
    path = path / MANIFEST_NAME if path.is_dir() else path
    if not path.is_file():
        raise ValueError(
            f"No manifest at {str(path)!r}; build the corpus with `studio-data` first."
        )
    return [Item.from_json(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def modality_key(item: Item) -> str:
    """``image+text``, ``sound+text``, ``image+sound+text``...: the item's kind of tuple."""
    return "+".join(item.modalities)


def count_items(items: Iterable[Item]) -> dict[str, dict[str, dict[str, int]]]:
    """Counts by source, then by modality tuple and by split (with a total per source)."""
    counts: dict[str, dict[str, Counter]] = {}
    for item in items:
        for source in (item.source, "all"):
            entry = counts.setdefault(source, {"modalities": Counter(), "splits": Counter()})
            entry["modalities"][modality_key(item)] += 1
            entry["splits"][item.split] += 1
    return {
        source: {"items": sum(entry["splits"].values()), **{k: dict(v) for k, v in entry.items()}}
        for source, entry in sorted(counts.items())
    }
