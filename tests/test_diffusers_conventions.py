"""``StudioPipeline`` keeps diffusers' pipeline conventions (in the manner of diffusers'
``PipelineTesterMixin``): what applies works, and what cannot apply raises instead of being
silently ignored. On the tiny studio: real packaged encoders, tiny untrained decoders."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.pipelines.studio_pipeline import StudioPipeline

pytestmark = pytest.mark.slow  # loads the real packaged encoders
STEPS = 3


@pytest.fixture(scope="module")
def pipe(tiny_studio):
    return tiny_studio.pipeline


def pixels(image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def test_components_rebuild_the_same_pipeline_settings_included(pipe):
    pipe.register_to_config(default_guidance={"image": 7.0, "audio": 5.0, "caption": 1.0}, weights_version="trained-test")
    try:
        rebuilt = StudioPipeline(**pipe.components)
        assert rebuilt.config.default_guidance == {"image": 7.0, "audio": 5.0, "caption": 1.0}
        assert rebuilt.config.weights_version == "trained-test"
        a = pipe(text="a bell", seed=2, num_inference_steps=STEPS).outputs[0]
        b = rebuilt(text="a bell", seed=2, num_inference_steps=STEPS).outputs[0]
        assert np.array_equal(pixels(a), pixels(b))
        swapped = StudioPipeline.from_pipe(pipe, default_steps={"image": 2, "audio": 2, "caption": 1})
        assert swapped.image_unet is pipe.image_unet and swapped.config.default_steps["image"] == 2
        with pytest.raises(ValueError, match="from_pipe takes parts"):
            StudioPipeline.from_pipe(pipe, unet=None)
    finally:
        pipe.register_to_config(default_guidance={"image": 3.0, "audio": 3.0, "caption": 1.0}, weights_version="untrained")


def test_from_pretrained_honours_dtype_and_overrides_and_refuses_the_rest(pipe, tmp_path):
    from diffusers import DPMSolverMultistepScheduler

    pipe.save_pretrained(tmp_path)
    half = StudioPipeline.from_pretrained(tmp_path, torch_dtype=torch.bfloat16)
    assert half.joint.dtype == torch.bfloat16 and half.image_unet.dtype == torch.bfloat16
    assert half(text="a bell", num_inference_steps=1).outputs  # and it generates in bf16
    scheduler = DPMSolverMultistepScheduler.from_config(pipe.image_scheduler.config)
    swapped = StudioPipeline.from_pretrained(tmp_path, image_scheduler=scheduler, default_steps={"image": 4, "audio": 4, "caption": 1})
    assert swapped.image_scheduler is scheduler and swapped.config.default_steps["image"] == 4
    with pytest.raises(ValueError, match="variant"):
        StudioPipeline.from_pretrained(tmp_path, variant="fp16")
    with pytest.raises(ValueError, match="Unknown from_pretrained arguments"):
        StudioPipeline.from_pretrained(tmp_path, use_karras_sigmas=True)


def test_diffusion_pipeline_from_pretrained_says_how_to_load_a_studio(pipe, tmp_path):
    from diffusers import DiffusionPipeline

    pipe.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="trust_remote_code=True"):  # diffusers' own question first
        DiffusionPipeline.from_pretrained(tmp_path)
    with pytest.raises(ImportError, match=r"StudioPipeline\.from_pretrained\(folder\)"):
        DiffusionPipeline.from_pretrained(tmp_path, trust_remote_code=True)
    assert StudioPipeline.from_pretrained(tmp_path).config.weights_version == pipe.config.weights_version


def test_save_pretrained_refuses_what_it_cannot_write(pipe, tmp_path):
    with pytest.raises(ValueError, match="safetensors only"):
        pipe.save_pretrained(tmp_path, safe_serialization=False)
    with pytest.raises(ValueError, match="one set of weights"):
        pipe.save_pretrained(tmp_path, variant="fp16")
    with pytest.raises(ValueError, match="Unknown save_pretrained arguments"):
        pipe.save_pretrained(tmp_path, compress=True)


def test_push_to_hub_saves_and_uploads_the_studio(pipe, monkeypatch):
    import huggingface_hub

    calls = {}

    class FakeApi:
        def __init__(self, token=None):
            calls["token"] = token

        def create_repo(self, repo_id, private=None, exist_ok=False):
            calls["repo"] = (repo_id, private, exist_ok)

        def upload_folder(self, repo_id, folder_path, commit_message):
            from pathlib import Path

            calls["files"] = sorted(str(p.relative_to(folder_path)) for p in Path(folder_path).rglob("*") if p.is_file())
            return type("Commit", (), {"commit_url": f"https://huggingface.co/{repo_id}/commit/1"})()

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    url = pipe.push_to_hub("you/tiny-studio", private=True)
    assert url == "https://huggingface.co/you/tiny-studio/commit/1"
    assert calls["repo"] == ("you/tiny-studio", True, True) and "model_index.json" in calls["files"]


def test_return_dict_callbacks_interrupt_and_call_properties(pipe):
    outputs, recipe, shares, agreement = pipe(text="a bell", seed=1, num_inference_steps=STEPS, return_dict=False)
    assert len(outputs) == 1 and recipe["steps"] == STEPS and "prior" in shares and agreement is None
    assert pipe.num_timesteps == STEPS and pipe.guidance_scale == pipe.config.default_guidance["image"]
    seen = []

    def stop_after_one(pipeline, index, timestep, tensors):
        seen.append(sorted(tensors))
        pipeline._interrupt = True
        return tensors

    pipe(text="a bell", num_inference_steps=STEPS, callback_on_step_end=stop_after_one, callback_on_step_end_tensor_inputs=["latents"])
    assert seen == [["latents"]]  # interrupted after the first step
    steps = []
    pipe(text="a bell", num_inference_steps=STEPS, callback_on_step_end=lambda p, i, t, tensors: steps.append(i) or tensors)
    assert steps == list(range(STEPS))  # a new call starts uninterrupted
    with pytest.raises(ValueError, match="may name only"):
        pipe(text="a bell", num_inference_steps=1, callback_on_step_end_tensor_inputs=["prompt_embeds"])


def test_the_progress_bar_follows_set_progress_bar_config(pipe, capsys):
    pipe.set_progress_bar_config(disable=False)
    try:
        pipe(text="a bell", num_inference_steps=STEPS)
        assert f"{STEPS}/{STEPS}" in capsys.readouterr().err
        pipe.set_progress_bar_config(disable=True)
        pipe(text="a bell", num_inference_steps=STEPS)
        assert f"{STEPS}/{STEPS}" not in capsys.readouterr().err
    finally:
        pipe.set_progress_bar_config(disable=True)


@pytest.mark.parametrize("output", ["image", "audio"])
def test_each_variant_equals_a_call_for_it_alone(pipe, output):
    many = pipe(text="a red car", output=output, seed=5, num_outputs=3, num_inference_steps=STEPS).outputs
    for i, made in enumerate(many):
        alone = pipe(text="a red car", output=output, seed=5 + i, num_inference_steps=STEPS).outputs[0]
        if output == "image":
            assert np.array_equal(pixels(made), pixels(alone)), i
        else:
            assert np.array_equal(made[1], alone[1]), i
