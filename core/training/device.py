"""Training one stage on a lent GPU machine: pack what it reads, run it there, unpack what comes back.

    studio-train pack image_diffusion --corpus C --run RUN --minutes 7   # here: .device/image_diffusion, and the call to make
    python -m core.training.device .device/image_diffusion --out $OUT    # there: the stage under its time budget
    studio-train unpack image_diffusion --corpus C --run RUN --from DIR  # here: the returned parts become the run's

The GPU machine has no packaged encoders and no corpus, and takes 64 MiB along, so a pack holds
only what the stage reads: the run's cached tensors it uses (floats as fp16; pictures as the
trained autoencoder's latents), the parts it starts from (fp16 weights and their configs), the
schedulers it uses, the pipeline settings it reads, and a plan whose step budget is left open,
so that the time budget ends the call (``--minutes``; bf16 autocast on CUDA). There the stage
runs as it does here, then the parts come back as fp16 safetensors in shards under 16 MB, with
``device.json`` (steps, seconds, samples/s, losses). Unpacking saves them as the run's parts
in fp32 and sets the run's own checkpoints of that stage aside, so a later call here goes on
from the returned weights (with a fresh optimiser) rather than from older ones.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace

import torch
from safetensors.torch import save_file

from ..decoders.embedding_prior import EmbeddingPrior
from .stages import Run, TrainPlan, image_latents, save_sound_embeddings

logger = logging.getLogger(__name__)

DEVICE_FOLDER = Path(".device")  # inside the project, ignored by git: what travels is named in the run's carry
OPEN_BUDGET = 10**9  # steps: the time budget ends a device call
RETURN_SHARD_SIZE = "15MB"  # each file that comes back stays under 16 MB
PIPELINE_SETTINGS = ("mel_frames", "mel_mean", "mel_std")


@dataclass(frozen=True)
class Needs:
    """What one stage reads: cached tensors by file and key, the parts it trains, the schedulers it uses."""

    cache: dict[str, tuple[str, ...]]
    parts: tuple[str, ...]
    schedulers: tuple[str, ...] = field(default=())
    inputs: tuple[str, ...] = field(default=())  # trained parts it reads but does not train


JOINT_CACHE = {"embeddings": ("text", "image", "image_rows", "sound_rows"), "audio": ("audio",)}
DEVICE_STAGES = {
    "sound_encoder": Needs({"embeddings": ("mels", "text", "sound_rows")}, ("audio_encoder",)),
    "joint": Needs(JOINT_CACHE, ("joint",)),
    "image_prior": Needs(JOINT_CACHE, ("image_prior",), inputs=("joint",)),
    "image_diffusion": Needs({"embeddings": ("latents", "image")}, ("image_unet", "image_condition"), ("image_scheduler",)),
    "sound_diffusion": Needs({"embeddings": ("mels",), "audio": ("audio",)}, ("audio_unet", "audio_condition"), ("audio_scheduler",)),
}


def _needs(stage: str) -> Needs:
    if stage not in DEVICE_STAGES:
        raise ValueError(
            f"Stage {stage!r} does not run on the GPU machine from a pack; choose from {sorted(DEVICE_STAGES)} "
            "(the autoencoder stages need the packaged EfficientNet, the caption stage MiniLM's tokenizer)."
        )
    return DEVICE_STAGES[stage]


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


# --- here: pack ------------------------------------------------------------------------------


def pack_stage(stage: str, run: Run, pipeline, into: Path, minutes: float, batch_size: int | None = None) -> Path:
    """Writes the folder a device call of ``stage`` needs (see the module docstring); returns it."""
    needs = _needs(stage)
    if into.exists():
        shutil.rmtree(into)
    (into / "cache").mkdir(parents=True)
    for name, keys in needs.cache.items():
        tensors = {} if name != "embeddings" or "latents" not in keys else {"latents": image_latents(run, pipeline)}
        stored = run.tensors(name)
        tensors.update({key: stored[key] for key in keys if key != "latents"})
        save_file({key: (value.half() if value.is_floating_point() else value).contiguous() for key, value in tensors.items()}, str(into / "cache" / f"{name}.safetensors"))
    classes = {}
    for name in (*needs.inputs, *needs.parts):
        component = run.part(name, getattr(pipeline, name))
        if name in needs.inputs and not getattr(component, "is_trained", False):
            raise ValueError(f"Stage {stage} reads the trained {name}: train it first.")
        if name == "image_prior" and not isinstance(component, EmbeddingPrior):
            component = pipeline.image_prior  # the diffusion prior replaces a bank, as the stage does here
        component.to(torch.float16).save_pretrained(into / "parts" / name)
        component.to(torch.float32)
        classes[name] = [type(component).__module__, type(component).__qualname__]
    for name in needs.schedulers:
        getattr(pipeline, name).save_pretrained(into / "schedulers" / name)
    plan = TrainPlan(**{**asdict(run.plan), "max_minutes": minutes, "mixed_precision": "bf16"})
    plan.steps[stage] = OPEN_BUDGET
    if batch_size is not None:
        plan.batch_size[stage] = batch_size
    manifest = {
        "stage": stage, "classes": classes, "schedulers": list(needs.schedulers),
        "settings": {key: getattr(pipeline.config, key) for key in PIPELINE_SETTINGS}, "plan": asdict(plan),
    }
    (into / "pack.json").write_text(json.dumps(manifest, indent=2))
    return into


def run_call(folder: Path, minutes: float) -> str:
    """The device tool's call for a pack: install the missing wheels, run the stage, leave its parts in $OUT."""
    install = ("python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl"
               " && export PYTHONPATH=/tmp/site:$PWD")
    return (f"{install} && PYTHONUNBUFFERED=1 timeout {int(60 * minutes + 150)} python3 -m core.training.device {folder} --out $OUT")


# --- there: run ------------------------------------------------------------------------------


def _load(module: str, qualname: str, folder: Path):
    from ..pipelines.build import load_component

    component_class = getattr(importlib.import_module(module), qualname)
    return load_component(component_class, folder, seed=0)


def run_pack(folder: Path, out: Path) -> dict:
    """Runs a pack's stage once under its time budget and writes the trained parts and ``device.json`` to ``out``."""
    from . import stages

    manifest = json.loads((folder / "pack.json").read_text())
    stage = manifest["stage"]
    plan = TrainPlan(**manifest["plan"])
    if not torch.cuda.is_available():
        plan.mixed_precision = "no"  # a rehearsal on the CPU
    run = Run(corpus=folder, folder=folder, plan=plan)
    pipeline = SimpleNamespace(
        config=SimpleNamespace(**manifest["settings"]),
        **{name: _load(*where, folder / "parts" / name) for name, where in manifest["classes"].items()},
        **{name: _load("diffusers", json.loads((folder / "schedulers" / name / "scheduler_config.json").read_text())["_class_name"],
                       folder / "schedulers" / name) for name in manifest["schedulers"]},
    )
    start = time.perf_counter()
    getattr(stages, f"stage_{stage}")(run, pipeline)
    result = run.last_result
    # the time budget stopped it: its budget becomes the step reached, so a second call saves the parts
    run.plan.steps[stage] = result.step
    getattr(stages, f"stage_{stage}")(run, pipeline)
    batch = plan.batch_size[stage]
    report = {
        "stage": stage, "steps": result.step, "seconds": round(result.seconds, 1), "batch_size": batch,
        "samples_per_second": round(result.step * batch / result.seconds, 1) if result.seconds else None,
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu", "mixed_precision": plan.mixed_precision,
        "wall_seconds": round(time.perf_counter() - start, 1), "history": result.history,
    }
    out.mkdir(parents=True, exist_ok=True)
    for name in _needs(stage).parts:
        part = run.part(name, pipeline.__dict__[name]).to(torch.float16)
        part.save_pretrained(out / name, max_shard_size=RETURN_SHARD_SIZE)
    (out / "device.json").write_text(json.dumps(report, indent=2))
    logger.info("%s: %d steps in %.0f s, %s samples/s on %s", stage, result.step, result.seconds, report["samples_per_second"], report["device"])
    return report


# --- here: unpack ----------------------------------------------------------------------------


def unpack_stage(stage: str, run: Run, pipeline, returned: Path) -> dict:
    """Saves the parts a device call returned as the run's (fp32), sets the run's own checkpoints
    of the stage aside and keeps the call's report under ``<run>/device/``; returns the report."""
    from ..pipelines.build import load_component, saved_class

    needs = _needs(stage)
    missing = [name for name in needs.parts if not any((returned / name).glob("*.safetensors"))]
    if missing:
        raise ValueError(f"{returned} lacks the trained {', '.join(missing)}: did the device call finish? Its log says.")
    for name in needs.parts:
        part = load_component(saved_class(returned / name, type(getattr(pipeline, name))), returned / name, seed=0)
        run.save_part(name, part.to(torch.float32))
    own = run.folder / "stages" / stage
    if own.is_dir():
        own.rename(own.with_name(f"{stage}.before-device-{time.strftime('%Y%m%d-%H%M%S')}"))
    if stage == "sound_encoder":
        save_sound_embeddings(run, run.part("audio_encoder", pipeline.audio_encoder), run.tensors("embeddings")["mels"])
    report = json.loads((returned / "device.json").read_text()) if (returned / "device.json").is_file() else {"stage": stage}
    (run.folder / "device").mkdir(exist_ok=True)
    (run.folder / "device" / f"{stage}-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(json.dumps(report, indent=2))
    return report


def main(argv: list[str] | None = None) -> None:
    """``studio-train pack|unpack STAGE ...`` here; ``python -m core.training.device PACK --out DIR`` there."""
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if argv and argv[0] in ("pack", "unpack"):
        from ..pipelines.build import build_studio_pipeline

        parser = argparse.ArgumentParser(prog=f"studio-train {argv[0]}")
        parser.add_argument("stage", choices=sorted(DEVICE_STAGES))
        parser.add_argument("--corpus", type=Path, required=True, help="the corpus folder the run was trained on")
        parser.add_argument("--run", type=Path, required=True, help="the run folder (its caches and parts)")
        if argv[0] == "pack":
            parser.add_argument("--into", type=Path, default=None, help="the pack folder (default: .device/STAGE)")
            parser.add_argument("--minutes", type=float, default=7.0, help="the stage's time budget there")
            parser.add_argument("--batch-size", type=int, default=None, help="the stage's batch size there (default: the plan's)")
        else:
            parser.add_argument("--from", dest="returned", type=Path, required=True, help="the folder the device call's files came back to")
        args = parser.parse_args(argv[1:])
        run = Run(args.corpus, args.run, TrainPlan.of_run(args.run))
        pipeline = build_studio_pipeline(run.plan.size, preset="embedded")
        if argv[0] == "unpack":
            report = unpack_stage(args.stage, run, pipeline, args.returned)
            print(json.dumps({key: value for key, value in report.items() if key != "history"}))
            return
        into = args.into or DEVICE_FOLDER / args.stage
        pack_stage(args.stage, run, pipeline, into, args.minutes, args.batch_size)
        size = folder_bytes(into)
        print(f"packed {into}: {size / 2**20:.1f} MiB (with the project, at most 64 MiB travel: move assets/embedded aside first)")
        print(f"device call: {run_call(into, args.minutes)}")
        print(f"carry: [\"{into}\", \".whl\"]")
        return
    parser = argparse.ArgumentParser(prog="python -m core.training.device", description="Run a packed stage (on the GPU machine).")
    parser.add_argument("pack", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    run_pack(args.pack, args.out)


if __name__ == "__main__":
    main()
