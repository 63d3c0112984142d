"""Game sound effects: the Kenney sounds inside the ``arcade`` wheel (PyPI; unzipped, not installed).

Layout: ``arcade/resources/assets/sounds/<name><n>.wav`` (some also as .ogg or .mp3: one file
per name is used, WAV first). Numbered takes of one effect ("coin1" ... "coin5") are items
of one concept.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

from ..candidate import Candidate, SourceSettings
from ..text import clean_caption, concept_of, split_words

PACKAGE = "arcade"
PACKAGES = (PACKAGE,)
LICENCE = "CC0-1.0"
SOUNDS = Path("arcade/resources/assets/sounds")
PREFERRED_SUFFIXES = (".wav", ".ogg", ".mp3")
CAPTIONS = {"gameover": "game over"}


def candidates(roots: Mapping[str, Path], settings: SourceSettings) -> Iterator[Candidate]:
    """One sound+text candidate per sound effect file name."""
    folder = roots[PACKAGE] / SOUNDS
    chosen: dict[str, Path] = {}
    for suffix in reversed(PREFERRED_SUFFIXES):  # later (preferred) suffixes overwrite earlier
        for path in folder.glob(f"*{suffix}"):
            chosen[path.stem] = path
    for stem, path in sorted(chosen.items()):
        words = " ".join(split_words(stem))
        caption = clean_caption(CAPTIONS.get(words, words))
        if not caption:
            continue
        yield Candidate(
            source="arcade",
            key=stem,
            caption=caption,
            concept=concept_of(caption),
            category="game",
            package=PACKAGE,
            licence=LICENCE,
            origin=(SOUNDS / path.name).as_posix(),
            sound=path,
        )
