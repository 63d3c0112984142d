"""Openclipart (Debian ``openclipart-svg`` and ``openclipart-png``): public-domain clip art with titles.

Layout: ``usr/share/openclipart/svg/<category>/.../<name>.svg`` carrying ``<dc:title>`` in
its metadata, and the same path under ``png/`` as a ready-rendered PNG (used unless it is
huge; then the SVG is rendered).

Titles are noisy: many are a collection's name shared by hundreds of files ("gramastar",
"Lemon SVG theme"), or another file's title ("contour_chipmunk" on the orangutan), and some
are Italian. So: a title is used when it is English and either unique to its file or made
of words found in the file's path; otherwise the file name is used, without the digits and
the author's name it often ends with ("papers_francesco_rolland_" → "papers"), if that is
English. Files with neither are dropped.
"""

from __future__ import annotations

import html
import re
import warnings
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path

from PIL import Image

from ..candidate import Candidate, SourceSettings
from ..text import EnglishWords, concept_of, split_words

SVG_PACKAGE, PNG_PACKAGE = "openclipart-svg", "openclipart-png"
PACKAGES = (SVG_PACKAGE, PNG_PACKAGE)
LICENCE = "public domain"
SVG_DIR, PNG_DIR = Path("usr/share/openclipart/svg"), Path("usr/share/openclipart/png")
_TITLE = re.compile(r"<dc:title>(.*?)</dc:title>", re.S)
_TITLE_PREFIXES = re.compile(r"^\s*clipart by [^-]+ - ", re.I)  # "Clipart by Nicu Buculei - pear"
MAX_PNG_PIXELS = 4096 * 4096
CATEGORY_NAMES = {
    "signs_and_symbols": "symbols",
    "transportation": "vehicles",
    "recreation": "activities",
}


def candidates(roots: Mapping[str, Path], settings: SourceSettings) -> Iterator[Candidate]:
    """One image+text candidate per SVG whose title or file name gives an English caption."""
    english = settings.english
    if english is None:
        raise ValueError(
            "Openclipart needs an English word list (SourceSettings.english) to pick captions."
        )
    svg_root = roots[SVG_PACKAGE] / SVG_DIR
    png_root = roots[PNG_PACKAGE] / PNG_DIR if PNG_PACKAGE in roots else None
    titles = {path: read_title(path) for path in sorted(svg_root.rglob("*.svg"))}
    shared = Counter(titles.values())
    for path, title in titles.items():
        relative = path.relative_to(svg_root).with_suffix("")
        caption = pick_caption(relative, title, shared[title], english)
        if not caption:
            continue
        png = png_root / relative.with_suffix(".png") if png_root is not None else None
        image = png if png is not None and is_small_raster(png) else path
        yield Candidate(
            source="openclipart",
            key=relative.as_posix(),
            caption=caption,
            concept=concept_of(caption),
            category=CATEGORY_NAMES.get(relative.parts[0], relative.parts[0]),
            package=PNG_PACKAGE if image is png else SVG_PACKAGE,
            licence=LICENCE,
            origin=(
                PNG_DIR / relative.with_suffix(".png")
                if image is png
                else SVG_DIR / relative.with_suffix(".svg")
            ).as_posix(),
            image=image,
            check_english=True,
        )


def is_small_raster(path: Path) -> bool:
    """True for a PNG that exists and is cheap to decode (a few are 10,000 x 16,000: use the SVG)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                return image.width * image.height <= MAX_PNG_PIXELS
    except (OSError, Image.DecompressionBombError):
        return False


def read_title(path: Path) -> str:
    """The ``<dc:title>`` of an SVG file, unescaped, or an empty string."""
    match = _TITLE.search(path.read_text(encoding="utf-8", errors="replace"))
    return html.unescape(match.group(1)).strip() if match else ""


def pick_caption(relative: Path, title: str, title_count: int, english: EnglishWords) -> str:
    """The title if it is trustworthy English, else the cleaned file name if English, else ''."""
    words = split_words(_TITLE_PREFIXES.sub("", title))
    where = relative.as_posix().lower().replace("_", "").replace("-", "")
    in_path = all(word in where for word in words)
    if words and (title_count == 1 or in_path) and english.is_english(" ".join(words)):
        return " ".join(words)
    words = english.strip_trailing_names(split_words(relative.name))
    caption = " ".join(words)
    return caption if english.is_english(caption) else ""
