"""The corpus sources: each reads extracted package folders and yields ``Candidate`` items.

A source module has ``PACKAGES`` (the package names it reads, as in ``packages.PACKAGES``)
and ``candidates(roots, settings)``, where ``roots`` maps each package name to the folder
it was extracted into.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..candidate import Candidate, SourceSettings
from . import arcade, desktop, emoji, openclipart, soundfont, speech, tuxpaint


@dataclass(frozen=True)
class Source:
    """A named source: the packages it needs and the function that lists its candidates."""

    name: str
    packages: tuple[str, ...]
    candidates: Callable[[Mapping[str, Path], SourceSettings], Iterator[Candidate]]
    modalities: str  # what its items hold, for people reading the CLI help


SOURCES: dict[str, Source] = {
    source.name: source
    for source in (
        Source(
            "tuxpaint",
            tuxpaint.PACKAGES,
            tuxpaint.candidates,
            "image+text, sound+text, image+sound+text",
        ),
        Source("emoji", emoji.PACKAGES, emoji.candidates, "image+text"),
        Source("openclipart", openclipart.PACKAGES, openclipart.candidates, "image+text"),
        Source("soundfont", soundfont.PACKAGES, soundfont.candidates, "sound+text"),
        Source("desktop", desktop.PACKAGES, desktop.candidates, "sound+text"),
        Source("arcade", arcade.PACKAGES, arcade.candidates, "sound+text"),
        Source("speech", speech.PACKAGES, speech.candidates, "sound+text"),
    )
}

__all__ = ["SOURCES", "Source"]
