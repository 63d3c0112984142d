"""Deterministic pseudo-random draws keyed by name, so that a corpus decision never depends on order."""

from __future__ import annotations

import hashlib


def draw(seed: int, *keys: str) -> float:
    """A uniform number in [0, 1) fixed by the seed and the keys (sha256; stable across runs and machines)."""
    digest = hashlib.sha256("\x1f".join([str(seed), *keys]).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64
