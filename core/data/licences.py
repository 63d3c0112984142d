"""Per-file licences from a Debian machine-readable ``copyright`` file (DEP-5)."""

from __future__ import annotations

import fnmatch
from pathlib import Path


def read_fields(paragraph: str) -> dict[str, str]:
    """The fields of one DEP-5 paragraph; continuation lines are joined with newlines."""
    fields, name = {}, None
    for line in paragraph.splitlines():
        if line[:1] in (" ", "\t") and name is not None:
            fields[name] += "\n" + line.strip()
        elif ":" in line:
            name, value = line.split(":", 1)
            fields[name] = value.strip()
    return fields


def read_copyright(path: Path) -> list[tuple[list[str], str]]:
    """The ``(file patterns, licence name)`` of each ``Files`` paragraph, in file order."""
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    stanzas = []
    for paragraph in text.split("\n\n"):
        fields = read_fields(paragraph)
        if "Files" in fields and "License" in fields:
            stanzas.append((fields["Files"].split(), fields["License"].splitlines()[0].strip()))
    return stanzas


def licence_for(relative_path: str, stanzas: list[tuple[list[str], str]], default: str) -> str:
    """The licence of the last stanza whose pattern matches ``relative_path`` (the DEP-5 rule)."""
    found = default
    for patterns, licence in stanzas:
        if any(fnmatch.fnmatchcase(relative_path, pattern) for pattern in patterns):
            found = licence
    return found
