"""What the shipped embedded weights make, checked as an artist would see it: clean white corners,
sounds under full scale at one loudness, captions in whole words."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import core
from core.audio import PEAK_CEILING, loudness_db
from core.decoders.whole_words import caption_words

pytestmark = pytest.mark.slow  # every test here uses the real embedded studio

SHOWCASE = json.loads((core.studio.ASSETS / "showcase" / "showcase.json").read_text())["prompts"]
EXAMPLES = sorted((core.studio.ASSETS / "examples").glob("*.png"))
CORNER = 8  # a corner patch's side, in 64ths of the image's


def corners(image) -> np.ndarray:
    """The four corner patches of an image (each ``CORNER`` / 64 of its side), ``[4, c, c, 3]``."""
    a = np.asarray(image).astype(int)
    c = CORNER * a.shape[0] // 64
    return np.stack([a[:c, :c], a[:c, -c:], a[-c:, :c], a[-c:, -c:]])


def test_the_autoencoder_keeps_flat_white_white(studio):
    vae = studio.pipeline.image_vae
    with torch.no_grad():
        white = vae.decode(vae.encode(torch.ones(1, 3, 64, 64)).latent_dist.mean).sample  # (1, 3, 128, 128)
    assert white.shape[-1] == 128, "the shipped decoder makes 128-px pictures from the 16x16 latent"
    shortfall = 255 - ((white.clamp(-1, 1) + 1) * 127.5).round()[0].permute(1, 2, 0).numpy()  # (128, 128, 3) levels under white
    assert shortfall.mean() <= 0.5
    assert (255 - corners(255 - shortfall)).mean(axis=(1, 2)).max() <= 2, "speckle: a corner of a white picture came back tinted"


def test_generated_pictures_on_white_have_clean_corners(studio):
    on_white = 0
    for prompt in SHOWCASE[:16]:
        for patch in corners(studio.generate("image", text=prompt, seed=0).outputs[0]):
            # the drawing itself (a tail reaching the corner) has dark pixels; speckle is light and coloured
            if np.median(patch) < 250 or (patch < 160).all(-1).any():
                continue
            on_white += 1
            shortfall = (255 - patch).mean(axis=(0, 1)).max()  # the patch's mean, in its worst channel
            assert shortfall <= 4, f"{prompt!r}: a white corner is {shortfall:.1f} levels short of white"
    assert on_white >= 40  # of 64 corners


def test_generated_sounds_are_unclipped_and_level_between_seeds(studio):
    for example in EXAMPLES[:2]:
        sounds = [wave for _, wave in studio.generate("audio", image=str(example), seed=0, num=3).outputs]
        assert all(np.abs(wave).max() < PEAK_CEILING + 1e-6 for wave in sounds)  # no sample reaches full scale
        levels = [loudness_db(wave) for wave in sounds]
        assert max(levels) - min(levels) <= 3.0, f"{example.name}: loudness {levels} dB"


def test_captions_are_whole_known_words(studio):
    decoder = studio.pipeline.caption_decoder
    known = set(decoder.lexicon.words)
    images = [studio.generate("image", text=prompt, seed=1).outputs[0] for prompt in SHOWCASE]
    captions = [studio.caption(image=image).outputs[0] for image in images]
    captions += [studio.caption(image=str(path)).outputs[0] for path in EXAMPLES]
    captions += [studio.caption(audio=str(path.with_suffix(".wav"))).outputs[0] for path in EXAMPLES]
    captions += studio.caption(image=images[0], method="sample", num=8).outputs
    assert len(captions) == len(SHOWCASE) + 2 * len(EXAMPLES) + 8 and all(captions)
    assert [word for word in caption_words(decoder.tokenizer, captions) if word not in known] == []


def test_the_bundled_examples_are_described_as_what_they_are(studio):
    """The page's first examples are concepts the studio knows: picture and sound each captioned with a word of the example's caption."""
    from studio.examples import load_examples

    for example in load_examples():
        words = {word for word in example.caption.split() if len(word) > 2}
        for made in (studio.caption(image=str(example.image)).outputs[0], studio.caption(audio=str(example.audio)).outputs[0]):
            assert words & set(made.split()), f"{example.key}: {made!r}"
