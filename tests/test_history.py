"""The history on disk: atomic items, restarts, a kill mid-write, and oldest-first eviction."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from studio.history import ITEM_FILE, History, default_folder

ROOT = Path(__file__).resolve().parent.parent


def add(history: History, n: int, size: int = 10) -> list[str]:
    return [history.add({"kind": "generate", "n": i}, {"output-0.png": bytes(size), "thumb.png": b"t"}).id for i in range(n)]


def test_items_survive_a_restart_in_order(tmp_path):
    history = History(tmp_path)
    ids = add(history, 3)
    item = history.get(ids[1])
    assert item.meta["n"] == 1 and item.files == {"output-0.png": 10, "thumb.png": 1}
    assert json.loads((item.folder / ITEM_FILE).read_text())["id"] == ids[1]
    reopened = History(tmp_path)
    assert [i.id for i in reopened.items()] == ids[::-1]  # newest first
    assert reopened.get(ids[0]).path("output-0.png").read_bytes() == bytes(10)


def test_eviction_is_oldest_first_by_count_and_by_bytes(tmp_path):
    by_count = History(tmp_path / "count", max_items=3)
    ids = add(by_count, 5)
    assert [i.id for i in by_count.items(newest_first=False)] == ids[2:]
    assert sorted(p.name for p in (tmp_path / "count" / "items").iterdir()) == ids[2:]
    by_bytes = History(tmp_path / "bytes", max_bytes=250)
    ids = add(by_bytes, 4, size=100)  # 101 bytes each: two fit
    assert [i.id for i in by_bytes.items(newest_first=False)] == ids[2:]
    assert by_bytes.total_bytes <= 250
    huge = by_bytes.add({}, {"big.bin": bytes(1000)})  # the newest item is kept even alone over the cap
    assert [i.id for i in by_bytes.items()] == [huge.id]


def test_media_are_found_by_hash_and_items_can_be_deleted(tmp_path):
    history = History(tmp_path)
    item = history.add({"media": [{"role": "image", "file": "input-image.png", "sha256": "abc"}]}, {"input-image.png": b"png"})
    assert history.find_media("abc") == item.path("input-image.png")
    assert history.find_media("zzz") is None
    history.delete(item.id)
    assert history.find_media("abc") is None and len(History(tmp_path)) == 0


def test_bad_names_and_leftovers(tmp_path):
    history = History(tmp_path)
    for name in ("../escape", ITEM_FILE, ".hidden"):
        with pytest.raises(ValueError, match="Bad history file name"):
            history.add({}, {name: b"x"})
    (tmp_path / "items" / ".tmp-123").mkdir()
    (tmp_path / "items" / ".tmp-123" / "output-0.png").write_bytes(b"half")
    (tmp_path / "items" / "not-an-item").mkdir()
    reopened = History(tmp_path)
    assert not (tmp_path / "items" / ".tmp-123").exists() and len(reopened) == 0
    assert (tmp_path / "items" / "not-an-item").exists()  # a folder that is not ours is left alone
    with pytest.raises(ValueError, match="evicted"):
        reopened.get("nope")


def test_the_default_folder_is_in_the_user_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_folder() == tmp_path / "fusion-studio" / "history"


WRITER = """
import sys
from studio.history import History
history = History(sys.argv[1], max_items=40)
print("ready", flush=True)
while True:
    history.add({"kind": "generate"}, {f"output-{i}.png": bytes(200_000) for i in range(4)})
"""


def test_a_kill_mid_write_loses_or_corrupts_nothing(tmp_path):
    """SIGKILL a process that writes items non-stop, three times; every item left is whole."""
    for attempt in range(3):
        process = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE)
        assert process.stdout.readline().strip() == b"ready"
        time.sleep(0.3 + 0.17 * attempt)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        history = History(tmp_path, max_items=40)
        assert len(history) > 0
        for item in history.items():
            assert sorted(item.files) == [f"output-{i}.png" for i in range(4)]
            assert all(item.path(name).stat().st_size == 200_000 for name in item.files)
        assert not [p for p in (tmp_path / "items").iterdir() if p.name.startswith(".")]


def test_owners_see_find_and_delete_only_their_own_items(tmp_path):
    history = History(tmp_path)
    media = {"media": [{"role": "image", "file": "input-image.png", "sha256": "abc"}]}
    mine = history.add(dict(media), {"input-image.png": b"mine"}, owner="browser:a")
    theirs = history.add(dict(media), {"input-image.png": b"theirs"}, owner="browser:b")
    assert [i.id for i in history.items(owner="browser:a")] == [mine.id]
    assert {i.id for i in history.items()} == {mine.id, theirs.id}  # a local run sees everything
    with pytest.raises(ValueError, match="No such history item"):
        history.get(theirs.id, owner="browser:a")
    assert history.find_media("abc", owner="browser:a").read_bytes() == b"mine"
    assert history.find_media("abc", owner="browser:c") is None
    history.delete(theirs.id, owner="browser:a")  # not theirs to delete: nothing happens
    assert theirs.id in history
    assert History(tmp_path).get(mine.id, owner="browser:a").owner == "browser:a"  # the owner survives a restart


def test_one_visitor_fills_only_their_own_share(tmp_path):
    history = History(tmp_path, max_items=10, max_bytes=10_000, max_items_per_owner=3, max_bytes_per_owner=1_000)
    others = [history.add({}, {"f": bytes(100)}, owner="browser:other").id for _ in range(2)]
    flood = [history.add({}, {"f": bytes(400)}, owner="browser:flood").id for _ in range(6)]
    assert [i.id for i in history.items(owner="browser:other", newest_first=False)] == others
    assert [i.id for i in history.items(owner="browser:flood", newest_first=False)] == flood[-2:]  # 800 bytes of 1,000
    huge = history.add({}, {"f": bytes(5_000)}, owner="browser:flood")  # alone over the visitor's cap: kept, theirs evicted
    assert [i.id for i in history.items(owner="browser:flood")] == [huge.id] and len(history.items(owner="browser:other")) == 2
