"""Hub decoders on tiny random Stable unCLIP and AudioLDM pipelines, saved and loaded offline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import (
    AudioLDMPipeline,
    AutoencoderKL,
    DDIMScheduler,
    DDPMScheduler,
    StableUnCLIPImg2ImgPipeline,
    UNet2DConditionModel,
)
from diffusers.pipelines.stable_diffusion import StableUnCLIPImageNormalizer
from PIL import Image
from transformers import (
    ClapTextConfig,
    ClapTextModelWithProjection,
    CLIPImageProcessor,
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTokenizer,
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
    RobertaTokenizer,
    SpeechT5HifiGan,
    SpeechT5HifiGanConfig,
)

from core.decoders.hub import AudioLDMSoundDecoder, UnclipImageDecoder

IMAGE_DIM = 16  # CLIP image embedding size of the tiny unCLIP
SOUND_DIM = 8  # CLAP text embedding size of the tiny AudioLDM
SOUND_RATE = 16_000
MAX_TOKENS = 16


def byte_chars() -> list[str]:
    """The 256 printable characters that byte-level BPE tokenizers (GPT-2, CLIP, RoBERTa) map bytes to."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    return [chr(b) for b in printable] + [chr(256 + i) for i in range(len(others))]


def tiny_clip_tokenizer() -> CLIPTokenizer:
    """A CLIP tokenizer with no merges: every character is a token, so any text still tokenizes."""
    chars = byte_chars()
    tokens = ["<|startoftext|>", "<|endoftext|>", *chars, *(char + "</w>" for char in chars)]
    return CLIPTokenizer(vocab={t: i for i, t in enumerate(tokens)}, merges=[], model_max_length=MAX_TOKENS)


def tiny_roberta_tokenizer() -> RobertaTokenizer:
    """A RoBERTa tokenizer with no merges: ids 0-4 are <s> <pad> </s> <unk> <mask>, then bytes."""
    tokens = ["<s>", "<pad>", "</s>", "<unk>", "<mask>", *byte_chars()]
    return RobertaTokenizer(vocab={t: i for i, t in enumerate(tokens)}, merges=[], model_max_length=MAX_TOKENS)


def tiny_unclip() -> StableUnCLIPImg2ImgPipeline:
    """A seeded random Stable unCLIP: 8x8 latents through a 2-level VAE → 16x16 images."""
    text_config = CLIPTextConfig(
        vocab_size=len(tiny_clip_tokenizer()), hidden_size=16, intermediate_size=32, num_attention_heads=2,
        num_hidden_layers=1, max_position_embeddings=MAX_TOKENS, bos_token_id=0, eos_token_id=1, pad_token_id=1,
    )
    vision_config = CLIPVisionConfig(
        hidden_size=16, projection_dim=IMAGE_DIM, intermediate_size=32, num_attention_heads=2,
        num_hidden_layers=1, image_size=16, patch_size=8,
    )  # unused when image_embeds are given, but the pipeline reads its dtype
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(8, 16),
        norm_num_groups=8, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), attention_head_dim=(2, 4), cross_attention_dim=16,
        class_embed_type="projection", use_linear_projection=True,
        projection_class_embeddings_input_dim=2 * IMAGE_DIM,  # the embedding + its noise-level embedding
    )
    vae = AutoencoderKL(
        block_out_channels=(8, 16), norm_num_groups=8, latent_channels=4, layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
    )
    return StableUnCLIPImg2ImgPipeline(
        feature_extractor=CLIPImageProcessor(crop_size=16, size=16),
        image_encoder=CLIPVisionModelWithProjection(vision_config),
        image_normalizer=StableUnCLIPImageNormalizer(embedding_dim=IMAGE_DIM),
        image_noising_scheduler=DDPMScheduler(beta_schedule="squaredcos_cap_v2"),
        tokenizer=tiny_clip_tokenizer(),
        text_encoder=CLIPTextModel(text_config),
        unet=unet,
        scheduler=DDIMScheduler(
            beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, prediction_type="v_prediction",
            set_alpha_to_one=False, steps_offset=1,
        ),
        vae=vae,
    )


def tiny_audioldm() -> AudioLDMPipeline:
    """A seeded random AudioLDM: 8 mel bins, 4x-upsampling vocoder at 16 kHz → 256 samples by default."""
    tokenizer = tiny_roberta_tokenizer()
    text_config = ClapTextConfig(
        vocab_size=len(tokenizer), hidden_size=8, intermediate_size=16, num_attention_heads=1,
        num_hidden_layers=1, projection_dim=SOUND_DIM, max_position_embeddings=MAX_TOKENS + 2,
        bos_token_id=0, eos_token_id=2, pad_token_id=1,
    )  # RoBERTa positions start after the padding index: MAX_TOKENS + 2 rows
    vocoder_config = SpeechT5HifiGanConfig(
        model_in_dim=8, sampling_rate=SOUND_RATE, upsample_initial_channel=16, upsample_rates=[2, 2],
        upsample_kernel_sizes=[4, 4], resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3]],
        normalize_before=False,
    )
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=32, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(8, 16),
        norm_num_groups=8, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=(8, 16),
        class_embed_type="simple_projection", projection_class_embeddings_input_dim=SOUND_DIM,
        class_embeddings_concat=True,
    )
    vae = AutoencoderKL(
        block_out_channels=(8, 16), in_channels=1, out_channels=1, norm_num_groups=8, latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
    )
    return AudioLDMPipeline(
        vae=vae,
        text_encoder=ClapTextModelWithProjection(text_config),
        tokenizer=tokenizer,
        unet=unet,
        scheduler=DDIMScheduler(
            beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
            set_alpha_to_one=False,
        ),
        vocoder=SpeechT5HifiGan(vocoder_config),
    )


@pytest.fixture(scope="module")
def unclip_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("unclip")
    tiny_unclip().save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.fixture(scope="module")
def audioldm_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("audioldm")
    tiny_audioldm().save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.fixture(scope="module")
def unclip(unclip_folder) -> UnclipImageDecoder:
    return UnclipImageDecoder.from_pretrained(str(unclip_folder))


@pytest.fixture(scope="module")
def audioldm(audioldm_folder) -> AudioLDMSoundDecoder:
    return AudioLDMSoundDecoder.from_pretrained(str(audioldm_folder))


def embeddings(batch: int, dim: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, dim, generator=torch.Generator().manual_seed(seed))  # (B, D)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator("cpu").manual_seed(seed)


# --- saved layout ------------------------------------------------------------------------


@pytest.mark.parametrize("folder_fixture", ["unclip_folder", "audioldm_folder"])
def test_saved_as_safetensors_only(folder_fixture, request):
    folder = request.getfixturevalue(folder_fixture)
    assert (folder / "model_index.json").is_file()
    assert (folder / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert not [path for path in folder.rglob("*") if path.suffix in {".bin", ".pt", ".pth", ".ckpt"}]


# --- Stable unCLIP -------------------------------------------------------------------------


def test_unclip_images(unclip):
    assert unclip.embed_dim == IMAGE_DIM
    assert unclip.device.type == "cpu" and unclip.dtype == torch.float32
    steps = []
    images = unclip(
        embeddings(2, IMAGE_DIM), num_inference_steps=2, guidance_scale=3.0, generator=seeded(0),
        callback_on_step_end=lambda pipe, step, t, kwargs: steps.append((step, kwargs["latents"].shape)),
    )
    assert len(images) == 2
    assert all(isinstance(image, Image.Image) and image.size == (16, 16) and image.mode == "RGB" for image in images)
    assert steps == [(0, (2, 4, 8, 8)), (1, (2, 4, 8, 8))]


@pytest.mark.parametrize("guidance_scale", [1.0, 3.0])
def test_unclip_seeded(unclip, guidance_scale):
    embeds = embeddings(1, IMAGE_DIM)

    def pixels(seed: int) -> np.ndarray:
        images = unclip(embeds, num_inference_steps=2, guidance_scale=guidance_scale, generator=seeded(seed))
        return np.asarray(images[0])

    np.testing.assert_array_equal(pixels(0), pixels(0))
    assert not np.array_equal(pixels(0), pixels(1))


def test_unclip_bad_embeddings_raise(unclip):
    with pytest.raises(ValueError, match=rf"\[B, {IMAGE_DIM}\]"):
        unclip(embeddings(1, IMAGE_DIM + 1), 2, 1.0, seeded(0))
    with pytest.raises(ValueError, match=rf"\[B, {IMAGE_DIM}\]"):
        unclip(embeddings(1, IMAGE_DIM)[0], 2, 1.0, seeded(0))  # a single vector, not a batch
    nan = embeddings(2, IMAGE_DIM)
    nan[1, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        unclip(nan, 2, 1.0, seeded(0))


# --- AudioLDM --------------------------------------------------------------------------------


def test_audioldm_sounds(audioldm):
    assert audioldm.embed_dim == SOUND_DIM
    assert audioldm.sample_rate == SOUND_RATE
    steps = []
    sounds = audioldm(
        embeddings(2, SOUND_DIM), num_inference_steps=2, guidance_scale=2.5, generator=seeded(0),
        callback_on_step_end=lambda pipe, step, t, kwargs: steps.append(step),
    )
    assert len(sounds) == 2
    for rate, waveform in sounds:
        assert rate == SOUND_RATE
        assert waveform.dtype == np.float32 and waveform.shape == (256,)  # 64 mel frames x 4
        assert np.isfinite(waveform).all()
    assert steps == [0, 1]
    ((_, short),) = audioldm(embeddings(1, SOUND_DIM), 2, 2.5, seeded(0), audio_length_in_s=0.01)
    assert short.shape == (160,)  # 0.01 s at 16 kHz, cut from the next multiple the model handles


@pytest.mark.parametrize("guidance_scale", [1.0, 2.5])
def test_audioldm_seeded(audioldm, guidance_scale):
    embeds = embeddings(1, SOUND_DIM)

    def waveform(seed: int) -> np.ndarray:
        ((_, samples),) = audioldm(embeds, num_inference_steps=2, guidance_scale=guidance_scale, generator=seeded(seed))
        return samples

    np.testing.assert_array_equal(waveform(0), waveform(0))
    assert not np.array_equal(waveform(0), waveform(1))


def test_audioldm_normalises_embeddings(audioldm):
    embeds = embeddings(1, SOUND_DIM)
    ((_, unit),) = audioldm(embeds, 2, 2.5, seeded(0))
    ((_, scaled),) = audioldm(3.0 * embeds, 2, 2.5, seeded(0))
    np.testing.assert_allclose(scaled, unit, atol=1e-6, rtol=0)


def test_audioldm_bad_embeddings_raise(audioldm):
    with pytest.raises(ValueError, match=rf"\[B, {SOUND_DIM}\]"):
        audioldm(embeddings(1, 2 * SOUND_DIM), 2, 2.5, seeded(0))
    with pytest.raises(ValueError, match=rf"\[B, {SOUND_DIM}\]"):
        audioldm(torch.empty(0, SOUND_DIM), 2, 2.5, seeded(0))
    inf = embeddings(1, SOUND_DIM)
    inf[0, 0] = float("inf")
    with pytest.raises(ValueError, match="infinite"):
        audioldm(inf, 2, 2.5, seeded(0))
    with pytest.raises(ValueError, match="torch.Tensor"):
        audioldm(np.zeros((1, SOUND_DIM), dtype=np.float32), 2, 2.5, seeded(0))


def test_local_folder_needs_no_network(unclip_folder, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    decoder = UnclipImageDecoder.from_pretrained(str(unclip_folder), local_files_only=None)
    assert decoder.embed_dim == IMAGE_DIM
