"""A user's own data for ``studio-train --data``, in the layout of the Hugging Face ``datasets``
folder builders (``imagefolder``, ``audiofolder``).

A folder holds the media and a ``metadata.jsonl`` (or ``metadata.csv``), one row per item::

    {"file_name": "cat.png", "text": "a grey cat"}
    {"image_file_name": "bell.png", "audio_file_name": "bell.wav", "text": "a church bell"}
    {"file_name": "rain.wav"}

``file_name`` is an image or a sound (told apart by its extension); ``image_file_name`` and
``audio_file_name`` pair a picture with a sound, as ``datasets`` reads ``<column>_file_name``;
``text`` (or ``caption``) is the item's caption. An item may hold any subset of the three. The
rows are read through ``datasets`` (streamed, so a metadata file larger than memory is fine);
for users who have the Hub, a dataset name is read the same way from its ``image``, ``audio``
and ``text``/``caption`` columns. Media are opened by the studio's own checked loaders: a file
that is missing, unreadable, huge or silent is reported with its path and left out, and the
item keeps what else it has.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..audio import SAMPLE_RATE, prepare_waveform
from ..media import load_image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff"}
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif"}
METADATA_FILES = ("metadata.jsonl", "metadata.csv")
MAX_CAPTION_CHARS = 1000


@dataclass
class UserItem:
    """One item: its caption, picture and sound (each may be missing) and where it came from."""

    where: str
    text: str | None = None
    image: Image.Image | None = None
    audio: tuple[int, np.ndarray] | None = None

    @property
    def modalities(self) -> list[str]:
        return [name for name in ("text", "image", "audio") if getattr(self, name) is not None]


@dataclass
class UserData:
    """Reads a folder or a dataset name item by item; ``problems`` lists what was left out."""

    source: str | Path
    problems: list[str] = field(default_factory=list)

    def __iter__(self) -> Iterator[UserItem]:
        folder = Path(self.source)
        if folder.is_dir():
            metadata = next((folder / name for name in METADATA_FILES if (folder / name).is_file()), None)
            if metadata is None:
                raise ValueError(f"{folder} has no metadata.jsonl or metadata.csv naming its files and captions (see core/data/user.py).")
            rows = _rows(metadata.suffix.lstrip(".").replace("jsonl", "json"), {"data_files": str(metadata)})
        elif folder.exists():
            raise ValueError(f"{folder} is a file; give a folder holding metadata.jsonl and the media it names.")
        else:
            rows = _hub_rows(str(self.source))
            folder = None
        for index, row in enumerate(rows):
            item = self._item(row, folder, f"{self.source} row {index + 1}")
            if item.modalities:
                yield item
            else:
                self.problems.append(f"{item.where}: nothing usable; left out")

    def _item(self, row: dict[str, Any], folder: Path | None, where: str) -> UserItem:
        item = UserItem(where=where)
        text = row.get("text", row.get("caption"))
        if isinstance(text, str) and text.strip():
            item.text = text.strip()[:MAX_CAPTION_CHARS]
        files = {"image": row.get("image_file_name", row.get("image")), "audio": row.get("audio_file_name", row.get("audio"))}
        single = row.get("file_name")
        if isinstance(single, str):
            suffix = Path(single).suffix.lower()
            kind = "image" if suffix in IMAGE_SUFFIXES else "audio" if suffix in AUDIO_SUFFIXES else None
            if kind is None:
                self.problems.append(f"{where}: {single} is neither an image nor a sound ({suffix or 'no extension'}); left out")
            else:
                files[kind] = single
        for kind, value in files.items():
            if value is None:
                continue
            try:
                if kind == "image":
                    item.image = load_image(_media(value, folder, kind))
                else:
                    item.audio = (SAMPLE_RATE, prepare_waveform(_media(value, folder, kind)))
            except (ValueError, OSError, RuntimeError) as error:  # soundfile's errors are RuntimeErrors
                self.problems.append(f"{where}: {_name(value)}: {error}")
        return item


def _rows(builder: str, options: dict[str, Any]) -> Iterator[dict[str, Any]]:
    from datasets import load_dataset

    return iter(load_dataset(builder, split="train", streaming=True, **options))


def _hub_rows(name: str) -> Iterator[dict[str, Any]]:
    """A Hub dataset's rows, its sounds left undecoded (the studio decodes them itself)."""
    from datasets import Audio, load_dataset

    try:
        rows = load_dataset(name, split="train", streaming=True)
    except Exception as error:  # offline, unknown name, private: say which and how
        raise ValueError(f"Could not open {name!r} as a folder or a Hub dataset ({error}); give a local folder with metadata.jsonl.") from error
    if rows.features is not None and "audio" in rows.features:
        rows = rows.cast_column("audio", Audio(decode=False))
    return iter(rows)


def _media(value: Any, folder: Path | None, kind: str) -> Any:
    """A metadata entry → what the studio's loaders open: a path inside ``folder``, a PIL image,
    encoded image bytes, or ``(rate, samples)``."""
    if isinstance(value, str):
        if folder is None:
            raise ValueError("a file name outside a folder")
        path = (folder / value).resolve()
        if folder.resolve() not in path.parents:
            raise ValueError("the path leaves the data folder")
        if not path.is_file():
            raise ValueError("no such file")
        return path
    if isinstance(value, Image.Image):
        return value
    if isinstance(value, dict):  # a datasets Image or Audio cell
        if value.get("array") is not None:
            return int(value["sampling_rate"]), np.asarray(value["array"])
        if value.get("bytes") and kind == "image":
            return value["bytes"]
        if value.get("bytes"):
            import soundfile

            samples, rate = soundfile.read(io.BytesIO(value["bytes"]), dtype="float32", always_2d=True)
            return int(rate), samples
        if value.get("path"):
            return _media(value["path"], folder, kind)
    raise ValueError(f"cannot read a {type(value).__name__} as a file")


def _name(value: Any) -> str:
    """How a problem report names a metadata entry: its path where it has one."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return value.get("path") or "an embedded file"
    return type(value).__name__
