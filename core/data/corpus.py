"""Building the corpus: candidates from the sources → filtered and capped → normalised media files →
concept joins → splits → ``manifest.jsonl`` and ``summary.json``.

Corpus folder layout::

    images/<source>/<id>.png     128x128 RGB on white
    sounds/<source>/<id>.wav     mono 22050 Hz, 2 s, 16-bit PCM
    manifest.jsonl               one ``manifest.Item`` a line
    summary.json                 counts per source, modality and split; drops and their reasons
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import soundfile

from ..audio import SAMPLE_RATE
from .candidate import Candidate, SourceSettings
from .joins import join_by_concept
from .manifest import MANIFEST_NAME, Item, count_items, write_manifest
from .normalise import SkipItem, image_tile, sound_clip
from .seeding import draw
from .sources import SOURCES
from .splits import assign_splits
from .text import EnglishWords, slugify

logger = logging.getLogger(__name__)

DEFAULT_MAX_ITEMS = {"openclipart": 8000}
SUMMARY_NAME = "summary.json"


@dataclass(frozen=True)
class BuildOptions:
    """How much of each source to take, and how to join and split."""

    max_items: Mapping[str, int] = field(
        default_factory=lambda: dict(DEFAULT_MAX_ITEMS)
    )  # per source
    max_per_concept: int = 20  # items of one concept from one source ("card" has 226 clip arts)
    max_joins_per_concept: int = 4
    heldout_concepts: float = 0.1
    heldout_items: float = 0.1
    seed: int = 0


@dataclass
class BuildReport:
    """The built items, what was dropped and why, and what failed."""

    items: list[Item]
    dropped: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    errors: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        """The summary written to ``summary.json``."""
        return {
            "counts": count_items(self.items),
            "dropped": {source: dict(reasons) for source, reasons in sorted(self.dropped.items())},
            "errors": self.errors,
            "build_seconds": round(self.seconds, 1),
        }


def collect_candidates(
    names: Sequence[str], roots: Mapping[str, Path], settings: SourceSettings
) -> tuple[list[Candidate], dict[str, str]]:
    """Lists the candidates of each named source; a source that fails is reported, not fatal."""
    found, errors = [], {}
    for name in names:
        source = SOURCES[name]
        missing = [package for package in source.packages if package not in roots]
        if missing:
            errors[name] = f"package(s) not fetched: {', '.join(missing)}"
            continue
        try:
            listed = list(source.candidates(roots, settings))
        except (OSError, ValueError, KeyError, ImportError) as error:
            errors[name] = f"{type(error).__name__}: {error}"
            logger.error("source %s failed: %s", name, error)
            continue
        logger.info("%s: %d candidates", name, len(listed))
        found += listed
    return found, errors


def select(
    candidates: Iterable[Candidate],
    options: BuildOptions,
    english: EnglishWords | None,
    report: BuildReport,
) -> list[Candidate]:
    """Drops non-English captions, then caps items per concept and per source (seeded choice)."""
    kept, per_concept = [], defaultdict(list)
    for candidate in candidates:
        if not candidate.caption or not candidate.concept:
            report.dropped[candidate.source]["no_caption"] += 1
        elif (
            candidate.check_english
            and english is not None
            and not english.is_english(candidate.caption)
        ):
            report.dropped[candidate.source]["not_english"] += 1
        else:
            per_concept[candidate.source, candidate.concept].append(candidate)
    for (source, _), group in sorted(per_concept.items()):
        group.sort(key=lambda c: draw(options.seed, "keep", source, c.key))
        kept += group[: options.max_per_concept]
        if len(group) > options.max_per_concept:
            report.dropped[source]["concept_cap"] += len(group) - options.max_per_concept
    by_source = defaultdict(list)
    for candidate in kept:
        by_source[candidate.source].append(candidate)
    selected = []
    for source, group in sorted(by_source.items()):
        limit = options.max_items.get(source)
        if limit is not None and len(group) > limit:
            group.sort(key=lambda c: draw(options.seed, "keep", source, c.key))
            report.dropped[source]["source_cap"] += len(group) - limit
            group = group[:limit]
        selected += sorted(group, key=lambda c: c.key)
    return selected


def build_corpus(
    candidates: Iterable[Candidate],
    out: Path,
    options: BuildOptions | None = None,
    english: EnglishWords | None = None,
) -> BuildReport:
    """Writes the corpus for the candidates into ``out``; returns the report (also in ``summary.json``)."""
    options = options or BuildOptions()
    started = time.monotonic()
    out = Path(out)
    _prepare_folder(out)
    report = BuildReport(items=[])
    selected = select(candidates, options, english, report)
    # 1. normalise and write each item's media
    used_ids: set[str] = set()
    for number, candidate in enumerate(selected):
        item = _write_item(candidate, _unique_id(candidate, used_ids), out, report)
        if item is not None:
            report.items.append(item)
        if (number + 1) % 500 == 0:
            logger.info("normalised %d / %d", number + 1, len(selected))
    # 2. triples by concept, 3. splits, 4. manifest and summary
    report.items += join_by_concept(report.items, options.max_joins_per_concept, options.seed)
    report.items = assign_splits(
        report.items, options.heldout_concepts, options.heldout_items, options.seed
    )
    write_manifest(report.items, out)
    report.seconds = time.monotonic() - started
    (out / SUMMARY_NAME).write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    return report


def _prepare_folder(out: Path) -> None:
    # Media of an earlier build would linger beside a new manifest: clear them, but only in a
    # folder that holds a manifest (so a mistyped --out never deletes someone else's files).
    out.mkdir(parents=True, exist_ok=True)
    if (out / MANIFEST_NAME).is_file():
        for name in ("images", "sounds"):
            shutil.rmtree(out / name, ignore_errors=True)
        (out / MANIFEST_NAME).unlink()


def _unique_id(candidate: Candidate, used: set[str]) -> str:
    base = f"{candidate.source}-{slugify(candidate.key)}"
    item_id, number = base, 2
    while item_id in used:
        item_id, number = f"{base}-{number}", number + 1
    used.add(item_id)
    return item_id


def _write_item(candidate: Candidate, item_id: str, out: Path, report: BuildReport) -> Item | None:
    image_path = sound_path = image_side = None
    if candidate.image is not None:
        try:
            tile, image_side = image_tile(candidate.image)
            image_path = f"images/{candidate.source}/{item_id}.png"
            (out / image_path).parent.mkdir(parents=True, exist_ok=True)
            tile.save(out / image_path, optimize=True)
        except SkipItem as skip:
            report.dropped[candidate.source][f"image_{skip.reason}"] += 1
            logger.debug("%s %s: image %s", candidate.source, candidate.key, skip)
    if candidate.sound is not None:
        try:
            clip = sound_clip(candidate.sound, candidate.max_sound_seconds)
            sound_path = f"sounds/{candidate.source}/{item_id}.wav"
            (out / sound_path).parent.mkdir(parents=True, exist_ok=True)
            soundfile.write(out / sound_path, clip, SAMPLE_RATE, subtype="PCM_16")
        except SkipItem as skip:
            report.dropped[candidate.source][f"sound_{skip.reason}"] += 1
            logger.debug("%s %s: sound %s", candidate.source, candidate.key, skip)
    if image_path is None and sound_path is None:
        return None
    return Item(
        id=item_id,
        concept=candidate.concept,
        category=candidate.category,
        caption=candidate.caption,
        source=candidate.source,
        package=candidate.package,
        licence=candidate.licence,
        origin=candidate.origin,
        image=image_path,
        sound=sound_path,
        image_side=image_side,
    )
