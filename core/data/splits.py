"""Train and held-out splits: whole concepts never seen in training, and held-out items of seen concepts.

Each concept is held out with probability ``heldout_concepts`` by a seeded draw on its name,
so the choice does not move when other items are added. Within a seen concept, items that
share media (a joined item and the items it took its image and sound from) form one group,
and each group is held out with probability ``heldout_items``; a seen concept always keeps
at least one group in training. No media file is therefore in two splits.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from .manifest import Item
from .seeding import draw


def assign_splits(
    items: Iterable[Item], heldout_concepts: float = 0.1, heldout_items: float = 0.1, seed: int = 0
) -> list[Item]:
    """The items with ``split`` set to ``train``, ``heldout_item`` or ``heldout_concept``."""
    for name, value in (("heldout_concepts", heldout_concepts), ("heldout_items", heldout_items)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {value}.")
    items = list(items)
    groups = media_groups(items)
    by_concept = defaultdict(lambda: defaultdict(list))
    for item in items:
        by_concept[item.concept][groups[item.id]].append(item)
    result = []
    for concept, concept_groups in sorted(by_concept.items()):
        if draw(seed, "concept", concept) < heldout_concepts:
            result += [
                item.with_split("heldout_concept")
                for group in concept_groups.values()
                for item in group
            ]
            continue
        odds = {root: draw(seed, "item", root) for root in concept_groups}
        held = {root for root, odd in odds.items() if odd < heldout_items}
        if held and len(held) == len(concept_groups):
            held.discard(max(held, key=odds.get))  # keep the concept seen in training
        for root, group in concept_groups.items():
            split = "heldout_item" if root in held else "train"
            result += [item.with_split(split) for item in group]
    return result


def media_groups(items: list[Item]) -> dict[str, str]:
    """Maps each item id to the id that represents its group of items sharing media (union-find)."""
    parent = {item.id: item.id for item in items}

    def find(key: str) -> str:
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    for item in items:
        for other in item.parents:
            if other in parent:
                low, high = sorted((find(item.id), find(other)))
                parent[high] = low
    return {key: find(key) for key in parent}
