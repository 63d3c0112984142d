"""``studio-train``: the embedded preset's training, as resumable stages over a built corpus.

    embeddings → sound_encoder → joint → image_bank [or image_prior] → image_autoencoder → image_decoder → image_diffusion → sound_diffusion → caption → export

Both ``image_prior`` and ``image_bank`` make the studio's image prior, ``parts/image_prior``: a
trained diffusion prior, or a bank of the training images' embeddings that the decoded mean is
snapped to; the one run last is exported. ``all`` runs the bank (what ships) and leaves out the
optional diffusion prior, see ``OPTIONAL_STAGES``.

Each stage reads the corpus (``studio-data``) or the cache of the stages before it, trains one
part with ``StageRunner`` (checkpoints every few hundred steps, resumes from the newest, stops
after ``max_minutes`` so no call runs past the hour) and saves the part with
``save_pretrained`` into ``<run>/parts/<component>`` once its step budget is reached.
``export`` assembles the parts into a studio folder with fp16 safetensors. Only ``train``
items are used; held-out items and concepts stay for ``studio-eval``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL
from safetensors.torch import load_file, save_file

from ..audio import N_MELS, SAMPLE_RATE, fit_length, log_mel_spectrogram, prepare_waveform
from ..data.manifest import Item, read_manifest
from ..decoders.diffusion_unets import fold_mels, mel_patch
from ..decoders.discriminator import PatchDiscriminator
from ..decoders.embedding_prior import EmbeddingBank, EmbeddingPrior
from ..decoders.image_autoencoder import (
    encode_images,
    estimate_scaling_factor,
    images_to_pixels,
    upscaling_autoencoder,
)
from ..media import load_image
from ..pipelines.build import build_studio_pipeline, load_component, saved_class
from .caption import train_caption_decoder
from .diffusion import train_diffusion_decoder
from .image_autoencoder import train_image_autoencoder
from .joint import train_joint_model
from .loop import StageConfig, StageResult, process_state
from .prior import prior_training_pairs, train_embedding_prior
from .sound_encoder import train_sound_encoder

logger = logging.getLogger(__name__)

STAGES = ("embeddings", "sound_encoder", "joint", "image_prior", "image_bank", "image_autoencoder", "image_decoder", "image_diffusion", "sound_diffusion", "caption", "export")
# run by name only, never by ``all``: the diffusion prior was level with the decoded mean on two
# validation folds (experiments/prior_choice.py), so the shipped studio snaps to the image bank
# instead; a run that trains the prior after the bank exports the prior
OPTIONAL_STAGES = ("image_prior",)
CLIP_FRAMES = 172  # 2 s at 22050 Hz, hop 256
SHARP_SIDE = 112  # a corpus tile is sharp at 128 px if its drawing had this many pixels in its source
SHIPPED_SHARD_SIZE = "9MB"  # a Hugging Face Space takes files under 10 MB without LFS


@dataclass
class TrainPlan:
    """Step budgets, batch sizes and the joint objective (typed data; saved beside the run as
    ``plan.json``). The defaults are the last budgets of the shipped embedded run, sized for 2
    CPU cores: the diffusion stages take several calls of under an hour each (the shipped
    UNets continued earlier weights in fresh stage folders; the README has the history)."""

    size: str = "embedded"
    max_minutes: float = 55.0
    steps: dict[str, int] = field(default_factory=lambda: {
        "sound_encoder": 800, "joint": 2000, "image_prior": 16000, "image_autoencoder": 1500, "image_decoder": 1000,
        "image_diffusion": 53900, "sound_diffusion": 3700, "caption": 1000,
    })
    batch_size: dict[str, int] = field(default_factory=lambda: {
        "sound_encoder": 64, "joint": 256, "image_prior": 256, "image_autoencoder": 16, "image_decoder": 16,
        "image_diffusion": 16, "sound_diffusion": 16, "caption": 64,
    })
    # the joint model's objective (``JointObjective`` fields), chosen by experiments/selection.py; the baselines share its beta
    joint_objective: dict[str, float] = field(default_factory=lambda: {"beta": 0.5, "contrastive": 20.0, "input_noise": 2.0, "clean_alignment": True})
    # the exported studio's default classifier-free guidance per output, chosen on training prompts by experiments/guidance.py
    guidance: dict[str, float] = field(default_factory=lambda: {"image": 7.0, "audio": 5.0})
    # how the exported studio draws from the image prior: a diffusion prior's guidance and temperature
    # (experiments/prior_choice.py), and how many of its nearest entries an image bank draws among
    # (experiments/variety.py: the fewest with which two seeds of a prompt differ by half as much as two prompts)
    prior_sampling: dict[str, float] = field(default_factory=lambda: {"guidance": 1.0, "temperature": 1.0, "candidates": 4})
    # the exported studio's latent temperature per output (0: the posterior mean), chosen by experiments/guidance.py --setting temperature
    latent_temperature: dict[str, float] = field(default_factory=dict)
    mixed_precision: str = "no"

    @classmethod
    def of_run(cls, run_folder: Path) -> TrainPlan:
        """The budgets and joint objective a run saved (``plan.json``) over these defaults; the
        defaults if it saved none."""
        plan, path = cls(), Path(run_folder) / "plan.json"
        if path.is_file():
            saved = json.loads(path.read_text())
            plan.size = saved.get("size", plan.size)
            plan.steps.update(saved.get("steps", {}))
            plan.batch_size.update(saved.get("batch_size", {}))
            plan.joint_objective = saved.get("joint_objective", {"beta": 1.0, "contrastive": 0.5})  # older runs'
            plan.guidance = saved.get("guidance", {"image": 3.0, "audio": 3.0})  # older runs' exports had the pipeline's 3
            plan.prior_sampling.update(saved.get("prior_sampling", {}))
            plan.latent_temperature.update(saved.get("latent_temperature", {}))
        return plan


class Run:
    """The folders and cached tensors of one training run."""

    def __init__(self, corpus: Path, folder: Path, plan: TrainPlan):
        self.corpus, self.folder, self.plan = Path(corpus), Path(folder), plan
        self.cache = self.folder / "cache"
        self.parts = self.folder / "parts"
        self.last_result: StageResult | None = None

    def items(self) -> list[Item]:
        return [item for item in read_manifest(self.corpus) if item.split == "train"]

    def stage_config(self, stage: str) -> StageConfig:
        return StageConfig(
            self.folder / "stages" / stage, max_steps=self.plan.steps[stage], checkpoint_every=250, log_every=50,
            max_minutes=self.plan.max_minutes, mixed_precision=self.plan.mixed_precision,
        )

    def tensors(self, name: str) -> dict[str, torch.Tensor]:
        path = self.cache / f"{name}.safetensors"
        if not path.is_file():
            raise ValueError(f"{path} is missing: run the stage that makes it first ({STAGES}).")
        # floats in fp32 (a pack for the GPU machine carries them as fp16)
        return {key: value.float() if value.is_floating_point() else value for key, value in load_file(str(path)).items()}

    def save_tensors(self, name: str, tensors: dict[str, torch.Tensor]) -> None:
        self.cache.mkdir(parents=True, exist_ok=True)
        temporary = self.cache / f".{name}.safetensors.tmp"
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(temporary))
        temporary.replace(self.cache / f"{name}.safetensors")  # atomic: a killed stage leaves no half file

    def part(self, name: str, untrained):
        """The trained part if a stage saved it, else the untrained one given."""
        folder = self.parts / name
        if any(folder.glob("*.safetensors")):
            return load_component(saved_class(folder, type(untrained)), folder, seed=0)
        return untrained

    def finish(self, result: StageResult, **parts) -> bool:
        """Keeps a stage's ``result`` (``last_result``) and, if it reached its step budget, saves its trained ``parts``."""
        self.last_result = result
        if result.finished:
            for name, model in parts.items():
                self.save_part(name, model)
        return result.finished

    def save_part(self, name: str, model) -> None:
        """Saves a trained part (under ``accelerate launch``, the main process writes it once)."""
        model.is_trained = True
        state = process_state()
        if state.is_main_process:
            model.save_pretrained(self.parts / name)
        state.wait_for_everyone()


# --- the stages ----------------------------------------------------------------------------


def stage_embeddings(run: Run, pipeline) -> bool:
    """Caches MiniLM text and EfficientNet image embeddings, the pictures at the autoencoder's
    input size (64x64) and at the corpus's (128x128, with the longest side each drawing had in
    its source), and 2-s log-mels."""
    items = run.items()
    ids = [item.id for item in items]
    text = torch.cat([pipeline.text_encoder.encode([i.caption for i in items[s : s + 256]]) for s in range(0, len(items), 256)])
    with_image = [i for i, item in enumerate(items) if item.image]
    pictures = [load_image(str(run.corpus / items[i].image)) for i in with_image]  # each file read once
    chunks = []
    for start in range(0, len(pictures), 64):
        chunks.append(pipeline.image_encoder.encode(pictures[start : start + 64]))
        logger.info("image embeddings: %d / %d", min(start + 64, len(pictures)), len(pictures))
    image_embeddings = torch.cat(chunks) if chunks else torch.zeros(0, pipeline.image_encoder.embed_dim)
    pixels = images_to_pixels(pictures) if pictures else torch.zeros(0, 3, 64, 64)
    tiles = torch.stack([torch.from_numpy(np.array(picture)).permute(2, 0, 1) for picture in pictures]) if pictures else torch.zeros(0, 3, 128, 128, dtype=torch.uint8)
    with_sound = [i for i, item in enumerate(items) if item.sound]
    mels = [log_mel_spectrogram(fit_length(prepare_waveform(str(run.corpus / items[i].sound)), 2 * SAMPLE_RATE)) for i in with_sound]
    run.save_tensors("embeddings", {
        "text": text, "image": image_embeddings, "image_rows": torch.tensor(with_image, dtype=torch.long),
        "pixels": ((pixels + 1) * 127.5).round().to(torch.uint8), "tiles": tiles,
        "image_sides": torch.tensor([items[i].image_side or 0 for i in with_image], dtype=torch.long), "mels": torch.from_numpy(np.stack(mels)) if mels else torch.zeros(0, N_MELS, CLIP_FRAMES),
        "sound_rows": torch.tensor(with_sound, dtype=torch.long),
    })
    (run.cache / "items.json").write_text(json.dumps({"ids": ids, "captions": [i.caption for i in items]}))
    logger.info("cached %d items: %d images, %d sounds", len(items), len(with_image), len(with_sound))
    return True


def stage_sound_encoder(run: Run, pipeline) -> bool:
    cache = run.tensors("embeddings")
    encoder = run.part("audio_encoder", pipeline.audio_encoder)
    result = train_sound_encoder(encoder, cache["mels"], cache["text"][cache["sound_rows"]], run.stage_config("sound_encoder"), batch_size=run.plan.batch_size["sound_encoder"])
    if result.finished:
        save_sound_embeddings(run, encoder, cache["mels"])
    return run.finish(result, audio_encoder=encoder)


@torch.no_grad()
def save_sound_embeddings(run: Run, encoder, mels: torch.Tensor) -> None:
    """The ``audio`` cache: the trained sound encoder's embeddings of the cached log-mels."""
    audio = torch.cat([encoder.network(mels[s : s + 128].float()) for s in range(0, len(mels), 128)]) if len(mels) else torch.zeros(0, encoder.embed_dim)
    run.save_tensors("audio", {"audio": audio})


def joint_inputs(run: Run, modalities: tuple[str, ...]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The cached training embeddings, one row per item (zeros where an item lacks a modality),
    and their presence ``[M, N]`` in ``modalities`` order."""
    cache, audio = run.tensors("embeddings"), run.tensors("audio")["audio"]
    count = cache["text"].shape[0]
    embeddings = {"text": cache["text"]}
    present = torch.zeros(len(modalities), count)
    present[modalities.index("text")] = 1
    for name, rows, values in (("image", cache["image_rows"], cache["image"]), ("audio", cache["sound_rows"], audio)):
        full = torch.zeros(count, values.shape[1])
        full[rows] = values
        embeddings[name] = full
        present[modalities.index(name), rows] = 1
    return embeddings, present


def stage_joint(run: Run, pipeline) -> bool:
    joint = run.part("joint", pipeline.joint)
    embeddings, present = joint_inputs(run, joint.modalities)
    from ..fusion.objectives import JointObjective

    objective = JointObjective(**run.plan.joint_objective)
    result = train_joint_model(joint, embeddings, present, run.stage_config("joint"), batch_size=run.plan.batch_size["joint"], objective=objective)
    return run.finish(result, joint=joint)


def stage_image_prior(run: Run, pipeline) -> bool:
    """The diffusion prior from the trained joint model's latent to the image embedding."""
    joint = run.part("joint", pipeline.joint)
    if not getattr(joint, "is_trained", True):
        raise ValueError("Train the joint model first (stage joint).")
    embeddings, present = joint_inputs(run, joint.modalities)
    masks = {m: present[i] > 0 for i, m in enumerate(joint.modalities)}
    conditions, targets = prior_training_pairs(joint, embeddings, masks, "image")
    prior = run.part("image_prior", pipeline.image_prior)
    if not isinstance(prior, EmbeddingPrior):  # a bank from stage image_bank: this stage replaces it
        prior = pipeline.image_prior
    result = train_embedding_prior(prior, conditions, targets, run.stage_config("image_prior"), batch_size=run.plan.batch_size["image_prior"])
    return run.finish(result, image_prior=prior)


def stage_image_bank(run: Run, pipeline) -> bool:
    """The image prior by retrieval: a bank of the training images' embeddings (in the image
    prior's components), which the studio snaps text→image's decoded mean to. Takes seconds."""
    images = run.tensors("embeddings")["image"]
    bank = EmbeddingBank.from_embeddings(images, components=pipeline.image_prior.config.components)
    logger.info("the image bank keeps %d of %d training image embeddings (near-duplicates once)", bank.config.size, len(images))
    run.save_part("image_prior", bank)
    return True


def stage_image_autoencoder(run: Run, pipeline) -> bool:
    pixels = run.tensors("embeddings")["pixels"].float() / 127.5 - 1
    vae = run.part("image_vae", pipeline.image_vae)
    discriminator = PatchDiscriminator()
    from .image_autoencoder import AutoencoderGANConfig

    training = AutoencoderGANConfig(batch_size=run.plan.batch_size["image_autoencoder"], disc_start=run.plan.steps["image_autoencoder"] // 2)
    result = train_image_autoencoder(vae, discriminator, pixels, run.stage_config("image_autoencoder"), training)
    if result.finished:
        estimate_scaling_factor(vae, pixels)
    return run.finish(result, image_vae=vae)


def stage_image_decoder(run: Run, pipeline) -> bool:
    """Trains the autoencoder's decoder alone, by L1 and perceptual loss with no adversary, on the
    frozen encoder's latents, so the latent space the image UNet works in does not move. Where the
    cache holds pictures larger than the autoencoder's (the corpus's 128-px tiles), the decoder
    first gains the upsampling to reach them (``upscaling_autoencoder``) and learns from the
    tiles whose drawing was at least ``SHARP_SIDE`` pixels in its source (an enlarged one would
    teach it blur). Without larger pictures it is fine-tuned in place, which removed the
    coloured speckle the adversarial stage left in the corners of flat white."""
    cache = run.tensors("embeddings")
    pixels = cache["pixels"].float() / 127.5 - 1
    vae = run.part("image_vae", pipeline.image_vae)
    if not getattr(vae, "is_trained", True):
        raise ValueError("Train the image autoencoder first (stage image_autoencoder).")
    from .image_autoencoder import AutoencoderGANConfig

    images = pixels
    tiles = cache.get("tiles")
    if tiles is not None and tiles.shape[-1] > pixels.shape[-1]:
        if isinstance(vae, AutoencoderKL):
            vae = upscaling_autoencoder(vae, levels=int(math.log2(tiles.shape[-1] // pixels.shape[-1])))
        sharp = cache["image_sides"] >= SHARP_SIDE
        images = (pixels[sharp], tiles[sharp].float() / 127.5 - 1)
        logger.info("decoder targets: %d of %d tiles at %d px (drawings of at least %d px)", int(sharp.sum()), len(tiles), tiles.shape[-1], SHARP_SIDE)
    training = AutoencoderGANConfig(
        batch_size=run.plan.batch_size["image_decoder"], learning_rate=5e-5, adversarial_weight=0.0, train_encoder=False
    )
    result = train_image_autoencoder(vae, PatchDiscriminator(), images, run.stage_config("image_decoder"), training)
    return run.finish(result, image_vae=vae)


def stage_image_diffusion(run: Run, pipeline) -> bool:
    cache = run.tensors("embeddings")
    latents = cache["latents"].float() if "latents" in cache else image_latents(run, pipeline)  # a packed run brings its latents
    unet, projector = run.part("image_unet", pipeline.image_unet), run.part("image_condition", pipeline.image_condition)
    result = train_diffusion_decoder(unet, projector, pipeline.image_scheduler, latents, cache["image"], run.stage_config("image_diffusion"), batch_size=run.plan.batch_size["image_diffusion"])
    return run.finish(result, image_unet=unet, image_condition=projector)


def image_latents(run: Run, pipeline) -> torch.Tensor:
    """The trained autoencoder's scaled latents of the cached pictures ``[N, C, h, w]``."""
    vae = run.part("image_vae", pipeline.image_vae)
    if not getattr(vae, "is_trained", True):
        raise ValueError("Train the image autoencoder first (stage image_autoencoder).")
    pixels = run.tensors("embeddings")["pixels"].float() / 127.5 - 1
    return torch.cat([encode_images(vae, pixels[s : s + 64]) for s in range(0, len(pixels), 64)])


def stage_sound_diffusion(run: Run, pipeline) -> bool:
    cache, audio = run.tensors("embeddings"), run.tensors("audio")["audio"]
    frames = pipeline.config.mel_frames
    mels = cache["mels"].float()
    floor = float(mels.min()) if mels.numel() else 0.0
    mels = torch.nn.functional.pad(mels, (0, max(0, frames - mels.shape[-1])), value=floor)[..., :frames]
    normalised = ((mels - pipeline.config.mel_mean) / pipeline.config.mel_std).unsqueeze(1)  # (N, 1, 80, T)
    unet, projector = run.part("audio_unet", pipeline.audio_unet), run.part("audio_condition", pipeline.audio_condition)
    normalised = fold_mels(normalised, mel_patch(unet))
    result = train_diffusion_decoder(unet, projector, pipeline.audio_scheduler, normalised, audio, run.stage_config("sound_diffusion"), batch_size=run.plan.batch_size["sound_diffusion"])
    return run.finish(result, audio_unet=unet, audio_condition=projector)


def stage_caption(run: Run, pipeline) -> bool:
    cache = run.tensors("embeddings")
    captions = json.loads((run.cache / "items.json").read_text())["captions"]
    decoder = run.part("caption_decoder", pipeline.caption_decoder)
    if not hasattr(decoder, "tokenizer"):
        decoder.tokenizer = pipeline.caption_decoder.tokenizer
    result = train_caption_decoder(decoder, captions, cache["text"], run.stage_config("caption"), batch_size=run.plan.batch_size["caption"])
    if result.finished:
        decoder.set_words(captions)  # it spells only the training captions' words, whole
    return run.finish(result, caption_decoder=decoder)


def stage_export(run: Run, pipeline, target: Path) -> None:
    """Assembles the trained parts (fp16 safetensors) and the untrained rest into ``target``, with
    the plan's default guidance."""
    for name, component in list(pipeline.parts.items()):
        if component is not None and (run.parts / name).is_dir():
            setattr(pipeline, name, run.part(name, component))
    captions = pipeline.caption_decoder
    if captions is not None and captions.lexicon is not None and captions.config.kept_token_ids is None:
        pipeline.caption_decoder = captions.prune_vocabulary(captions.lexicon.token_ids)  # it writes no other token
    if not (run.parts / "image_prior").is_dir():
        pipeline.image_prior = None  # optional: without it, images come from the joint model's decoded mean
    for name, component in pipeline.parts.items():
        if isinstance(component, torch.nn.Module) and (run.parts / name).is_dir():
            component.to(torch.float16)  # shipped weights stay small; loading casts back to fp32
    sampling = run.plan.prior_sampling
    pipeline.register_to_config(prior_guidance=float(sampling["guidance"]), prior_temperature=float(sampling["temperature"]))
    if isinstance(pipeline.image_prior, EmbeddingBank):
        pipeline.image_prior.register_to_config(candidates=int(sampling["candidates"]))
    pipeline.register_to_config(default_guidance={**pipeline.config.default_guidance, **run.plan.guidance})
    pipeline.register_to_config(latent_temperature={**pipeline.config.latent_temperature, **run.plan.latent_temperature})
    pipeline.register_to_config(weights_version=f"trained-{time.strftime('%Y%m%d')}-{weights_digest(pipeline)}")
    pipeline.save_pretrained(target, max_shard_size=SHIPPED_SHARD_SIZE)


LEARNED_PARTS = ("audio_encoder", "joint", "image_prior", "image_vae", "image_unet", "image_condition", "audio_unet", "audio_condition", "caption_decoder")


def import_parts(run: Run, source: Path) -> list[str]:
    """Copies the trained parts of a saved studio (an export, fp16 or not) into the run's parts,
    in fp32, where the run has none of its own yet, so that later stages and the evaluation build
    on them without training them again; with the sound encoder comes the ``audio`` cache of the
    run's log-mels. Returns the parts imported."""
    from ..pipelines.build import load_studio_pipeline

    studio = load_studio_pipeline(source)
    imported = []
    for name in LEARNED_PARTS:
        component = getattr(studio, name, None)
        if component is None or not getattr(component, "is_trained", False) or (run.parts / name).is_dir():
            continue
        run.save_part(name, component.to(torch.float32))
        imported.append(name)
        logger.info("imported %s from %s", name, source)
    if "audio_encoder" in imported and (run.cache / "embeddings.safetensors").is_file():
        save_sound_embeddings(run, studio.audio_encoder, run.tensors("embeddings")["mels"])
    return imported


def weights_digest(pipeline) -> str:
    """The first 8 hex digits of a SHA-256 over every module's weights: two exports of different
    weights never share a ``weights_version``, so a recipe tells which weights made it."""
    digest = hashlib.sha256()
    for name, component in sorted(pipeline.parts.items()):
        if isinstance(component, torch.nn.Module):
            for key, tensor in sorted(component.state_dict().items()):
                digest.update(f"{name}.{key}".encode())
                digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:8]


def run_stage(stage: str, run: Run, export_to: Path | None = None) -> bool:
    """Runs one stage (building the untrained pipeline of the plan's size for the parts' shapes);
    returns whether it finished (false: it stopped on its time budget; run it again)."""
    if stage not in STAGES:
        raise ValueError(f"Unknown stage {stage!r}; choose from {STAGES}.")
    pipeline = build_studio_pipeline(run.plan.size, preset="embedded")
    start = time.perf_counter()
    if stage == "export":
        stage_export(run, pipeline, export_to or run.folder / "studio")
        finished = True
    else:
        finished = globals()[f"stage_{stage}"](run, pipeline)
    logger.info("stage %s %s after %.1f min", stage, "finished" if finished else "stopped", (time.perf_counter() - start) / 60)
    return finished


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("pack", "unpack"):  # a stage on the GPU machine
        from .device import main as device_main

        return device_main(argv)
    if any(arg == "--data" or arg.startswith("--data=") for arg in argv):  # a studio on the user's own data
        from .user_data import main as train_on_data

        return train_on_data(argv)
    parser = argparse.ArgumentParser(prog="studio-train", description="Train the embedded preset in resumable stages; "
                                     "or, with --data FOLDER --out STUDIO, a studio on your own data (studio-train --data x --help); "
                                     "studio-train pack|unpack STAGE: a stage on a GPU machine (core/training/device.py).")
    parser.add_argument("stage", choices=[*STAGES, "all", "import"], help="the stage to run (all: every one in order but the optional image_prior; import: seed the run's parts from --from-studio)")
    parser.add_argument("--corpus", type=Path, required=True, help="a corpus folder built by studio-data")
    parser.add_argument("--run", type=Path, default=Path("runs/embedded"), help="where caches, checkpoints and parts go")
    parser.add_argument("--size", default="embedded", help="part sizes (embedded or tiny)")
    parser.add_argument("--max-minutes", type=float, default=55.0, help="stop (resumably) after this long")
    parser.add_argument("--steps", type=json.loads, default=None, help='JSON overrides of step budgets, e.g. \'{"joint": 100}\'')
    parser.add_argument("--batch-size", type=json.loads, default=None, help='JSON overrides of batch sizes, e.g. \'{"caption": 32}\'')
    parser.add_argument("--joint-objective", type=json.loads, default=None, help='JSON overrides of the joint objective, e.g. \'{"beta": 1.0}\'')
    parser.add_argument("--guidance", type=json.loads, default=None, help='JSON overrides of the exported default guidance, e.g. \'{"image": 5.0}\'')
    parser.add_argument("--prior-sampling", type=json.loads, default=None, help='JSON overrides of how the exported studio draws from the image prior, e.g. \'{"temperature": 0.5}\'')
    parser.add_argument("--temperature", type=json.loads, default=None, help='JSON overrides of the exported latent temperature, e.g. \'{"image": 0.5}\'')
    parser.add_argument("--export-to", type=Path, default=None, help="with export: the studio folder to write")
    parser.add_argument("--from-studio", type=Path, default=None, help="with import: a saved studio (e.g. assets/embedded) whose trained parts the run lacks")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    # budgets and objective accumulate in the run's plan.json: an override given once holds for later calls
    plan = TrainPlan.of_run(args.run)
    plan.size, plan.max_minutes = args.size, args.max_minutes
    if args.steps:
        plan.steps.update(args.steps)
    if args.batch_size:
        plan.batch_size.update(args.batch_size)
    if args.joint_objective:
        plan.joint_objective.update(args.joint_objective)
    if args.guidance:
        if not isinstance(args.guidance, dict) or not all(
            key in ("image", "audio") and isinstance(value, (int, float)) and 0 <= value <= 20 for key, value in args.guidance.items()
        ):
            parser.error('--guidance takes numbers from 0 to 20 for "image" and "audio", e.g. \'{"image": 5.0}\'.')
        plan.guidance.update({key: float(value) for key, value in args.guidance.items()})
    if args.prior_sampling:
        from ..decoders.embedding_prior import valid_temperature

        valid = {
            "guidance": lambda value: isinstance(value, (int, float)) and 0 <= value <= 20, "temperature": valid_temperature,
            "candidates": lambda value: isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 64,
        }
        if not isinstance(args.prior_sampling, dict) or not all(key in valid and valid[key](value) for key, value in args.prior_sampling.items()):
            parser.error('--prior-sampling takes "guidance" (0 to 20), "temperature" (above 0, at most 2) and "candidates" '
                         '(a whole number, 1 to 64), e.g. \'{"temperature": 0.5}\'.')
        plan.prior_sampling.update({key: value if key == "candidates" else float(value) for key, value in args.prior_sampling.items()})
    if args.temperature:
        if not isinstance(args.temperature, dict) or not all(
            key in ("image", "audio", "caption") and isinstance(value, (int, float)) and 0 <= value <= 2 for key, value in args.temperature.items()
        ):
            parser.error('--temperature takes numbers from 0 to 2 for "image", "audio" and "caption", e.g. \'{"image": 0.5}\'.')
        plan.latent_temperature.update({key: float(value) for key, value in args.temperature.items()})
    run = Run(args.corpus, args.run, plan)
    run.folder.mkdir(parents=True, exist_ok=True)
    (run.folder / "plan.json").write_text(json.dumps(asdict(plan), indent=2))
    if args.stage == "import":
        if args.from_studio is None:
            parser.error("import needs --from-studio, a saved studio folder.")
        imported = import_parts(run, args.from_studio)
        print(f"imported: {', '.join(imported) or 'nothing (the run has its own parts)'}")
        return
    for stage in [s for s in STAGES if s not in OPTIONAL_STAGES] if args.stage == "all" else [args.stage]:
        if not run_stage(stage, run, args.export_to):
            # exit 3: the stage stopped on its time budget; run the same command again to go on
            raise SystemExit(3)


if __name__ == "__main__":
    main()
