"""Desktop sounds (Debian ``sound-theme-freedesktop``): ~27 event sounds named by their event.

Layout: ``usr/share/sounds/freedesktop/stereo/<event-name>.oga``. The caption is the event
name in words ("phone-incoming-call" → "phone incoming call"); a few events name a thing
that other sources show, and take that thing as their concept so they join with it.
Licences differ per file and are read from the package's DEP-5 ``copyright``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

from ..candidate import Candidate, SourceSettings
from ..licences import licence_for, read_copyright
from ..text import clean_caption, concept_of, split_words

PACKAGE = "sound-theme-freedesktop"
PACKAGES = (PACKAGE,)
SOUNDS = Path("usr/share/sounds/freedesktop")
COPYRIGHT = Path("usr/share/doc/sound-theme-freedesktop/copyright")
CONCEPTS = {
    "alarm-clock-elapsed": "alarm clock",
    "camera-shutter": "camera",
    "phone-incoming-call": "telephone",
    "phone-outgoing-busy": "telephone",
    "phone-outgoing-calling": "telephone",
}


def candidates(roots: Mapping[str, Path], settings: SourceSettings) -> Iterator[Candidate]:
    """One sound+text candidate per event sound."""
    root = roots[PACKAGE]
    copyright_file = root / COPYRIGHT
    stanzas = read_copyright(copyright_file) if copyright_file.is_file() else []
    for path in sorted((root / SOUNDS).rglob("*.og[ag]")):
        relative = path.relative_to(root / SOUNDS).as_posix()
        caption = clean_caption(" ".join(split_words(path.stem)))
        yield Candidate(
            source="desktop",
            key=path.stem,
            caption=caption,
            concept=CONCEPTS.get(path.stem, concept_of(caption)),
            category="desktop",
            package=PACKAGE,
            licence=licence_for(relative, stanzas, "see debian/copyright"),
            origin=(SOUNDS / relative).as_posix(),
            sound=path,
        )
