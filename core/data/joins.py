"""Image+sound+text items made by joining an item with an image to an item with a sound of the same concept.

The violin emoji and the rendered soundfont violin become one triple: the emoji's image and
caption with the violin's sound. Pairs are drawn in a seeded order, preferring pairs that
use an image or a sound not used yet, up to a cap per concept.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from .manifest import Item
from .seeding import draw
from .text import slugify


def join_by_concept(items: Iterable[Item], max_per_concept: int = 4, seed: int = 0) -> list[Item]:
    """New ``join`` items, one per chosen (image item, sound item) pair of each shared concept."""
    with_image, with_sound = defaultdict(list), defaultdict(list)
    for item in items:
        if item.image:
            with_image[item.concept].append(item)
        if item.sound:
            with_sound[item.concept].append(item)
    joined = []
    for concept in sorted(with_image.keys() & with_sound.keys()):
        pairs = [(a, b) for a in with_image[concept] for b in with_sound[concept] if a.id != b.id]
        pairs.sort(key=lambda pair: draw(seed, "join", pair[0].id, pair[1].id))
        for number, (image_item, sound_item) in enumerate(_spread(pairs, max_per_concept)):
            joined.append(joined_item(concept, number, image_item, sound_item))
    return joined


def _spread(pairs: list[tuple[Item, Item]], limit: int) -> list[tuple[Item, Item]]:
    """Up to ``limit`` pairs, first those that bring a new image or sound, then the rest in order."""
    chosen, used = [], set()
    for pair in pairs:
        if len(chosen) < limit and (pair[0].id not in used or pair[1].id not in used):
            chosen.append(pair)
            used.update((pair[0].id, pair[1].id))
    for pair in pairs:
        if len(chosen) < limit and pair not in chosen:
            chosen.append(pair)
    return chosen


def joined_item(concept: str, number: int, image_item: Item, sound_item: Item) -> Item:
    """The triple of ``image_item``'s image and caption with ``sound_item``'s sound."""
    return Item(
        id=f"join-{slugify(concept)}-{number}",
        concept=concept,
        category=image_item.category,
        caption=image_item.caption,
        source="join",
        package=f"{image_item.package} + {sound_item.package}",
        licence=f"image: {image_item.licence}; sound: {sound_item.licence}",
        origin=f"image of {image_item.id}, sound of {sound_item.id}",
        image=image_item.image,
        sound=sound_item.sound,
        image_side=image_item.image_side,
        parents=(image_item.id, sound_item.id),
    )
