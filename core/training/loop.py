"""The resumable training loop every stage shares, on top of accelerate.

A stage gives its models and optimizers, a data loader and a ``step`` function that computes
its losses, calls ``runner.backward(loss)`` and steps its optimizers (a GAN stage steps two).
The runner cycles the data, logs, checkpoints every ``checkpoint_every`` steps with
``accelerator.save_state`` (weights as safetensors, optimizer and RNG states, the step count)
and resumes from the newest checkpoint in ``output_dir/checkpoints``. A stage can stop after
``max_minutes`` and the next call continues where it stopped. The same code runs on CPU, one
GPU or several machines through an accelerate config (``accelerate launch``): every process
runs the loop on its shard of each batch, the processes stop at the same step (the time limit
is agreed on), and only the main process prunes old checkpoints.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator, PartialState
from accelerate.utils import DistributedDataParallelKwargs, set_seed

logger = logging.getLogger(__name__)


@dataclass
class StageConfig:
    """How long and how a training stage runs."""

    output_dir: str | Path
    max_steps: int = 1000
    checkpoint_every: int = 200
    log_every: int = 50
    keep_checkpoints: int = 2
    max_minutes: float | None = None  # stop early (resumably) after this much wall time
    seed: int = 0
    mixed_precision: str = "no"  # "bf16" on CPUs with AMX or on GPUs


class Progress:
    """The step count, saved with every checkpoint."""

    def __init__(self):
        self.step = 0

    def state_dict(self) -> dict[str, int]:
        return {"step": self.step}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.step = int(state["step"])


@dataclass
class StageResult:
    """What a call of ``StageRunner.run`` did: the step reached, whether the stage is done, the losses logged."""

    step: int
    finished: bool
    history: list[dict[str, float]]
    seconds: float


def process_state() -> PartialState:
    """This process's place among those ``accelerate launch`` started, made as ``StageRunner``'s
    accelerator makes it (on a machine without CUDA the processes join over gloo on the CPU)."""
    return PartialState(cpu=not torch.cuda.is_available())


class StageRunner:
    """Runs one stage's steps with checkpoints and resume (see the module docstring)."""

    def __init__(self, config: StageConfig, accelerator: Accelerator | None = None):
        self.config = config
        self.output_dir = Path(config.output_dir)
        self.checkpoint_dir = self.output_dir / "checkpoints"
        # a batch without some modality leaves its parameters unused: DDP must not wait for their gradients
        unused = DistributedDataParallelKwargs(find_unused_parameters=True)
        self.accelerator = accelerator or Accelerator(mixed_precision=config.mixed_precision, cpu=not torch.cuda.is_available(), kwargs_handlers=[unused])
        self.progress = Progress()
        self.accelerator.register_for_checkpointing(self.progress)
        set_seed(config.seed)

    def prepare(self, *objects):
        """``accelerator.prepare`` for models, optimizers and loaders (call before ``run``)."""
        return self.accelerator.prepare(*objects)

    def backward(self, loss: torch.Tensor) -> None:
        self.accelerator.backward(loss)

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    def latest_checkpoint(self) -> Path | None:
        checkpoints = sorted(self.checkpoint_dir.glob("step-*"), key=lambda p: int(p.name.split("-")[1]))
        return checkpoints[-1] if checkpoints else None

    def resume(self) -> int:
        """Loads the newest checkpoint if there is one; returns the step reached."""
        latest = self.latest_checkpoint()
        if latest is not None:
            self.accelerator.load_state(str(latest))
            logger.info("resumed from %s at step %d", latest, self.progress.step)
        return self.progress.step

    def save_checkpoint(self) -> Path:
        """Saves the full training state at the current step and prunes old checkpoints."""
        path = self.checkpoint_dir / f"step-{self.progress.step:07d}"
        self.accelerator.save_state(str(path))
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            for old in sorted(self.checkpoint_dir.glob("step-*"))[: -self.config.keep_checkpoints]:
                shutil.rmtree(old, ignore_errors=True)
        return path

    def _out_of_time(self, deadline: float) -> bool:
        """Whether any process has reached ``deadline``: all stop at the same step, or DDP would hang."""
        late = time.perf_counter() >= deadline
        if self.accelerator.num_processes == 1 or deadline == math.inf:
            return late
        return bool(self.accelerator.reduce(torch.tensor([float(late)], device=self.device), reduction="sum").item() > 0)

    def run(self, loader: Iterable, step: Callable[[object, int], dict[str, float]]) -> StageResult:
        """Runs ``step(batch, step_index)`` until ``max_steps`` (or ``max_minutes``), resuming first.

        ``step`` returns its losses as floats; a non-finite loss stops the stage with an error.
        """
        start = time.perf_counter()
        deadline = start + 60 * self.config.max_minutes if self.config.max_minutes else math.inf
        self.resume()
        history: list[dict[str, float]] = []
        running: dict[str, list[float]] = {}
        while self.progress.step < self.config.max_steps and not self._out_of_time(deadline):
            batches = 0
            for batch in loader:
                batches += 1
                self._record(running, step(batch, self.progress.step))
                self.progress.step += 1
                if self.progress.step % self.config.log_every == 0:
                    history.append(self._log(running))
                    running = {}
                if self.progress.step % self.config.checkpoint_every == 0:
                    self.save_checkpoint()
                if self.progress.step >= self.config.max_steps or self._out_of_time(deadline):
                    break
            if batches == 0:
                raise ValueError("The training data loader is empty.")
        if running:
            history.append(self._log(running))
        if self.progress.step % self.config.checkpoint_every:
            self.save_checkpoint()  # the last steps, so that a later call resumes or finishes here
        finished = self.progress.step >= self.config.max_steps
        if not finished:
            logger.info("stopped at step %d after %.1f min; run again to resume", self.progress.step, self.config.max_minutes)
        return StageResult(self.progress.step, finished, history, time.perf_counter() - start)

    def _record(self, running: dict[str, list[float]], losses: dict[str, float]) -> None:
        for name, value in losses.items():
            if not math.isfinite(value):
                raise FloatingPointError(f"{name} became {value} at step {self.progress.step}; lower the learning rate.")
            running.setdefault(name, []).append(float(value))

    def _log(self, running: dict[str, list[float]]) -> dict[str, float]:
        means = {name: sum(values) / len(values) for name, values in running.items() if values}
        means["step"] = self.progress.step
        logger.info("step %d %s", self.progress.step, " ".join(f"{k}={v:.4f}" for k, v in means.items() if k != "step"))
        return means
