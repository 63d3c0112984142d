"""128-px pictures from the 16x16 latent: the decoder that learned the corpus's 128-px tiles
against the 64-px decoder's picture enlarged (nearest and bicubic), on held-out pictures.

    python -m experiments.upscaling --corpus ~/.cache/fusion-studio/corpus --before OLD_VAE --after NEW_VAE

Each held-out picture whose drawing had at least 112 px in its source is encoded at 64 px, the
latent's mean decoded by both autoencoders, and the pictures compared with the 128-px tile:
mean absolute error in levels (0-255), PSNR, and the perceptual distance the autoencoder
stages train with (EfficientNet-Lite0 features). Writes ``<date>-upscaling.{json,md}`` and a
sheet of a few pictures (tile, enlarged, learned).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import AsymmetricAutoencoderKL, AutoencoderKL

from core.data.manifest import read_manifest
from core.decoders.image_autoencoder import (
    decode_latents,
    encode_images,
    images_to_pixels,
    pixels_to_images,
)
from core.evaluation.cli import DEFAULT_CACHE
from core.evaluation.showcase import contact_sheet
from core.training.image_autoencoder import PerceptualLoss
from core.training.stages import SHARP_SIDE
from experiments.common import dated, results_folder


def compare(before: AutoencoderKL, after: AsymmetricAutoencoderKL, paths: list[Path], batch: int = 32) -> tuple[dict, list]:
    perceptual = PerceptualLoss()
    totals: dict[str, dict[str, float]] = {}
    shown = []
    for start in range(0, len(paths), batch):
        chunk = paths[start : start + batch]
        small, target = images_to_pixels(chunk, size=64), images_to_pixels(chunk, size=128)
        with torch.no_grad():
            latents = encode_images(before, small)
            decoded = decode_latents(before, latents)
            made = {
                "64 px, enlarged (nearest)": F.interpolate(decoded, scale_factor=2, mode="nearest"),
                "64 px, enlarged (bicubic)": F.interpolate(decoded, scale_factor=2, mode="bicubic").clamp(-1, 1),
                "128 px decoder": decode_latents(after, latents),
            }
            for name, pixels in made.items():
                row = totals.setdefault(name, {"abs": 0.0, "mse": 0.0, "perceptual": 0.0})
                row["abs"] += float((pixels - target).abs().mean(dim=(1, 2, 3)).sum()) * 127.5
                row["mse"] += float(((pixels - target) * 127.5).square().mean(dim=(1, 2, 3)).sum())
                row["perceptual"] += float(perceptual(pixels, target)) * len(chunk)
        if start == 0:
            shown = [target[:6], made["64 px, enlarged (bicubic)"][:6], made["128 px decoder"][:6]]
    count = len(paths)
    table = {
        name: {"mean_abs_levels": row["abs"] / count, "psnr_db": 10 * math.log10(255**2 / (row["mse"] / count)), "perceptual": row["perceptual"] / count}
        for name, row in totals.items()
    }
    return table, shown


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CACHE / "corpus", help="a corpus of 128-px tiles (studio-data)")
    parser.add_argument("--before", type=Path, required=True, help="the 64-px autoencoder's folder")
    parser.add_argument("--after", type=Path, required=True, help="the 128-px autoencoder's folder")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    items = [i for i in read_manifest(args.corpus) if i.split != "train" and i.image and (i.image_side or 0) >= SHARP_SIDE and i.source != "join"]
    paths = [args.corpus / item.image for item in items]
    before = AutoencoderKL.from_pretrained(args.before, torch_dtype=torch.float32).eval()
    after = AsymmetricAutoencoderKL.from_pretrained(args.after, torch_dtype=torch.float32).eval()
    table, shown = compare(before, after, paths)
    out = results_folder(args.out)
    name = dated("upscaling")
    (out / f"{name}.json").write_text(json.dumps({"pictures": len(paths), "table": table}, indent=2))
    lines = [f"Held-out pictures: {len(paths)} (drawings of at least {SHARP_SIDE} px in their source), against their 128-px tiles.", "",
             "| picture | mean abs. error (levels) | PSNR (dB) | perceptual |", "| --- | --- | --- | --- |"]
    lines += [f"| {n} | {r['mean_abs_levels']:.2f} | {r['psnr_db']:.2f} | {r['perceptual']:.4f} |" for n, r in table.items()]
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")
    names = ("128-px tile", "64 px, bicubic", "128-px decoder")
    images = [image for pixels in shown for image in pixels_to_images(pixels)]
    sheet = contact_sheet(images, [name for name, pixels in zip(names, shown, strict=True) for _ in range(len(pixels))], columns=len(shown[0]))
    sheet.save(out / f"{name}.png")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
