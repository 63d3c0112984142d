"""The public endpoints' parameters, described for ``view_api()`` and MCP: what each means, its
JSON Schema type (whole numbers as integers) and a real example."""

from __future__ import annotations

from typing import Any

from .service import (
    MAX_FRAMES,
    MAX_GUIDANCE,
    MAX_HITS,
    MAX_SEED,
    MAX_STEPS,
    MAX_TEMPERATURE,
    MAX_TEXT_CHARS,
    MAX_VARIANTS,
    MAX_WEIGHT,
)


def _api(component, description: str, whole: bool = False, example: Any = None):
    """Describes an API parameter for ``view_api()`` and MCP (its JSON Schema, whole numbers as integers, a real example)."""
    info = {**component.api_info_as_input(), "description": description, "additional_description": description}
    if whole:
        info["type"] = "integer"
    component.api_info_as_input = lambda: info
    if example is not None:
        component.example_inputs = lambda: example
    return component


def document_api(a: dict, d: dict, h: dict, s: dict, m: dict) -> None:
    """Parameter descriptions, types and examples of the public endpoints, shared by the API and MCP."""
    media = " (API: a file handle or URL; MCP: an http(s) URL or a data: URI)"
    _api(a["text"], f"a prompt, at most {MAX_TEXT_CHARS:,} characters", example="a red fire truck")
    for name in ("text_weight", "image_weight", "audio_weight"):
        _api(a[name], f"the {name.split('_')[0].replace('audio', 'sound')}'s weight, 0 to {MAX_WEIGHT:g} (0 leaves it out)", example=1.0)
    _api(a["image"], "an image" + media)
    _api(a["audio"], "a sound" + media)
    _api(a["output"], 'what to make: "image", "sound" or "caption"', example="image")
    _api(a["seed"], f"fixes the randomness, 0 to {MAX_SEED} (variant i uses seed + i)", whole=True, example=42)
    _api(a["steps"], f"denoising steps, 1 to {MAX_STEPS}", whole=True, example=25)
    _api(a["guidance"], f"classifier-free guidance, 0 to {MAX_GUIDANCE:g}", example=7.0)
    _api(a["variants"], f"how many outputs, 1 to {MAX_VARIANTS}", whole=True, example=2)
    _api(a["best_first"], "order the outputs by how well each matches the inputs", example=False)
    _api(a["temperature"], f"variety, 0 to {MAX_TEMPERATURE:g}", example=0.0)
    _api(a["use_image_prior"], "snap images to the nearest training picture", example=True)
    _api(a["limit"], "how many history items, 1 to 1000", whole=True, example=20)
    _api(a["recipe_in"], "a studio recipe (a JSON object), from /read_recipe or a result",
         example={"kind": "generate", "output": "image", "inputs": {"text": "a red fire truck"}, "weights": {"text": 1.0}, "seed": 42, "steps": 25, "guidance": 7.0, "num_outputs": 1})
    _api(a["file"], "a PNG or WAV the studio made" + media)
    for image in (d["image"], h["image"], s["image"], m["image_a"], m["image_b"]):
        _api(image, "an image" + media)
    for audio in (d["audio"], s["audio"], m["audio_a"], m["audio_b"]):
        _api(audio, "a sound" + media)
    for seed in (h["seed"], m["seed"]):
        _api(seed, f"fixes the randomness, 0 to {MAX_SEED}", whole=True, example=42)
    for steps in (h["steps"], m["steps"]):
        _api(steps, f"denoising steps, 1 to {MAX_STEPS}", whole=True, example=25)
    _api(h["guidance"], f"classifier-free guidance, 0 to {MAX_GUIDANCE:g}", example=5.0)
    _api(s["text"], "a text query", example="a yellow sun")
    _api(s["k"], f"how many results, 1 to {MAX_HITS}", whole=True, example=8)
    for side in "ab":
        _api(m[f"text_{side}"], f"mix {side.upper()}'s text", example="a cat" if side == "a" else "a drum")
    _api(m["output"], 'what to make: "image", "sound" or "caption"', example="image")
    _api(m["frames"], f"frames along the way, 2 to {MAX_FRAMES}", whole=True, example=5)
    _api(m["use_image_prior"], "snap each frame to the nearest training picture (false: morph the blend)", example=True)
