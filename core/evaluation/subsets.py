"""Names of input subsets and retrieval directions, as the report writes them."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from .dataset import MODALITIES

NAMES = {"text": "text", "image": "image", "audio": "sound"}
SUBSETS = [s for r in range(1, len(MODALITIES) + 1) for s in itertools.combinations(MODALITIES, r)]
DIRECTIONS = [("text", "image"), ("image", "text"), ("image", "audio"), ("audio", "image"), ("text", "audio"), ("audio", "text")]


def subset_name(modalities: Sequence[str]) -> str:
    """``("text", "audio")`` → ``"text+sound"``."""
    return "+".join(NAMES[m] for m in MODALITIES if m in modalities)


def direction_name(query: Sequence[str] | str, target: str) -> str:
    """``("image", "text")`` → ``"image→text"``."""
    query = (query,) if isinstance(query, str) else query
    return f"{subset_name(query)}→{NAMES[target]}"
