"""The bundled example gallery: pictures and sounds of the training corpus, each with its caption.

The files in ``assets/examples/`` are copies of Tux Paint stamps (a 128x128 picture and a 2-s
sound each, GPL-2.0) as ``studio-data`` writes them into the corpus; ``make_examples`` copies
them again (``python -m studio.examples [--corpus FOLDER]``). They are concepts the studio
knows, so a first try on the page gives a fair idea of it. The app indexes them at start-up so
Search always has something to find, beside the user's history.
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from core.studio import ASSETS

EXAMPLES = ASSETS / "examples"
CORPUS = Path.home() / ".cache" / "fusion-studio" / "corpus"  # where studio-data writes it
CORPUS_ITEMS = {  # example key → corpus item id
    "red-apple": "tuxpaint-food-fruit-apple-red",
    "dog": "tuxpaint-animals-mammals-dogs-dog",
    "cow": "tuxpaint-animals-mammals-bovines-cow",
    "pig": "tuxpaint-animals-mammals-pig",
    "fire-truck": "tuxpaint-vehicles-emergency-firetruck",
    "bear": "tuxpaint-animals-mammals-bears-bear",
    "bassoon": "tuxpaint-hobbies-music-wind-bassoon",
}


@dataclass(frozen=True)
class Example:
    """One gallery item: its key, caption and files."""

    key: str
    caption: str
    image: Path
    audio: Path


def make_examples(folder: str | Path = EXAMPLES, corpus: str | Path = CORPUS) -> list[Example]:
    """Copies the picture and sound of each item of ``CORPUS_ITEMS`` from ``corpus`` into
    ``folder``, with ``examples.json`` naming each one's caption, source and licence."""
    from core.data.manifest import read_manifest

    corpus, folder = Path(corpus), Path(folder)
    items = {item.id: item for item in read_manifest(corpus)}
    missing = sorted(set(CORPUS_ITEMS.values()) - set(items))
    if missing:
        raise ValueError(f"The corpus in {corpus} lacks {missing}; build it with studio-data.")
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for key, item_id in CORPUS_ITEMS.items():
        item = items[item_id]
        image, audio = f"{key}{Path(item.image).suffix}", f"{key}{Path(item.sound).suffix}"
        shutil.copyfile(corpus / item.image, folder / image)
        shutil.copyfile(corpus / item.sound, folder / audio)
        entries.append({"key": key, "caption": item.caption, "image": image, "audio": audio,
                        "source": item.source, "package": item.package, "origin": item.origin, "licence": item.licence})
    (folder / "examples.json").write_text(json.dumps(entries, indent=1) + "\n", encoding="utf-8")
    return load_examples(folder)


def load_examples(folder: str | Path = EXAMPLES) -> list[Example]:
    """The examples listed in ``folder/examples.json``."""
    folder = Path(folder)
    entries = json.loads((folder / "examples.json").read_text(encoding="utf-8"))
    return [
        Example(key=e["key"], caption=e["caption"], image=folder / e["image"], audio=folder / e["audio"])
        for e in entries
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Copies the bundled examples from the training corpus.")
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="the corpus folder studio-data wrote")
    parser.add_argument("--out", type=Path, default=EXAMPLES)
    arguments = parser.parse_args()
    for example in make_examples(arguments.out, arguments.corpus):
        print(example.key, example.caption)
