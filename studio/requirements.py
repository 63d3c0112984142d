"""``requirements.txt`` for a Hugging Face Space, generated from ``pyproject.toml``.

A Space installs ``requirements.txt``; the project's dependencies live in ``pyproject.toml``.
Run ``python -m studio.requirements`` after changing them (``--check`` only compares, for CI).
The file points pip at torch's CPU wheel index, so a CPU Space (the free kind) installs torch
without the CUDA libraries (``2.14.1+cpu`` matches ``torch==2.14.1`` and is preferred); for a
GPU Space, ``--gpu`` leaves the line out.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEADER = (
    "# Generated from pyproject.toml by `python -m studio.requirements`; do not edit by hand.\n"
    "# A Hugging Face Space installs these (see the README's front matter).\n"
)
CPU_TORCH = "--extra-index-url https://download.pytorch.org/whl/cpu\n"


def requirements_text(pyproject: Path = ROOT / "pyproject.toml", gpu: bool = False) -> str:
    """The dependencies of ``pyproject.toml``, one a line, in its order, under a header (and, for
    a CPU Space, torch's CPU wheel index)."""
    dependencies = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"]
    return HEADER + ("" if gpu else CPU_TORCH) + "".join(f"{dependency}\n" for dependency in dependencies)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only say whether requirements.txt is current")
    parser.add_argument("--gpu", action="store_true", help="for a GPU Space: torch from PyPI, with CUDA")
    args = parser.parse_args(argv)
    target, wanted = ROOT / "requirements.txt", requirements_text(gpu=args.gpu)
    if args.check:
        current = target.read_text(encoding="utf-8") if target.exists() else ""
        if current != wanted:
            print("requirements.txt is out of date: run `python -m studio.requirements`.", file=sys.stderr)
            return 1
        return 0
    target.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
