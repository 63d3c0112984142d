"""Do captions hold broken words, with and without the decoder's word list?

Captions (beam search, the studio's default) of held-out images (every seventh-or-so, 150)
and held-out sounds (the first 60) of the corpus, once with the caption decoder's word list
switched off and once with it. A word is broken when neither the English word list of
Debian's ``wamerican`` (fetched by ``studio-data``) nor the training captions hold it.
Also counts how many captions changed, and how many share a word of three letters or more
with the item's own caption.

    python experiments/caption_words.py --out docs/experiments/2026-12-04-caption-words.json
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from core import load_studio
from core.data.manifest import read_manifest

CACHE = Path.home() / ".cache/fusion-studio"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=CACHE / "corpus")
    parser.add_argument("--words", type=Path, default=CACHE / "packages/wamerican/usr/share/dict/american-english")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    heldout = [item for item in read_manifest(args.corpus) if item.split != "train"]
    images = [item for item in heldout if item.image]
    images = images[:: max(1, len(images) // 150)][:150]
    sounds = [item for item in heldout if item.sound][:60]
    english = {line.strip().lower() for line in args.words.read_text(encoding="utf-8", errors="ignore").splitlines()}
    studio = load_studio("embedded")
    decoder = studio.pipeline.caption_decoder
    lexicon, known = decoder.lexicon, set(decoder.lexicon.words)
    captions = {}
    for mode in ("without", "with"):
        decoder.lexicon = lexicon if mode == "with" else None
        captions[mode] = {
            "image": [studio.caption(image=str(args.corpus / i.image)).outputs[0] for i in images],
            "sound": [studio.caption(audio=str(args.corpus / i.sound)).outputs[0] for i in sounds],
        }
    decoder.lexicon = lexicon
    summary = {}
    for kind, items in (("image", images), ("sound", sounds)):
        references = [i.caption for i in items]
        row = {"captions": len(items), "changed": sum(a != b for a, b in zip(captions["without"][kind], captions["with"][kind], strict=True))}
        for mode in ("without", "with"):
            made = captions[mode][kind]
            row[f"broken_{mode}"] = [c for c in made if any(w not in english and w not in known for w in re.findall(r"[a-z]+", c))]
            row[f"share_a_word_{mode}"] = sum(
                any(w in c.split() for w in r.split() if len(w) > 2) for r, c in zip(references, made, strict=True)
            )
        summary[kind] = row
        print(kind, json.dumps(row))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"summary": summary, "captions": captions, "references": {
        "image": [i.caption for i in images], "sound": [i.caption for i in sounds]}}, indent=1))


if __name__ == "__main__":
    main()
