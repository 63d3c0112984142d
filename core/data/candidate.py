"""What a source yields: one prospective corpus item, before its media are normalised."""

from __future__ import annotations

from dataclasses import dataclass

from .normalise import ImageSource, SoundSource
from .text import EnglishWords


@dataclass(frozen=True)
class Candidate:
    """A prospective item: caption and concept, where its image and sound come from, and its licence.

    ``key`` is unique within the source (a path inside the package, an emoji code); the
    corpus turns ``source`` and ``key`` into the item id.
    """

    source: str
    key: str
    caption: str
    concept: str
    category: str
    package: str
    licence: str
    origin: str  # the file (or recipe) inside the package, for people tracing an item back
    image: ImageSource | None = None
    sound: SoundSource | None = None
    check_english: bool = False  # captions of uncertain language (Openclipart titles, emoji names)
    max_sound_seconds: float | None = None  # drop longer sounds instead of cutting them (speech)


@dataclass(frozen=True)
class SourceSettings:
    """What a source may need besides its package folders."""

    soundfont_variants: int = 3  # phrases rendered per General MIDI instrument (registers)
    max_speech_seconds: float = 2.5  # longer speech is dropped, not cut mid-sentence
    english: EnglishWords | None = None  # for sources that take captions from titles or file names
