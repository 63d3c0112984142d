"""Spoken prompts (Debian ``asterisk-core-sounds-en-wav``, transcripts from ``asterisk-core-sounds-en``).

Layout: ``usr/share/asterisk/sounds/<voice>/<name>.wav`` (8 kHz, also in ``digits/``,
``letters/``...) and ``usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz`` with
``<name>: <transcript>`` lines. Bracketed transcripts ("[this is a simple beep tone]",
"[1 second of silence]") are not speech and are left out; speech longer than
``SourceSettings.max_speech_seconds`` is dropped at build time rather than cut mid-sentence.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator, Mapping
from pathlib import Path

from ..candidate import Candidate, SourceSettings
from ..text import clean_caption, concept_of

SOUNDS_PACKAGE, TEXT_PACKAGE = "asterisk-core-sounds-en-wav", "asterisk-core-sounds-en"
PACKAGES = (SOUNDS_PACKAGE, TEXT_PACKAGE)
LICENCE = "CC-BY-SA-3.0"
SOUNDS = Path("usr/share/asterisk/sounds")
TRANSCRIPTS = Path("usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")


def candidates(roots: Mapping[str, Path], settings: SourceSettings) -> Iterator[Candidate]:
    """One sound+text candidate per transcribed clip."""
    transcripts = read_transcripts(roots[TEXT_PACKAGE] / TRANSCRIPTS)
    voices = sorted(path for path in (roots[SOUNDS_PACKAGE] / SOUNDS).iterdir() if path.is_dir())
    for name, transcript in sorted(transcripts.items()):
        path = next(
            (voice / f"{name}.wav" for voice in voices if (voice / f"{name}.wav").is_file()), None
        )
        caption = clean_caption(transcript)
        if path is None or not caption:
            continue
        yield Candidate(
            source="speech",
            key=name,
            caption=caption,
            concept=concept_of(caption),
            category="speech",
            package=SOUNDS_PACKAGE,
            licence=LICENCE,
            origin=path.relative_to(roots[SOUNDS_PACKAGE]).as_posix(),
            sound=path,
            max_sound_seconds=settings.max_speech_seconds,
        )


def read_transcripts(path: Path) -> dict[str, str]:
    """``{name: transcript}`` from the (gzipped or plain) transcript file, without bracketed ones."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as file:
        lines = file.read().splitlines()
    transcripts = {}
    for line in lines:
        name, separator, text = line.partition(":")
        text = text.strip()
        if (
            separator
            and name.strip()
            and not line.startswith(";")
            and text
            and not text.startswith("[")
        ):
            transcripts[name.strip()] = text
    return transcripts
