"""General MIDI instruments rendered from a soundfont (Debian ``timgm6mb-soundfont``, PyPI ``tinysoundfont``).

Each of the 128 GM programs plays a short arpeggio (root, third, fifth, octave, the last note
held) in ``SourceSettings.soundfont_variants`` registers, plus the standard drum kit playing
a beat; each rendering is one sound+text item named by the instrument. ``tinysoundfont`` is
used from the environment if installed, else from its wheel unpacked in the cache: its
``pyaudio`` requirement (live playback only) has no Linux wheel, so it is never installed.
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from pathlib import Path

import numpy as np

from ...audio import SAMPLE_RATE
from ..candidate import Candidate, SourceSettings
from ..general_midi import INSTRUMENTS, family
from ..normalise import CLIP_SECONDS
from ..text import clean_caption

SOUNDFONT_PACKAGE, SYNTH_PACKAGE = "timgm6mb-soundfont", "tinysoundfont"
PACKAGES = (SOUNDFONT_PACKAGE, SYNTH_PACKAGE)
LICENCE = "GPL-2.0"
SOUNDFONT = Path("usr/share/sounds/sf2/TimGM6mb.sf2")
REGISTERS = (60, 48, 72)  # root notes of the variants: middle C, an octave below, an octave above
ARPEGGIO = (0, 4, 7, 12)  # semitones above the root
NOTE_SECONDS = 0.3
DRUM_PROGRAM = -1  # the standard kit (bank 128, preset 0) on MIDI channel 10
DRUM_NOTES = (36, 42, 38, 42)  # kick, closed hi-hat, snare, closed hi-hat
DRUM_STEPS = (0.25, 0.2, 0.3)  # seconds between beats, one per variant

Renderer = Callable[[int, int], tuple[int, np.ndarray]]  # (program, variant) → (rate, samples)


def candidates(
    roots: Mapping[str, Path], settings: SourceSettings, renderer: Renderer | None = None
) -> Iterator[Candidate]:
    """Sound+text candidates: every GM program and the drum kit, in each register variant."""
    if renderer is None:
        synth_dir = roots.get(SYNTH_PACKAGE)
        soundfont = SoundfontRenderer(roots[SOUNDFONT_PACKAGE] / SOUNDFONT, synth_dir)
        soundfont.load()  # fail here, as a source error, rather than on the first rendering
        renderer = soundfont.render
    variants = max(1, min(settings.soundfont_variants, len(REGISTERS)))
    programs = [*range(len(INSTRUMENTS)), DRUM_PROGRAM]
    for program in programs:
        name, concept = INSTRUMENTS[program] if program >= 0 else ("Drum Kit", "drum")
        for variant in range(variants):
            slug = f"{program + 1:03d}-{re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-')}"
            yield Candidate(
                source="soundfont",
                key=f"{slug}/{variant}",
                caption=instrument_caption(name, program),
                concept=concept,
                category=family(program) if program >= 0 else "percussive",
                package=SOUNDFONT_PACKAGE,
                licence=LICENCE,
                origin=f"{SOUNDFONT.as_posix()} program {program if program >= 0 else 'drums'} variant {variant}",
                sound=partial(renderer, program, variant),
            )


def instrument_caption(name: str, program: int) -> str:
    """A readable caption for a GM name ("Electric Guitar (jazz)" → "jazz electric guitar")."""
    match = re.fullmatch(r"(.*?)\s*\((.*)\)", name)
    base, detail = (match.group(1), match.group(2)) if match else (name, "")
    base = re.sub(r"\s*\d+$", "", base)
    if program >= 0 and family(program).startswith("synth "):
        base = family(program).replace("effects", "effect")  # "Pad 2 (warm)" → "warm synth pad"
    return clean_caption(f"{detail} {base}".replace("+", "and"))


def import_tinysoundfont(folder: Path | None):
    """Imports tinysoundfont from the environment, or else from an unpacked wheel in ``folder``."""
    try:
        return importlib.import_module("tinysoundfont")
    except ImportError:
        if folder is None:
            raise
    if str(folder) not in sys.path:
        sys.path.append(str(folder))
    return importlib.import_module("tinysoundfont")


class SoundfontRenderer:
    """Plays phrases through one soundfont; ``render(program, variant)`` gives a 2 s mono phrase."""

    def __init__(
        self, soundfont: Path, synth_dir: Path | None = None, sample_rate: int = SAMPLE_RATE
    ):
        if not Path(soundfont).is_file():
            raise ValueError(
                f"No soundfont at {str(soundfont)!r}; fetch the {SOUNDFONT_PACKAGE} package."
            )
        self.soundfont, self.synth_dir, self.sample_rate = Path(soundfont), synth_dir, sample_rate
        self._synth = None

    def render(self, program: int, variant: int) -> tuple[int, np.ndarray]:
        """The phrase of ``program`` (or ``DRUM_PROGRAM``) in register ``variant``, as (rate, mono)."""
        synth, sfid = self.load()
        channel = 9 if program == DRUM_PROGRAM else 0
        if program == DRUM_PROGRAM:
            synth.program_select(channel, sfid, 128, 0, is_drums=True)
            step = DRUM_STEPS[variant % len(DRUM_STEPS)]
            notes = [DRUM_NOTES[i % len(DRUM_NOTES)] for i in range(int(CLIP_SECONDS / step))]
            events = [(i * step, key, step) for i, key in enumerate(notes)]
        else:
            synth.program_select(channel, sfid, 0, program)
            root = REGISTERS[variant % len(REGISTERS)]
            events = [
                (i * NOTE_SECONDS, root + offset, NOTE_SECONDS) for i, offset in enumerate(ARPEGGIO)
            ]
            start, key, _ = events[-1]
            events[-1] = (start, key, CLIP_SECONDS - 0.2 - start)  # hold the octave
        samples = self._play(synth, channel, events)
        synth.sounds_off()
        return self.sample_rate, samples

    def load(self):
        """Imports tinysoundfont and loads the soundfont once; returns ``(synth, soundfont id)``."""
        if self._synth is None:
            tinysoundfont = import_tinysoundfont(self.synth_dir)
            synth = tinysoundfont.Synth(samplerate=self.sample_rate)
            try:
                self._synth = (synth, synth.sfload(str(self.soundfont)))
            except Exception as error:  # tinysoundfont.SoundFontException and the like
                raise ValueError(
                    f"Could not load the soundfont {str(self.soundfont)!r}: {error}"
                ) from error
        return self._synth

    def _play(self, synth, channel: int, events: list[tuple[float, int, float]]) -> np.ndarray:
        # A timeline of note-ons and note-offs; render the samples between consecutive changes.
        changes = sorted(
            [(t, 1, key) for t, key, _ in events] + [(t + d, 0, key) for t, key, d in events]
        )
        chunks, now = [], 0.0
        for time, is_on, key in [*changes, (CLIP_SECONDS, -1, 0)]:
            count = int(round(time * self.sample_rate)) - int(round(now * self.sample_rate))
            if count > 0:
                stereo = np.frombuffer(synth.generate(count), dtype=np.float32).reshape(-1, 2)
                chunks.append(stereo.mean(axis=1))
            now = max(now, time)
            if is_on == 1:
                synth.noteon(channel, key, 100)
            elif is_on == 0:
                synth.noteoff(channel, key)
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
