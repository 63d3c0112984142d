"""The studio's browser page: weighted text, image and sound inputs, fused in the joint latent.

Handlers take and return plain values (strings, PIL images, numpy arrays, dicts) and call
the ``Studio`` facade; they never touch tensors. A ``ValueError`` from the facade becomes a
``gr.Error`` the user can read.
"""

from __future__ import annotations

import gradio as gr
import numpy as np
import pandas as pd

from core import Studio

TITLE = "Fusion Studio"
INTRO = (
    "Mix a text prompt, an image and a sound, each with a weight, and see the fused point in "
    "the joint latent space and how much each input pulls on it."
)


def fuse(
    studio: Studio,
    text: str | None,
    text_weight: float,
    image,
    image_weight: float,
    audio: tuple[int, np.ndarray] | None,
    audio_weight: float,
) -> tuple[dict[str, float], pd.DataFrame, str]:
    """Fuses the given inputs; returns the contribution meter, the latent as a table, a summary."""
    text = text if text and text.strip() else None
    weights = {"text": text_weight, "image": image_weight, "audio": audio_weight}
    try:
        encoding = studio.encode(text=text, image=image, audio=audio, weights=weights)
    except ValueError as error:
        raise gr.Error(str(error)) from error
    meter = dict(encoding.shares, prior=encoding.prior_share)
    latent = pd.DataFrame(
        {"dimension": np.arange(encoding.mu.shape[0]), "mean": encoding.mu, "sigma": np.exp(0.5 * encoding.logvar)}
    )
    summary = (
        f"Fused {', '.join(encoding.shares)} into a {encoding.mu.shape[0]}-d latent; "
        f"mean sigma {float(latent['sigma'].mean()):.3f}."
    )
    if not studio.is_trained:
        summary += " These are untrained weights: shares show the mechanics, not learned meaning."
    return meter, latent, summary


def build_ui(studio: Studio) -> gr.Blocks:
    """The Blocks page for ``studio``."""
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(f"# {TITLE}\n{INTRO}")
        with gr.Row():
            with gr.Column():
                text = gr.Textbox(label="Text", placeholder="a red fire truck")
                text_weight = gr.Slider(0, 4, value=1, step=0.05, label="Text weight")
                image = gr.Image(label="Image", type="pil", image_mode=None)
                image_weight = gr.Slider(0, 4, value=1, step=0.05, label="Image weight")
                audio = gr.Audio(label="Sound", type="numpy")
                audio_weight = gr.Slider(0, 4, value=1, step=0.05, label="Sound weight")
                button = gr.Button("Fuse", variant="primary")
            with gr.Column():
                meter = gr.Label(label="Each input's share of the fused latent")
                latent = gr.BarPlot(x="dimension", y="mean", title="Fused latent (mean per dimension)")
                summary = gr.Markdown()

        def on_fuse(text_value, text_w, image_value, image_w, audio_value, audio_w):
            """Fuses text, image and sound (each with a weight) into the joint latent."""
            return fuse(studio, text_value, text_w, image_value, image_w, audio_value, audio_w)

        button.click(
            on_fuse,
            inputs=[text, text_weight, image, image_weight, audio, audio_weight],
            outputs=[meter, latent, summary],
            api_name="fuse",
        )
    return demo
