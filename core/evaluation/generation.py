"""Generation: each method's predicted embedding goes through the studio's own decoders, and
the media that come out are judged for coherence and fidelity.

Every method shares the studio's decoders (they are trained on single-modality data, each
conditioned on its own encoder's embedding), so only the step from inputs to the output's
embedding differs between methods. Tasks: text→image, image→sound, image→caption and
(text+image)→image, on the same held-out prompts for every method.

- coherence: the nearest-real-item judge of ``coherence.py``, beside chance and real data;
- fidelity: Fréchet distance in the judge's feature space (its leading principal components)
  between generated and real held-out media (real data: the prompts' own real media against the same set, as a reference).

Sounds are judged on the log-mel spectrogram the diffusion decoder makes, before the fixed
pretrained vocoder turns it into a waveform.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from PIL import Image

from ..audio import log_mel_spectrogram
from .coherence import LEVELS, Judge, sound_features
from .dataset import EvalSplit
from .methods import Method
from .metrics import frechet_distance_from_statistics, gaussian_statistics
from .subsets import subset_name
from .table import Table

logger = logging.getLogger(__name__)

TASKS = [(("text",), "image"), (("image",), "audio"), (("image",), "text"), (("text", "image"), "image")]
OUTPUT_NAMES = {"image": "image", "audio": "sound", "text": "caption"}
SOUND_FRAMES = 172  # the 2 s of the cached real sounds
FIDELITY_COMPONENTS = 32


def task_name(inputs: Sequence[str], output: str) -> str:
    """``(("image",), "text")`` → ``"image→caption"``."""
    return f"{subset_name(inputs)}→{OUTPUT_NAMES[output]}"


@dataclass
class GenerationSettings:
    """How much to generate: prompts per task, diffusion steps, guidance and scheduler (None: the studio's)."""

    prompts: int = 128
    steps: int | None = None
    guidance: float | None = None
    scheduler: str | None = None
    seed: int = 0
    batch_size: int = 16
    caption_method: str = "beam"


@dataclass
class GenerationResult:
    """The coherence tables (concept, category), the fidelity table and a few images to show."""

    coherence: Table
    coherence_category: Table
    fidelity: Table
    samples: dict[str, list[Image.Image]] = field(default_factory=dict)  # method → text→image outputs
    sample_rows: list[int] = field(default_factory=list)  # the held-out rows that prompted them


def build_judge(output: str, *splits: EvalSplit, embeddings: bool = False) -> Judge:
    """The judge of ``output`` media: every real item of ``splits`` (train and held-out) that has
    it, in the judge's feature space, or with ``embeddings`` in the output's embedding space."""
    features, concepts, categories, keys = [], [], [], []
    for split in splits:
        rows = split.rows([output])
        features.append(split.embeddings[output][rows] if embeddings else real_features(split, output, rows))
        concepts += split.labels("concept", rows)
        categories += split.labels("category", rows)
        keys += judge_keys(split, output, rows)
    metric = "euclidean" if output == "audio" and not embeddings else "cosine"
    return Judge(torch.cat(features), concepts, categories, keys, metric=metric)


def predicted_coherence_table(methods: Sequence[Method], train: EvalSplit, test: EvalSplit, prompts: int | None = None, seed: int = 0) -> Table:
    """Generation coherence without the decoders: the nearest real item to each method's
    predicted embedding (cosine, in that modality's embedding space) has the prompt's concept.

    It needs no diffusion, so it can score every held-out prompt of every generation task, and
    it tells apart what the joint model contributes from what the shared decoders do.
    """
    names = [task_name(i, o) for i, o in TASKS]
    table = Table("predicted_coherence", "Coherence of the predicted embedding: nearest real item of the prompt's concept", names,
                  note="The generation tasks scored on the predicted embedding itself (EfficientNet, the sound encoder's or "
                  "MiniLM space), before any decoder; the nearest real train or held-out item, the prompt's own media left out.")
    table.rows = {m.name: {} for m in methods}
    table.references = {"chance": {}, "real data": {}}
    for inputs, output in TASKS:
        name, judge = task_name(inputs, output), build_judge(output, train, test, embeddings=True)
        rows = choose_prompts(test, inputs, output, judge, prompts or len(test), seed)
        labels = (test.labels("concept", rows), test.labels("category", rows), judge_keys(test, output, rows))
        table.counts[name] = len(rows)
        table.references["chance"][name] = judge.chance(*labels)["concept"] if len(rows) else None
        real = rows[test.present[output][rows]]
        table.references["real data"][name] = judge.score(
            test.embeddings[output][real], test.labels("concept", real), test.labels("category", real), judge_keys(test, output, real)
        )["concept"] if len(real) else None
        for method in methods:
            z = method.encode(test.inputs(rows, inputs)) if len(rows) else None
            predicted = None if z is None else method.predict(z, output)
            table.record(method.name, name, None if predicted is None else judge.hits(predicted.float(), *labels)["concept"].tolist(), ids=rows)
    return table


def judge_keys(split: EvalSplit, output: str, rows: torch.Tensor) -> list[str]:
    """What the judge leaves out for each prompt: its own image or sound file (so copies of it
    too), or its own caption (other items' identical captions stay: they are other items)."""
    if output == "text":
        return [f"item:{split.items[i].id}" for i in rows.tolist()]
    return split.keys(output, rows)


def real_features(split: EvalSplit, output: str, rows: torch.Tensor) -> torch.Tensor:
    """The judge's features of real media: EfficientNet, log-mel statistics or MiniLM."""
    return split.sound_features[rows] if output == "audio" else split.embeddings[output][rows]


def choose_prompts(test: EvalSplit, inputs: Sequence[str], output: str, judge: Judge, count: int, seed: int) -> torch.Tensor:
    """Up to ``count`` held-out items with the inputs whose concept the judge can recognise (seeded).

    Items that also have real ``output`` media come first (they give the real-data row); others
    fill up the count (few held-out items have both an image and a sound).
    """
    rows = test.rows(inputs)
    judgeable = judge.judgeable(test.labels("concept", rows), judge_keys(test, output, rows))
    candidates = rows[torch.from_numpy(judgeable)].tolist()
    random.Random(seed).shuffle(candidates)
    candidates.sort(key=lambda row: not test.present[output][row])  # stable: shuffled within each group
    return torch.tensor(sorted(candidates[:count]), dtype=torch.long)


class MediaGenerator:
    """Turns predicted embeddings into the judge's features through the studio pipeline's decoders."""

    def __init__(self, pipeline, settings: GenerationSettings):
        self.pipeline, self.settings = pipeline, settings

    def features(self, embeddings: torch.Tensor, output: str) -> tuple[torch.Tensor, list]:
        """``[N, D]`` predicted embeddings → ``([N, F]`` judge features, the media made)."""
        feats, media = [], []
        size = self.settings.batch_size
        for start in range(0, len(embeddings), size):
            chunk = embeddings[start : start + size].to(self.pipeline.device)
            seeds = [self.settings.seed + start + i for i in range(len(chunk))]
            made = self.make(chunk, output, seeds)
            media += made if output != "audio" else []
            feats.append(self.describe(made, output))
        return torch.cat(feats), media

    @torch.no_grad()
    def make(self, embeddings: torch.Tensor, output: str, seeds: list[int]):
        """PIL images, caption strings, or log-mels ``[N, 80, T]``: row i drawn with ``seeds[i]``."""
        pipeline = self.pipeline
        steps, guidance = pipeline.resolve_defaults(output if output != "text" else "caption", self.settings.steps, self.settings.guidance)
        generators = [torch.Generator().manual_seed(s) for s in seeds]
        if output == "image":
            return pipeline.decode_image(embeddings, steps, guidance, generators, None, self.settings.scheduler)
        if output == "text":
            return pipeline.decode_caption(embeddings, seeds[0], self.settings.caption_method)
        if pipeline.audio_hub_decoder is not None:  # only a waveform comes out: back to a log-mel
            return waveform_log_mels(pipeline.decode_audio(embeddings, steps, guidance, generators, None, self.settings.scheduler))
        return pipeline.denoise_log_mels(embeddings, steps, guidance, generators, None, self.settings.scheduler).cpu()  # before the vocoder

    @torch.no_grad()
    def describe(self, made, output: str) -> torch.Tensor:
        """The judge's features of what ``make`` made."""
        if output == "image":
            return self.pipeline.image_encoder.encode(list(made)).float().cpu()
        if output == "text":
            return self.pipeline.text_encoder.encode([c if c.strip() else "." for c in made]).float().cpu()
        return sound_features(made[..., :SOUND_FRAMES])


def waveform_log_mels(sounds: Sequence[tuple[int, object]]) -> torch.Tensor:
    """``(sample_rate, waveform)`` pairs at the studio's rate → log-mels ``[N, 80, T]``, as the sound judge reads them."""
    return torch.stack([torch.from_numpy(log_mel_spectrogram(wave)) for _, wave in sounds])


def generation_tables(
    methods: Sequence[Method], pipeline, train: EvalSplit, test: EvalSplit, settings: GenerationSettings, num_samples: int = 8
) -> GenerationResult:
    """Generates for every task and method, and scores coherence and fidelity."""
    names = [task_name(i, o) for i, o in TASKS]
    note = "Nearest real item (train and held-out, the prompt's own media left out) in a fixed feature space"
    resolution = " One prompt moves a column by 1/n, so methods a prompt or two apart are level within sampling noise."
    result = GenerationResult(
        Table("coherence", "Generation coherence: nearest real item of the prompt's concept", list(names),
              note=note + " (EfficientNet for images, log-mel band statistics for sounds, MiniLM for captions)." + resolution),
        Table("coherence_category", "Generation coherence: nearest real item of the prompt's category", list(names), note=note + "." + resolution),
        Table("fidelity", "Fidelity: Fréchet distance to real held-out media (lower is better)",
              ["text→image", "image→sound"], higher_is_better=False,
              note=f"Fréchet distance in the top {FIDELITY_COMPONENTS} principal components of the real held-out media's "
              "EfficientNet features (images) and log-mel statistics (sounds); "
              "'real data' is the prompts' own real media; both against the other held-out items' real media."),
    )
    for table in (result.coherence, result.coherence_category, result.fidelity):
        table.rows = {m.name: {} for m in methods}
    result.coherence.references = {"chance": {}, "real data": {}}
    result.coherence_category.references = {"chance": {}, "real data": {}}
    result.fidelity.references = {"real data": {}}
    generator = MediaGenerator(pipeline, settings)
    for (inputs, output), name in zip(TASKS, names, strict=True):
        judge = build_judge(output, train, test)
        prompts = choose_prompts(test, inputs, output, judge, settings.prompts, settings.seed)
        logger.info("%s: %d prompts", name, len(prompts))
        distance = fidelity_to(real_features(test, output, fidelity_reference(test, output, prompts))) if name in result.fidelity.columns else None
        score_references(result, name, judge, test, prompts, output, distance)
        if name == "text→image":
            result.sample_rows = prompts[:num_samples].tolist()
        for method in methods:
            features, media = generate(method, generator, test, prompts, inputs, output)
            hits = None if features is None else judge.hits(
                features, test.labels("concept", prompts), test.labels("category", prompts), judge_keys(test, output, prompts)
            )
            for level, table in zip(LEVELS, (result.coherence, result.coherence_category), strict=True):
                table.record(method.name, name, None if hits is None else hits[level].tolist(), ids=prompts)
            if distance is not None:
                result.fidelity.record_statistic(method.name, name, features, distance, ids=prompts)
            if name == "text→image" and media:
                result.samples[method.name] = media[:num_samples]
    return result


@torch.no_grad()
def made_embeddings(method: Method, test: EvalSplit, prompts: torch.Tensor, inputs, output: str) -> torch.Tensor | None:
    """The ``output`` embeddings ``method`` makes from the prompts' ``inputs``, as the studio makes
    them before its decoders (the latent drawn, then predicted or drawn through a prior); None if it cannot."""
    z = method.draw(test.inputs(prompts, inputs), output)
    return None if z is None else method.predict(z, output)


def generate(method: Method, generator: MediaGenerator, test: EvalSplit, prompts: torch.Tensor, inputs, output):
    """The judge's features of what ``method`` makes from the prompts (None if it cannot)."""
    if len(prompts) == 0:
        return None, []
    embeddings = made_embeddings(method, test, prompts, inputs, output)
    if embeddings is None:
        return None, []
    logger.info("generating %s with %s", task_name(inputs, output), method.name)
    return generator.features(embeddings, output)


def score_references(
    result: GenerationResult, name: str, judge: Judge, test: EvalSplit, prompts: torch.Tensor, output: str,
    distance: Callable[[torch.Tensor], float | None] | None = None,
) -> None:
    """Chance and real data for one task, at both levels; the fidelity of real data (``distance``: to the real reference)."""
    result.coherence.counts[name] = result.coherence_category.counts[name] = len(prompts)
    concepts, categories, keys = (test.labels("concept", prompts), test.labels("category", prompts), judge_keys(test, output, prompts))
    chance = judge.chance(concepts, categories, keys) if len(prompts) else dict.fromkeys(LEVELS)
    with_real = prompts[test.present[output][prompts]]
    real = None
    if len(with_real):
        real = judge.score(real_features(test, output, with_real), test.labels("concept", with_real),
                           test.labels("category", with_real), judge_keys(test, output, with_real))
    for level, table in zip(LEVELS, (result.coherence, result.coherence_category), strict=True):
        table.references["chance"][name] = chance[level]
        table.references["real data"][name] = None if real is None else real[level]
    if distance is not None:
        result.fidelity.counts[name] = len(prompts)
        result.fidelity.references["real data"][name] = distance(real_features(test, output, with_real)) if len(with_real) else None


def fidelity_reference(test: EvalSplit, output: str, prompts: torch.Tensor) -> torch.Tensor:
    """The held-out items with real ``output`` media, the prompts left out."""
    rows = test.rows([output])
    return rows[~torch.isin(rows, prompts)]


def fidelity_to(real: torch.Tensor, components: int = FIDELITY_COMPONENTS) -> Callable[[torch.Tensor], float | None]:
    """The Fréchet distance to ``real`` media as a function of generated features (None with
    under two samples a side), in the real features' top principal components.

    Tens of samples cannot estimate a 1280-d covariance; the leading components of the real
    media (fixed by the real data alone, the same for every method) can be.
    """
    real = real.double()
    if len(real) < 2:
        return lambda generated: None
    mean = real.mean(0)
    basis = torch.linalg.svd(real - mean, full_matrices=False).Vh[: min(components, len(real) - 1)]  # (K, D)
    real_statistics = gaussian_statistics(((real - mean) @ basis.T).numpy())

    def distance(generated: torch.Tensor) -> float | None:
        if len(generated) < 2:
            return None
        projected = ((generated.double() - mean) @ basis.T).numpy()
        return frechet_distance_from_statistics(*gaussian_statistics(projected), *real_statistics)

    return distance


def fidelity(generated: torch.Tensor, real: torch.Tensor, components: int = FIDELITY_COMPONENTS) -> float | None:
    """Fréchet distance of generated to real features (see ``fidelity_to``)."""
    return fidelity_to(real, components)(generated)
