"""Emoji (Noto, from npm ``emoji-datasource-google``): 64x64 images named by their Unicode names.

Layout: ``package/emoji.json`` (a list of ``{name, short_name, image, category, ...}``) and
``package/img/google/64/<image>``. Skin-tone variants, the ``Component`` category (bare
skin-tone and hair swatches) and names that spell out a CJK character are left out. Names
are Unicode's English names, so they skip the word-list check (which would also drop
"superhero", "falafel" and "face savouring delicious food").
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

from ..candidate import Candidate, SourceSettings
from ..text import clean_caption, concept_of

PACKAGE = "emoji-datasource-google"
PACKAGES = (PACKAGE,)
LICENCE = "Apache-2.0 (image), MIT (name)"
SKIPPED_CATEGORIES = {"Component"}
# Names that spell out a CJK character instead of saying what it shows ("squared cjk unified ideograph-7533").
UNREADABLE_NAMES = re.compile(r"\b(cjk|ideograph|katakana|hiragana)\b", re.I)
CATEGORY_NAMES = {
    "Smileys & Emotion": "smileys",
    "People & Body": "people",
    "Animals & Nature": "animals",
    "Food & Drink": "food",
    "Travel & Places": "places",
    "Activities": "activities",
    "Objects": "objects",
    "Symbols": "symbols",
    "Flags": "flags",
}


def candidates(roots: Mapping[str, Path], settings: SourceSettings) -> Iterator[Candidate]:
    """One image+text candidate per emoji that has a Google image."""
    root = roots[PACKAGE] / "package"
    entries = json.loads((root / "emoji.json").read_text(encoding="utf-8"))
    for entry in sorted(entries, key=lambda entry: entry.get("sort_order", 0)):
        if entry.get("category") in SKIPPED_CATEGORIES or not entry.get("has_img_google", True):
            continue
        name = entry.get("name") or entry.get("short_name", "").replace("_", " ")
        image = root / "img" / "google" / "64" / entry["image"]
        if not name or not image.is_file() or UNREADABLE_NAMES.search(name):
            continue
        caption = clean_caption(name)
        yield Candidate(
            source="emoji",
            key=Path(entry["image"]).stem,
            caption=caption,
            concept=concept_of(caption),
            category=CATEGORY_NAMES.get(entry.get("category", ""), "symbols"),
            package=PACKAGE,
            licence=LICENCE,
            origin=f"package/img/google/64/{entry['image']}",
            image=image,
        )
