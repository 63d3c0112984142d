"""The embeddings the evaluation works on: the training items (from studio-train's cache) and the
held-out items (encoded here once, cached in the evaluation's work folder).

Modalities are named as in the joint model: ``text``, ``image`` and ``audio`` (the report says
"sound"). Each split keeps one row per item, zeros where an item lacks a modality, a presence
mask, the log-mel statistics the sound judge uses, and the manifest items themselves.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..audio import SAMPLE_RATE, fit_length, log_mel_spectrogram, prepare_waveform
from ..data.manifest import Item, read_manifest
from .coherence import sound_features

logger = logging.getLogger(__name__)

MODALITIES = ("text", "image", "audio")
CLIP_SECONDS = 2  # as studio-train's cache: every sound cut or padded to 2 s


@dataclass
class EvalSplit:
    """Items with their embeddings ``[N, D_m]`` (zeros where missing) and presence masks ``[N]``."""

    items: list[Item]
    embeddings: dict[str, torch.Tensor]
    present: dict[str, torch.Tensor]
    sound_features: torch.Tensor  # (N, 160): the sound judge's features, zeros where there is no sound

    def __len__(self) -> int:
        return len(self.items)

    def rows(self, modalities: Sequence[str]) -> torch.Tensor:
        """Indices of the items that have every one of ``modalities``."""
        mask = torch.ones(len(self.items), dtype=torch.bool)
        for modality in modalities:
            mask &= self.present[modality]
        return mask.nonzero().flatten()

    def inputs(self, rows: torch.Tensor, modalities: Sequence[str]) -> dict[str, torch.Tensor]:
        """The embeddings of ``modalities`` for ``rows``, in the joint model's order."""
        return {m: self.embeddings[m][rows] for m in MODALITIES if m in modalities}

    def labels(self, field: str, rows: torch.Tensor | Sequence[int]) -> list[str]:
        """``concept``, ``category``, ``source`` or ``caption`` of ``rows``."""
        return [getattr(self.items[i], field) for i in torch.as_tensor(rows).tolist()]

    def keys(self, modality: str, rows: torch.Tensor | Sequence[int]) -> list[str]:
        """Media identities of ``rows``: the file for images and sounds, the normalised caption for text."""
        return [media_key(self.items[i], modality) for i in torch.as_tensor(rows).tolist()]

    def subset(self, mask: torch.Tensor) -> EvalSplit:
        """The items where the boolean ``mask`` ``[N]`` is set, with their embeddings and features."""
        rows = mask.nonzero().flatten()
        return EvalSplit(
            items=[self.items[i] for i in rows.tolist()],
            embeddings={m: e[rows] for m, e in self.embeddings.items()},
            present={m: p[rows] for m, p in self.present.items()},
            sound_features=self.sound_features[rows],
        )


def media_key(item: Item, modality: str) -> str:
    if modality == "text":
        return "text:" + " ".join(item.caption.lower().split())
    path = item.image if modality == "image" else item.sound
    return f"{modality}:{path}" if path else f"{modality}:none:{item.id}"


def clip_log_mel(path: str | Path) -> np.ndarray:
    """A sound file → the ``[80, 172]`` log-mel of its first 2 s (padded), as studio-train caches it."""
    return log_mel_spectrogram(fit_length(prepare_waveform(str(path)), CLIP_SECONDS * SAMPLE_RATE))


@torch.no_grad()
def embed_log_mels(audio_encoder, mels: torch.Tensor, chunk: int = 128) -> torch.Tensor:
    """Sound embeddings ``[N, D]`` of ``[N, 80, T]`` log-mels by the studio's sound encoder."""
    if len(mels) == 0:
        return torch.zeros(0, audio_encoder.embed_dim)
    network = audio_encoder.network
    parameter = next(network.parameters())
    return torch.cat([network(mels[s : s + chunk].to(parameter)).float().cpu() for s in range(0, len(mels), chunk)])


def assemble(
    items: list[Item], text: torch.Tensor, image: torch.Tensor, image_rows: torch.Tensor,
    audio: torch.Tensor, mels: torch.Tensor, sound_rows: torch.Tensor,
) -> EvalSplit:
    """One row per item from per-modality tensors and the rows they belong to."""
    count = len(items)
    embeddings, present = {"text": text.float()}, {"text": torch.ones(count, dtype=torch.bool)}
    for name, rows, values in (("image", image_rows, image), ("audio", sound_rows, audio)):
        full = torch.zeros(count, values.shape[1])
        full[rows] = values.float()
        embeddings[name] = full
        present[name] = torch.zeros(count, dtype=torch.bool)
        present[name][rows] = True
    features = torch.zeros(count, 2 * mels.shape[1])
    if len(sound_rows):
        features[sound_rows] = sound_features(mels)
    return EvalSplit(items=items, embeddings=embeddings, present=present, sound_features=features)


def load_train_split(run_folder: Path, corpus: Path, audio_encoder) -> EvalSplit:
    """The training items of a studio-train run, from its embedding cache (read only).

    Sound embeddings come from the run's ``audio`` cache when the sound encoder stage wrote one
    (the data the joint model was trained on), else from ``audio_encoder`` on the cached log-mels.
    """
    cache_folder = Path(run_folder) / "cache"
    if not (cache_folder / "embeddings.safetensors").is_file():
        raise ValueError(f"{cache_folder} holds no embeddings.safetensors: run `studio-train embeddings` first.")
    cache = load_file(str(cache_folder / "embeddings.safetensors"))
    ids = json.loads((cache_folder / "items.json").read_text())["ids"]
    by_id = {item.id: item for item in read_manifest(corpus)}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise ValueError(f"{len(missing)} cached items (e.g. {missing[0]!r}) are not in the corpus at {corpus}; pass the run's corpus.")
    audio_path = cache_folder / "audio.safetensors"
    if audio_path.is_file():
        audio = load_file(str(audio_path))["audio"]
    else:
        audio = embed_log_mels(audio_encoder, cache["mels"].float())
    mels = cache["mels"].float()
    return assemble(
        [by_id[i] for i in ids], cache["text"], cache["image"], cache["image_rows"], audio, mels, cache["sound_rows"]
    )


def select_heldout(items: Sequence[Item], limit: int | None, seed: int = 0) -> list[Item]:
    """Held-out items (both held-out splits), all of them or ``limit`` of them.

    A limited selection keeps the rare kinds first: items with a sound, then Tux Paint images
    (the image→caption floor), then a seeded sample of the rest.
    """
    heldout = sorted((i for i in items if i.split != "train"), key=lambda i: i.id)
    if limit is None or limit >= len(heldout):
        return heldout
    with_sound = [i for i in heldout if i.sound]
    tuxpaint = [i for i in heldout if i.source == "tuxpaint" and i.image and not i.sound]
    rest = [i for i in heldout if not i.sound and not (i.source == "tuxpaint" and i.image)]
    random.Random(seed).shuffle(rest)
    chosen = (with_sound + tuxpaint + rest)[:limit]
    return sorted(chosen, key=lambda i: i.id)


class HeldoutCache:
    """Text and image embeddings and 2-s log-mels of held-out items, kept in one safetensors file.

    Only the frozen pretrained encoders' outputs and the log-mels are cached; sound embeddings
    are recomputed from the log-mels by the studio being evaluated.
    """

    def __init__(self, folder: Path):
        self.path = Path(folder) / "heldout.safetensors"
        self.index_path = Path(folder) / "heldout.json"

    def load(self) -> dict[str, dict[str, torch.Tensor]]:
        if not self.path.is_file() or not self.index_path.is_file():
            return {}
        ids = json.loads(self.index_path.read_text())["ids"]
        tensors = load_file(str(self.path))
        entries: dict[str, dict[str, torch.Tensor]] = {i: {"text": tensors["text"][n]} for n, i in enumerate(ids)}
        for name, rows_key in (("image", "image_rows"), ("mel", "sound_rows")):
            for row, value in zip(tensors[rows_key].tolist(), tensors[name], strict=True):
                entries[ids[row]][name] = value
        return entries

    def save(self, entries: dict[str, dict[str, torch.Tensor]]) -> None:
        ids = sorted(entries)
        image_rows = [n for n, i in enumerate(ids) if "image" in entries[i]]
        sound_rows = [n for n, i in enumerate(ids) if "mel" in entries[i]]
        first_mel = next((entries[ids[n]]["mel"] for n in sound_rows), torch.zeros(80, 172))
        tensors = {
            "text": torch.stack([entries[i]["text"] for i in ids]),
            "image": torch.stack([entries[ids[n]]["image"] for n in image_rows]) if image_rows else torch.zeros(0, 1280),
            "image_rows": torch.tensor(image_rows, dtype=torch.long),
            "mel": torch.stack([entries[ids[n]]["mel"] for n in sound_rows]) if sound_rows else torch.zeros(0, *first_mel.shape),
            "sound_rows": torch.tensor(sound_rows, dtype=torch.long),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(temporary))
        temporary.replace(self.path)
        self.index_path.write_text(json.dumps({"ids": ids}))


def load_heldout_split(items: list[Item], corpus: Path, pipeline, work_folder: Path) -> EvalSplit:
    """The held-out ``items`` encoded by the pipeline's frozen encoders (cached in ``work_folder``)."""
    cache = HeldoutCache(work_folder)
    entries = cache.load()
    todo = [item for item in items if item.id not in entries]
    if todo:
        logger.info("encoding %d held-out items (cached in %s)", len(todo), cache.path)
        text = torch.cat([pipeline.text_encoder.encode([i.caption for i in todo[s : s + 256]]) for s in range(0, len(todo), 256)])
        for item, row in zip(todo, text, strict=True):
            entries[item.id] = {"text": row.cpu()}
        with_image = [i for i in todo if i.image]
        for start in range(0, len(with_image), 64):
            chunk = with_image[start : start + 64]
            features = pipeline.image_encoder.encode([str(Path(corpus) / i.image) for i in chunk]).cpu()
            for item, row in zip(chunk, features, strict=True):
                entries[item.id]["image"] = row
            logger.info("held-out images: %d / %d", min(start + 64, len(with_image)), len(with_image))
        for item in (i for i in todo if i.sound):
            entries[item.id]["mel"] = torch.from_numpy(clip_log_mel(Path(corpus) / item.sound))
        cache.save(entries)
    chosen = [entries[i.id] for i in items]
    image_rows = torch.tensor([n for n, e in enumerate(chosen) if "image" in e], dtype=torch.long)
    sound_rows = torch.tensor([n for n, e in enumerate(chosen) if "mel" in e], dtype=torch.long)
    mels = torch.stack([chosen[n]["mel"] for n in sound_rows.tolist()]) if len(sound_rows) else torch.zeros(0, 80, 172)
    images = torch.stack([chosen[n]["image"] for n in image_rows.tolist()]) if len(image_rows) else torch.zeros(0, 1280)
    return assemble(
        list(items), torch.stack([e["text"] for e in chosen]), images, image_rows,
        embed_log_mels(pipeline.audio_encoder, mels), mels, sound_rows,
    )
