"""What the tools that choose a setting on a run's training items share: their arguments, and
where their results go (dated files under ``docs/experiments/``, or the folder ``--out`` names)."""

from __future__ import annotations

import argparse
import json
from datetime import date
from pathlib import Path

from core.evaluation.cli import DEFAULT_CACHE

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "experiments"


def today() -> str:
    """Today's date, ``2026-12-05``: the prefix of a result's file names."""
    return date.today().isoformat()


def dated(name: str, day: str | None = None) -> str:
    """``2026-12-05-guidance``: ``name`` after ``day`` (today by default)."""
    return f"{day or today()}-{name}"


def add_training_item_arguments(parser: argparse.ArgumentParser, outputs: str) -> None:
    """``--corpus``, ``--run``, ``--studio`` and ``--out`` of the tools that choose a setting on
    a run's training items (the objective, the guidance), writing ``outputs`` with a date in front."""
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CACHE / "corpus", help="the corpus built by studio-data (default: %(default)s)")
    parser.add_argument("--run", type=Path, default=Path("runs/embedded"), help="the studio-train run whose cached training items to use")
    parser.add_argument("--studio", default="embedded", help="a preset name or a saved studio folder, whose models are used")
    parser.add_argument("--out", type=Path, default=None, help=f"folder for <date>-{outputs} (default: docs/experiments/)")


def results_folder(out: Path | None) -> Path:
    """``out``, or ``docs/experiments/`` of this checkout; made if missing."""
    out = out or RESULTS
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_result(out: Path | None, name: str, result: dict, text: str, day: str | None = None) -> Path:
    """Writes ``<day>-name.json`` and ``<day>-name.md`` (``text``) into ``out`` (by default
    ``docs/experiments/``), prints the text, and returns the files' path without a suffix."""
    stem = results_folder(out) / dated(name, day)
    stem.with_name(f"{stem.name}.json").write_text(json.dumps(result, indent=2))
    stem.with_name(f"{stem.name}.md").write_text(text, encoding="utf-8")
    print(text)
    return stem
