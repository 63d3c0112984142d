"""Training under several processes (``accelerate launch``, 2 CPU processes over gloo): the
joint stage's gradients are averaged, so the ranks stay equal and match one process with the
same global batch, and a checkpoint resumes under another process count."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

pytestmark = pytest.mark.slow  # starts processes that import torch
ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tests" / "scripts" / "train_joint.py"


def launch(processes: int, *args: str) -> subprocess.CompletedProcess:
    """Runs ``python *args`` in ``processes`` processes under ``accelerate launch`` (alone for one)
    and checks that it succeeded."""
    if processes > 1:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        # --multi_gpu is accelerate's torchrun launcher; without CUDA the processes join over gloo on the CPU
        args = ("-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes), "--num_machines", "1",
                "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(port), *args)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def train(out: Path, processes: int, batch: int, steps: int = 12, loss: str = "exact") -> dict:
    """Runs the tiny joint training in ``processes`` processes; returns the main process's result."""
    launch(processes, str(SCRIPT), "--out", str(out), "--batch", str(batch), "--steps", str(steps), "--loss", loss)
    return json.loads((out / "result.json").read_text())


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def test_two_processes_keep_equal_weights_and_match_one_process(tmp_path):
    two = train(tmp_path / "two", processes=2, batch=8)
    one = train(tmp_path / "one", processes=1, batch=16)
    assert two["processes"] == 2 and two["step"] == one["step"] == 12
    rank0, rank1, alone = (weights(path) for path in (tmp_path / "two" / "rank0.safetensors", tmp_path / "two" / "rank1.safetensors",
                                                       tmp_path / "one" / "rank0.safetensors"))
    assert all(torch.equal(rank0[name], rank1[name]) for name in rank0)  # without averaged gradients they drift apart (0.17)
    assert all(torch.allclose(rank0[name], alone[name], atol=1e-5) for name in rank0 if rank0[name].is_floating_point())


def test_the_sampled_objective_keeps_the_ranks_equal_and_a_checkpoint_resumes_with_another_process_count(tmp_path):
    run = tmp_path / "run"
    first = train(run, processes=2, batch=8, loss="joint")
    rank0, rank1 = weights(run / "rank0.safetensors"), weights(run / "rank1.safetensors")
    assert first["step"] == 12 and all(torch.equal(rank0[name], rank1[name]) for name in rank0)
    resumed = train(run, processes=1, batch=16, steps=18, loss="joint")  # the same global batch, one process
    assert resumed["step"] == 18 and resumed["logged"] == [15, 18]  # it went on from step 12


def test_studio_train_runs_a_stage_under_two_processes_and_saves_its_part_once(tmp_path):
    from core.fusion import JointLatentModel
    from core.training.stages import main
    from tests.test_train_stages import tiny_corpus

    corpus, run = tmp_path / "corpus", tmp_path / "run"
    tiny_corpus(corpus)
    common = ["--corpus", str(corpus), "--run", str(run), "--size", "tiny", "--steps", json.dumps({"sound_encoder": 2, "joint": 8})]
    main(["embeddings", *common])
    main(["sound_encoder", *common])
    launch(2, "-m", "core.training.stages", "joint", *common)
    assert sorted(path.name for path in (run / "stages" / "joint" / "checkpoints").iterdir()) == ["step-0000008"]
    assert JointLatentModel.from_pretrained(run / "parts" / "joint").config.latent_dim > 0


def test_the_documented_accelerate_configs_load():
    from accelerate.commands.config.config_args import load_config_from_file

    kinds = {path.stem: load_config_from_file(str(path)) for path in (ROOT / "docs" / "accelerate").glob("*.yaml")}
    assert {name: (config.distributed_type.value, config.num_machines) for name, config in kinds.items()} == {
        "one-gpu": ("NO", 1), "gpus": ("MULTI_GPU", 1), "machines": ("MULTI_GPU", 2)}


def test_training_on_a_users_folder_under_two_processes(tmp_path, tiny_studio):
    from core import load_studio
    from tests.test_user_data import user_folder

    tiny_studio.save_pretrained(tmp_path / "preset")
    done = launch(2, "-m", "core.training.stages", "--data", str(user_folder(tmp_path / "mine")), "--preset", str(tmp_path / "preset"),
                  "--out", str(tmp_path / "out"), "--run", str(tmp_path / "run"), "--steps", "4", "--batch-size", "2")
    assert done.stdout.count("wrote ") == 1  # the main process alone writes the studio
    assert load_studio(tmp_path / "out").weights_version.startswith("user-")
