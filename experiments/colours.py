"""Are colour words obeyed? "a <colour> <object>" for 8 colours and 12 objects.

    python -m experiments.colours [--studio embedded] [--seed 0]

Each picture's object pixels (those not near white) are sorted into the 8 colour words by hue,
saturation and value (brown is a dark orange or red, pink a light or magenta red; grey, black
and white pixels are left out); the word with the most pixels is the picture's dominant colour,
and the prompt is obeyed when it is the prompt's. Writes ``<date>-colours.{json,md,png}``: the
share obeyed, per colour and per object, and the grid.
"""

from __future__ import annotations

import argparse
import colorsys
import json
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from core import load_studio
from core.evaluation.showcase import contact_sheet
from experiments.common import dated, results_folder

COLOURS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown")
OBJECTS = ("apple", "car", "balloon", "star", "flower", "umbrella", "house", "fish", "bird", "cup", "hat", "ball")


def colour_word(h: float, s: float, v: float) -> str | None:
    """The colour word of one pixel in HSV (each in [0, 1]); None for grey, black and white."""
    if s < 0.25 or v < 0.2:
        return None
    degrees = 360 * h
    if (degrees < 15 or degrees >= 345) and s < 0.5 and v > 0.7:
        return "pink"
    if 10 <= degrees < 45 and v < 0.6:
        return "brown"
    if degrees < 15 or degrees >= 345:
        return "red"
    for word, end in (("orange", 40), ("yellow", 70), ("green", 170), ("blue", 260), ("purple", 300), ("pink", 345)):
        if degrees < end:
            return word
    return None


def dominant_colour(picture: Image.Image) -> str | None:
    """The colour word most of the picture's object pixels have (None if it has none)."""
    pixels = np.asarray(picture.convert("RGB")).reshape(-1, 3) / 255.0
    drawn = pixels[pixels.min(axis=1) < 0.9]  # not near white
    counts = Counter(colour_word(*colorsys.rgb_to_hsv(*p)) for p in drawn)
    counts.pop(None, None)
    return counts.most_common(1)[0][0] if counts else None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studio", default="embedded")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    studio = load_studio(args.studio)
    rows, pictures = [], []
    for colour in COLOURS:
        for thing in OBJECTS:
            pictures.append(studio.generate("image", text=f"a {colour} {thing}", seed=args.seed).outputs[0])
            found = dominant_colour(pictures[-1])
            rows.append({"colour": colour, "object": thing, "dominant": found, "obeyed": found == colour})
    sheet = contact_sheet(pictures, [f"{r['colour']} {r['object']}: {r['dominant']}" for r in rows], columns=len(OBJECTS))
    share = sum(row["obeyed"] for row in rows) / len(rows)
    by_colour = {colour: sum(r["obeyed"] for r in rows if r["colour"] == colour) for colour in COLOURS}
    by_object = {thing: sum(r["obeyed"] for r in rows if r["object"] == thing) for thing in OBJECTS}
    out = results_folder(args.out)
    stem = dated("colours")
    (out / f"{stem}.json").write_text(json.dumps({"studio": studio.weights_version, "seed": args.seed, "share": share, "rows": rows}, indent=2))
    lines = [f"\"a <colour> <object>\", seed {args.seed}: the dominant colour of the object's pixels is the prompt's in "
             f"{sum(r['obeyed'] for r in rows)} of {len(rows)} pictures ({100 * share:.0f}%).", "",
             "| colour | obeyed (of 12) |", "| --- | --- |", *[f"| {k} | {v} |" for k, v in by_colour.items()], "",
             "| object | obeyed (of 8) |", "| --- | --- |", *[f"| {k} | {v} |" for k, v in by_object.items()]]
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    sheet.save(out / f"{stem}.png")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
