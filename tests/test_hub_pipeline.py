"""Hub decoders chosen by configuration: Stable unCLIP and AudioLDM inside the StudioPipeline."""

import numpy as np
import pytest
import torch
from PIL import Image

from core import Studio, load_studio
from core.fusion import JointLatentModel
from core.pipelines.studio_pipeline import StudioPipeline

from .test_hub_decoders import IMAGE_DIM, SOUND_DIM, tiny_audioldm, tiny_unclip

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def hub_studio(text_encoder):
    torch.manual_seed(0)
    joint = JointLatentModel(modality_dims={"text": text_encoder.embed_dim, "image": IMAGE_DIM, "audio": SOUND_DIM}, latent_dim=8, hidden_dim=32).eval()
    pipeline = StudioPipeline(
        text_encoder=text_encoder, image_encoder=None, audio_encoder=None, joint=joint,
        image_vae=None, image_unet=None, image_condition=None, image_scheduler=None,
        audio_unet=None, audio_condition=None, audio_scheduler=None, caption_decoder=None,
        image_hub_decoder=tiny_unclip(), audio_hub_decoder=tiny_audioldm(), preset="hub-tiny",
    )
    return Studio(pipeline)


def test_text_to_image_and_sound_through_hub_decoders(hub_studio):
    images = hub_studio.generate("image", text="a red bird", steps=2, num=2)
    assert all(isinstance(picture, Image.Image) for picture in images.outputs) and len(images.outputs) == 2
    sounds = hub_studio.generate("audio", text="a red bird", steps=2)
    rate, wave = sounds.outputs[0]
    assert rate > 0 and wave.dtype == np.float32 and np.isfinite(wave).all()
    again = hub_studio.replay(images.recipe)
    assert [p.tobytes() for p in again.outputs] == [p.tobytes() for p in images.outputs]
    with pytest.raises(ValueError, match="no caption decoder"):
        hub_studio.generate("caption", text="a red bird")


def test_hub_studio_round_trips(hub_studio, tmp_path):
    hub_studio.save_pretrained(tmp_path)
    assert not list(tmp_path.rglob("*.bin"))
    reloaded = load_studio(tmp_path)
    assert reloaded.pipeline.image_hub_decoder is not None and reloaded.pipeline.audio_hub_decoder is not None
    a = hub_studio.generate("image", text="a bell", seed=4, steps=2).outputs[0]
    b = reloaded.generate("image", text="a bell", seed=4, steps=2).outputs[0]
    assert a.tobytes() == b.tobytes()
