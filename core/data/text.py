"""Caption cleaning, concept names and the English check applied to captions of mixed origin.

Captions end up lower-case ASCII with single spaces and no closing full stop ("a red fire
truck"), because the text encoder (all-MiniLM-L6-v2) is uncased and a uniform style is
easier for the caption decoder to learn. A concept is the caption without a leading article.

The English check is deliberately simple: every word must be in an English word list (the
``wamerican`` Debian package, fetched like the data) and none may be one of a handful of
Italian, French, Spanish or German function words that also appear in that list ("di",
"con", "per", "le", "del"). Openclipart titles and file names pass through it; captions
written as English by their authors (Tux Paint, emoji names, speech transcripts, instrument
names) do not need it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ARTICLES = ("a", "an", "the", "some")

# Function words of the other languages found in Openclipart titles that the English list also holds.
FOREIGN_WORDS = frozenset((
    "di", "del", "della", "delle", "dei", "degli", "il", "lo", "gli", "un", "una", "uno", "con",
    "per", "non", "da", "dal", "nel", "nella", "che", "sul", "alla", "de", "des", "du", "et",
    "les", "le", "la", "el", "los", "las", "y", "und", "der", "die", "das",
))  # fmt: skip

# Words that name how a picture was made or filed, not what it shows.
BOILERPLATE_WORDS = frozenset((
    "clipart", "cliparts", "collection", "theme", "icon", "icons", "iconset", "svg", "png",
    "submission", "untitled", "drawing", "layer", "image", "version", "alt",
))  # fmt: skip

# Words a truncated file name may end on ("dog_drawn_with_strai" → "dog drawn").
DANGLING_WORDS = frozenset((
    "a", "an", "the", "and", "or", "of", "with", "without", "for", "on", "under", "over", "in",
    "at", "by", "to", "from",
))  # fmt: skip

_QUOTES = str.maketrans({"“": '"', "”": '"', "„": '"', "‘": "'", "’": "'", "`": "'", "´": "'"})


def ascii_fold(text: str) -> str:
    """Drops accents and any character that has no ASCII form ("café" → "cafe")."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_QUOTES))
    return decomposed.encode("ascii", "ignore").decode("ascii")


def split_words(name: str) -> list[str]:
    """Splits a file or identifier name into lower-case words ("phaseJump_02" → ["phase", "jump"])."""
    name = re.sub(r"([a-z])([A-Z])", r"\1 \2", name)
    parts = re.split(r"[^A-Za-z0-9]+", name)
    words = []
    for part in parts:
        part = re.sub(r"\d+$", "", part)  # "bus1" → "bus"
        if part and not re.search(r"\d", part):  # "28pt03step" is a code, not a word
            words.append(part.lower())
    return words


def clean_caption(text: str, first_sentence: bool = False) -> str:
    """Normalises a caption: ASCII, lower case, no quotes, brackets or closing punctuation."""
    text = ascii_fold(text).replace("\t", " ")
    if first_sentence:
        text = re.split(r"(?<=[.!?])\s+", text.strip(), maxsplit=1)[0]
    text = text.replace("#", " pound ").replace("*", " star ").replace("&", " and ")
    text = re.sub(r"[\"()\[\]{}<>]", " ", text)
    text = re.sub(r"\s+", " ", text).strip().lower()
    return text.strip(" .,;:!?'-")


def concept_of(caption: str) -> str:
    """The concept a caption names: its words without a leading article or punctuation."""
    words = re.findall(r"[a-z0-9']+", caption.lower())
    while len(words) > 1 and words[0] in ARTICLES:
        words = words[1:]
    return " ".join(word.strip("'") for word in words).strip()


def slugify(text: str) -> str:
    """A file-name-safe id fragment ("Electric Guitar (jazz)" → "electric-guitar-jazz")."""
    return re.sub(r"[^a-z0-9]+", "-", ascii_fold(text).lower()).strip("-") or "item"


@dataclass(frozen=True)
class EnglishWords:
    """A set of English words (lower case) and the check that a caption uses only them."""

    words: frozenset[str]
    common: frozenset[str]  # the words that appear in lower case in the list (no names)

    @classmethod
    def from_file(cls, path: str | Path) -> EnglishWords:
        """Reads a word list with one word a line, such as ``/usr/share/dict/american-english``."""
        lines = Path(path).read_text(encoding="utf-8", errors="ignore").split()
        return cls.from_words(lines)

    @classmethod
    def from_words(cls, lines: Iterable[str]) -> EnglishWords:
        """Builds the set from words as written (capitalised entries count as names)."""
        words, common = set(), set()
        for line in lines:
            word = ascii_fold(line.strip()).removesuffix("'s")
            if word.isalpha():
                words.add(word.lower())
                if word.islower():
                    common.add(word)
        return cls(frozenset(words), frozenset(common))

    def is_english(self, caption: str) -> bool:
        """True when every word of the caption is English and at least one is longer than 2 letters."""
        if not caption.isascii():
            return False
        tokens = re.findall(r"[a-z]+", caption.lower())
        if not tokens or max(len(token) for token in tokens) < 3:
            return False
        return all(self._is_word(token) for token in tokens)

    def _is_word(self, token: str) -> bool:
        if token in FOREIGN_WORDS or token in BOILERPLATE_WORDS:
            return False
        return token in self.words and (len(token) > 1 or token == "a")

    def strip_trailing_names(self, words: list[str]) -> list[str]:
        """Drops trailing words that are not common English (authors' names) or that dangle ("with")."""
        words = list(words)
        while words and (
            words[-1] not in self.common or words[-1] in FOREIGN_WORDS | DANGLING_WORDS
        ):
            words.pop()
        return words
