"""Tux Paint stamps (Debian ``tuxpaint-stamps-default``): captioned pictures, many with a sound effect.

Layout: ``usr/share/tuxpaint/stamps/<category>/.../<name>.png`` (or ``.svg``) beside
``<name>.txt``, whose first line is the English caption and whose other lines are
translations, and often ``<name>.ogg`` (or ``.wav``), the stamp's sound effect. The spoken
descriptions (``<name>_desc*.ogg``) and localised spoken letters and digits
(``<name>_<locale>.ogg``) are not sound effects and are left out. Stamps with an image give
image+text or image+sound+text items; a caption with a sound and no image gives sound+text.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

from ..candidate import Candidate, SourceSettings
from ..text import clean_caption, concept_of

PACKAGE = "tuxpaint-stamps-default"
PACKAGES = (PACKAGE,)
LICENCE = "GPL-2.0"
STAMPS = Path("usr/share/tuxpaint/stamps")


def candidates(roots: Mapping[str, Path], settings: SourceSettings) -> Iterator[Candidate]:
    """One candidate per captioned stamp, with its image and its sound effect where present."""
    root = roots[PACKAGE] / STAMPS
    for caption_file in sorted(root.rglob("*.txt")):
        caption = read_caption(caption_file)
        if not caption:
            continue
        image = _first_existing(caption_file, (".png", ".svg"))
        sound = _first_existing(caption_file, (".ogg", ".wav"))
        if image is None and sound is None:
            continue
        relative = caption_file.relative_to(root).with_suffix("")
        yield Candidate(
            source="tuxpaint",
            key=relative.as_posix(),
            caption=caption,
            concept=concept_of(caption),
            category=relative.parts[0] if len(relative.parts) > 1 else "misc",
            package=PACKAGE,
            licence=LICENCE,
            origin=(STAMPS / relative).as_posix() + ".*",
            image=image,
            sound=sound,
        )


def read_caption(path: Path) -> str:
    """The cleaned first sentence of the first line of a stamp's ``.txt`` file."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    first = next((line for line in lines if line.strip()), "")
    if "=" in first.split(" ", 1)[0]:  # a translation line ("fr.utf8=...") with no English line
        return ""
    return clean_caption(first, first_sentence=True)


def _first_existing(path: Path, suffixes: tuple[str, ...]) -> Path | None:
    for suffix in suffixes:
        candidate = path.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    return None
