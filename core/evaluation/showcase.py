"""The README's showcase: a contact sheet of images for fixed prompts and image→sound examples.

    python -m core.evaluation.showcase --corpus ~/.cache/fusion-studio/corpus --out assets/showcase

Writes ``contact_sheet.png`` (one tile per prompt, the prompt under it; with ``--seeds N``, N
tiles side by side, one per seed, to show how the pictures of a prompt vary; with ``--variants K``
the first of K variants ranked by ``best_first``, and ``contact_sheet_first.png`` beside it
with each prompt's first variant, what a one-image call gives) and, for a few held-out corpus
images that have a real sound, ``image_to_sound/<id>.png`` (the input), ``<id>.wav``
(the sound generated from the image alone) and ``<id>.real.wav`` (the item's own sound), plus
``showcase.json`` with the prompts, seeds and settings, so the whole folder can be remade.
"""

from __future__ import annotations

import argparse
import json
import textwrap
from pathlib import Path

import numpy as np
import soundfile
from PIL import Image, ImageDraw

from ..audio import SAMPLE_RATE, fit_length, prepare_waveform
from ..data.manifest import read_manifest
from ..media import load_image

# Everyday concepts that the corpus has pictures of (emoji, clip art, Tux Paint stamps).
PROMPTS = (
    "a red apple", "a cat", "a dog", "a red heart", "the sun", "a tree", "a car", "a house",
    "a yellow star", "a fish", "a flower", "a guitar", "a bicycle", "an umbrella", "a pizza", "a banana",
    "a rocket", "the moon", "a snowman", "a butterfly", "a bird", "a soccer ball", "a clock", "a key",
    "a balloon", "a crown", "a penguin", "a frog", "an airplane", "a sailboat", "a birthday cake", "a violin",
)
TILE, LABEL = 128, 30


def contact_sheet(images: list[Image.Image], labels: list[str], columns: int = 8) -> Image.Image:
    """Images in a grid, each with its label under it, on white."""
    rows = -(-len(images) // columns)
    sheet = Image.new("RGB", (columns * TILE, rows * (TILE + LABEL)), "white")
    draw = ImageDraw.Draw(sheet)
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        x, y = (index % columns) * TILE, (index // columns) * (TILE + LABEL)
        sheet.paste(image.convert("RGB").resize((TILE, TILE), Image.Resampling.NEAREST), (x, y))
        for line_index, line in enumerate(textwrap.wrap(label, 16)[:2]):
            draw.text((x + 3, y + TILE + 2 + 12 * line_index), line, fill="black")
    return sheet


def image_to_sound_items(corpus: Path, count: int) -> list:
    """Held-out items that have both an image and a real sound, one per concept, the first
    ``count`` concepts by item id."""
    items = sorted((i for i in read_manifest(corpus) if i.split != "train" and i.image and i.sound), key=lambda i: i.id)
    first = {}
    for item in items:
        first.setdefault(item.concept, item)
    return list(first.values())[:count]


def make_showcase(
    studio, corpus: Path, out: Path, sounds: int = 4, seed: int = 0, steps: int | None = None, variants: int = 1, seeds: int = 1
) -> dict:
    """Generates the contact sheet and the image→sound examples into ``out``; returns the settings written."""
    if seeds > 1 and variants > 1:
        raise ValueError("Show several seeds or the best of several variants, not both.")
    out.mkdir(parents=True, exist_ok=True)
    made = [studio.generate("image", text=prompt, seed=seed, steps=steps, num=max(variants, seeds), best_first=variants > 1) for prompt in PROMPTS]
    if seeds > 1:  # each variant i is what a one-image call with seed + i gives
        tiles = [image for m in made for image in m.outputs]
        labels = [f"{prompt} ({seed + i})" for prompt in PROMPTS for i in range(seeds)]
    else:
        tiles, labels = [m.outputs[0] for m in made], list(PROMPTS)
    contact_sheet(tiles, labels).save(out / "contact_sheet.png", optimize=True)
    if variants > 1:
        firsts = [m.outputs[m.recipe["order"].index(0)] for m in made]
        contact_sheet(firsts, list(PROMPTS)).save(out / "contact_sheet_first.png", optimize=True)
    folder = out / "image_to_sound"
    folder.mkdir(exist_ok=True)
    examples = []
    for item in image_to_sound_items(corpus, sounds):
        image = load_image(str(corpus / item.image))
        image.save(folder / f"{item.id}.png")
        rate, samples = studio.generate("audio", image=image, seed=seed, steps=steps).outputs[0]
        soundfile.write(folder / f"{item.id}.wav", np.asarray(samples, dtype=np.float32), rate, subtype="PCM_16")
        real = fit_length(prepare_waveform(str(corpus / item.sound)), 2 * SAMPLE_RATE)
        soundfile.write(folder / f"{item.id}.real.wav", real.astype(np.float32), SAMPLE_RATE, subtype="PCM_16")
        examples.append({"id": item.id, "caption": item.caption, "licence": item.licence, "source": item.source})
    settings = {
        "prompts": list(PROMPTS), "seed": seed, "steps": steps, "weights_version": studio.weights_version,
        "variants": variants, "seeds": seeds, "best_first": variants > 1, "chosen_seeds": [seed + m.recipe["order"][0] for m in made],
        "image_to_sound": examples,
    }
    (out / "showcase.json").write_text(json.dumps(settings, indent=2))
    return settings


def main(argv: list[str] | None = None) -> None:
    from .. import load_studio

    parser = argparse.ArgumentParser(description="Make the README's contact sheet and image→sound examples.")
    parser.add_argument("--corpus", type=Path, required=True, help="a corpus built by studio-data")
    parser.add_argument("--out", type=Path, default=Path("assets/showcase"))
    parser.add_argument("--studio", default="embedded", help="a preset name or a saved studio folder")
    parser.add_argument("--sounds", type=int, default=4, help="how many image→sound examples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None, help="diffusion steps (default: the studio's)")
    parser.add_argument("--variants", type=int, default=1, help="images per prompt; above 1, the best first goes on the sheet (default: %(default)s)")
    parser.add_argument("--seeds", type=int, default=1, help="tiles per prompt, one per seed (default: %(default)s)")
    args = parser.parse_args(argv)
    if not 1 <= args.variants <= 16 or not 1 <= args.seeds <= 4:
        parser.error("--variants takes 1 to 16 and --seeds 1 to 4.")
    make_showcase(load_studio(args.studio), args.corpus, args.out, args.sounds, args.seed, args.steps, args.variants, args.seeds)


if __name__ == "__main__":
    main()
