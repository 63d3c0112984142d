"""The history of everything the studio made, kept on disk so it survives restarts.

Layout: one folder per item under ``<history folder>/items/``, named by a time-ordered id,
holding the item's files and ``item.json`` (its recipe, kind, shares, captions, the sha256 of
its input media and the size of every file).

Writes are atomic: an item is written into a hidden ``.tmp-<id>`` folder, each file is synced,
``item.json`` is written last, and the folder is renamed into place with ``os.replace``. A
process killed mid-write leaves only a hidden temporary folder, which the next start removes;
an item is either complete or absent. Eviction renames an item to a hidden ``.trash-<id>``
folder before deleting it, for the same reason.

Owners: an item may belong to one visitor (``owner``, an opaque key such as a hash of a
browser's token). Reading, finding media and deleting take an ``owner`` and then see only that
owner's items; ``owner=None`` sees every item (a local run with one user, and the tools).

Size caps: after each addition the owner's oldest items are evicted until the owner has at most
``max_items_per_owner`` items and ``max_bytes_per_owner`` bytes, then the oldest items of anyone
until at most ``max_items`` items and ``max_bytes`` bytes remain (the newest item is always kept,
even if it alone is larger). One studio process should own a history folder at a time.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DEFAULT_MAX_ITEMS = 500
DEFAULT_MAX_BYTES = 1_000_000_000  # 1 GB
ITEM_FILE = "item.json"
FileSource = bytes | str | os.PathLike | Callable[[Path], None]


def default_folder() -> Path:
    """``<user data dir>/fusion-studio/history`` (e.g. ``~/.local/share/fusion-studio/history``)."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("fusion-studio", appauthor=False)) / "history"


@dataclass(frozen=True)
class HistoryItem:
    """One saved result: its id (time-ordered), folder, metadata and files (name → bytes)."""

    id: str
    folder: Path
    meta: dict[str, Any]
    files: dict[str, int]

    @property
    def created(self) -> str:
        return self.meta.get("created", "")

    @property
    def recipe(self) -> dict[str, Any]:
        return self.meta.get("recipe", {})

    @property
    def size(self) -> int:
        return sum(self.files.values())

    @property
    def owner(self) -> str | None:
        return self.meta.get("owner")

    def belongs_to(self, owner: str | None) -> bool:
        """Whether ``owner`` may see this item (``None`` sees every item)."""
        return owner is None or self.owner == owner

    def path(self, name: str) -> Path:
        if name not in self.files:
            raise KeyError(f"History item {self.id} has no file {name!r}.")
        return self.folder / name

    @property
    def outputs(self) -> list[Path]:
        """The result's files in order (items saved before they were named from the prompt: ``output-N``)."""
        names = self.meta.get("outputs") or sorted(
            (name for name in self.files if name.startswith("output-")), key=lambda name: int(re.sub(r"\D", "", name) or 0)
        )
        return [self.folder / name for name in names if name in self.files]


class History:
    """Saved results in ``folder``, newest last, capped by count and bytes (oldest evicted first)."""

    def __init__(
        self,
        folder: str | os.PathLike | None = None,
        max_items: int = DEFAULT_MAX_ITEMS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_items_per_owner: int | None = None,
        max_bytes_per_owner: int | None = None,
    ):
        self.max_items, self.max_bytes = int(max_items), int(max_bytes)
        self.max_items_per_owner = min(self.max_items, int(max_items_per_owner or max_items))
        self.max_bytes_per_owner = min(self.max_bytes, int(max_bytes_per_owner or max_bytes))
        if min(self.max_items, self.max_bytes, self.max_items_per_owner, self.max_bytes_per_owner) < 1:
            raise ValueError(f"The history needs room for at least one item, got max_items={max_items}, max_bytes={max_bytes}.")
        self.folder = Path(folder) if folder is not None else default_folder()
        self._lock = threading.RLock()
        self._items_folder.mkdir(parents=True, exist_ok=True)
        self._remove_leftovers()
        self._items: dict[str, HistoryItem] = {}
        for folder in sorted(self._items_folder.iterdir()):
            item = self._load(folder)
            if item is not None:
                self._items[item.id] = item

    @property
    def _items_folder(self) -> Path:
        return self.folder / "items"

    # --- reading ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, item_id: str) -> bool:
        return item_id in self._items

    @property
    def total_bytes(self) -> int:
        return sum(item.size for item in self._items.values())

    def total_bytes_of(self, owner: str | None) -> int:
        return sum(item.size for item in self.items(owner=owner))

    def items(self, newest_first: bool = True, limit: int | None = None, owner: str | None = None) -> list[HistoryItem]:
        """The items ``owner`` may see (all with ``None``), newest first unless told otherwise."""
        with self._lock:
            ordered = sorted((item for item in self._items.values() if item.belongs_to(owner)), key=lambda item: item.id, reverse=newest_first)
        return ordered[:limit] if limit is not None else ordered

    def get(self, item_id: Any, owner: str | None = None) -> HistoryItem:
        """The item ``item_id`` if ``owner`` may see it; another owner's item is as absent as a missing one."""
        item = self._items.get(item_id) if isinstance(item_id, str) else None
        if item is None or not item.belongs_to(owner):
            raise ValueError("No such history item; it may have been deleted or evicted.")
        return item

    def find_media(self, sha256: str, owner: str | None = None) -> Path | None:
        """A saved input file of ``owner``'s items whose content hashes to ``sha256`` (see ``item.json``'s ``media``), if any."""
        for item in self.items(owner=owner):
            for entry in item.meta.get("media", []):
                if entry.get("sha256") == sha256 and entry.get("file") in item.files:
                    return item.path(entry["file"])
        return None

    # --- writing ------------------------------------------------------------------------------

    def add(self, meta: dict[str, Any], files: dict[str, FileSource], owner: str | None = None) -> HistoryItem:
        """Writes one item atomically, then evicts the oldest items beyond the caps.

        Args:
            meta: JSON-serialisable metadata (recipe, kind, ...); ``id`` and ``created`` are added.
            files: file name → bytes, a path to copy, or a function that writes the given path.
            owner: the visitor the item belongs to (``None``: everyone's, as in a local run).
        """
        item_id = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        for name in files:
            if name == ITEM_FILE or "/" in name or "\\" in name or name.startswith("."):
                raise ValueError(f"Bad history file name {name!r}.")
        temporary = self._items_folder / f".tmp-{item_id}"
        temporary.mkdir()
        try:
            sizes = {}
            for name, source in files.items():
                sizes[name] = _write_file(temporary / name, source)
            meta = {**meta, "id": item_id, "created": datetime.now(UTC).isoformat(timespec="seconds"), "files": sizes}
            if owner is not None:
                meta["owner"] = owner
            _write_file(temporary / ITEM_FILE, json.dumps(meta, indent=1, sort_keys=True).encode("utf-8"))
            final = self._items_folder / item_id
            os.replace(temporary, final)
            _sync_folder(self._items_folder)
        except BaseException:
            shutil.rmtree(temporary, ignore_errors=True)
            raise
        item = HistoryItem(id=item_id, folder=final, meta=meta, files=sizes)
        with self._lock:
            self._items[item_id] = item
            self._evict(keep=item_id)
        return item

    def delete(self, item_id: Any, owner: str | None = None) -> None:
        """Removes one item that ``owner`` may see (renamed to a hidden folder first, so a crash
        never leaves half of it); unknown ids and other owners' items are left alone."""
        with self._lock:
            item = self._items.get(item_id) if isinstance(item_id, str) else None
            if item is None or not item.belongs_to(owner):
                return
            del self._items[item_id]
        if item is not None:
            trash = self._items_folder / f".trash-{item_id}"
            os.replace(item.folder, trash)
            shutil.rmtree(trash, ignore_errors=True)

    def _evict(self, keep: str) -> None:
        owner = self._items[keep].owner
        if owner is not None:  # first the owner's own oldest, so one visitor cannot empty everyone's history
            self._evict_from(self.items(newest_first=False, owner=owner), keep, self.max_items_per_owner, self.max_bytes_per_owner)
        self._evict_from(self.items(newest_first=False), keep, self.max_items, self.max_bytes)

    def _evict_from(self, oldest_first: list[HistoryItem], keep: str, max_items: int, max_bytes: int) -> None:
        total = sum(item.size for item in oldest_first)
        count = len(oldest_first)
        for item in oldest_first:
            if count <= max_items and total <= max_bytes:
                break
            if item.id == keep:
                continue
            self.delete(item.id)
            count, total = count - 1, total - item.size

    # --- start-up -----------------------------------------------------------------------------

    def _remove_leftovers(self) -> None:
        """Deletes what a killed process left: unfinished ``.tmp-*`` and ``.trash-*`` folders."""
        for folder in self._items_folder.iterdir():
            if folder.name.startswith((".tmp-", ".trash-")):
                shutil.rmtree(folder, ignore_errors=True)

    def _load(self, folder: Path) -> HistoryItem | None:
        if folder.name.startswith(".") or not folder.is_dir():
            return None
        try:
            meta = json.loads((folder / ITEM_FILE).read_text("utf-8"))
            files = {name: int(size) for name, size in meta["files"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None  # not an item of ours; left alone
        return HistoryItem(id=folder.name, folder=folder, meta=meta, files=files)


def _write_file(path: Path, source: FileSource) -> int:
    if isinstance(source, bytes):
        with path.open("wb") as handle:
            handle.write(source)
            handle.flush()
            os.fsync(handle.fileno())
    elif isinstance(source, (str, os.PathLike)):
        shutil.copyfile(source, path)
        _sync_file(path)
    else:
        source(path)
        _sync_file(path)
    return path.stat().st_size


def _sync_file(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def _sync_folder(folder: Path) -> None:
    # the rename itself must reach the disk for an item to survive a power cut
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
