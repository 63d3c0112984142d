"""Sharing as a Space: the README's front matter and requirements.txt agree with the project."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import gradio
import httpx
import yaml
from packaging.requirements import Requirement

from studio.requirements import requirements_text

ROOT = Path(__file__).resolve().parent.parent


def front_matter() -> dict:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n"), "README.md must open with the Space's YAML front matter"
    return yaml.safe_load(text.split("---\n")[1])


def test_readme_front_matter_describes_a_gradio_space():
    meta = front_matter()
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py"
    assert meta["python_version"] == "3.11" and isinstance(meta["python_version"], str)
    assert (ROOT / meta["app_file"]).is_file()
    assert len(meta["short_description"]) <= 60
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    gradio_spec = next(Requirement(d) for d in dependencies if Requirement(d).name == "gradio")
    assert gradio_spec.specifier.contains(meta["sdk_version"])
    assert meta["sdk_version"] == gradio.__version__  # the version the tests run


def test_requirements_txt_is_generated_from_pyproject():
    current = (ROOT / "requirements.txt").read_text(encoding="utf-8")
    assert current == requirements_text(), "requirements.txt is stale: run `python -m studio.requirements`"
    assert current.count("--extra-index-url https://download.pytorch.org/whl/cpu\n") == 1  # a CPU Space gets CPU torch
    listed = [line for line in current.splitlines() if line and not line.startswith(("#", "--"))]
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert listed == dependencies


def test_publishing_uploads_the_app_in_one_commit_and_leaves_tests_behind(tmp_path):
    from studio.space import publish, requirements_text, space_files

    files = space_files()
    assert {"app.py", "README.md", "requirements.txt", "pyproject.toml", "assets/embedded/model_index.json"} <= set(files)
    assert not any(name.startswith(("tests/", "experiments/", ".ci/")) for name in files)

    class FakeHub:
        def create_repo(self, repo_id, **options):
            self.repo = (repo_id, options)

        def create_commit(self, repo_id, operations, **options):
            self.commit = {op.path_in_repo: op for op in operations}

    hub = FakeHub()
    assert publish("you/fusion-studio", gpu=True, api=hub) == files
    assert hub.repo == ("you/fusion-studio", {"repo_type": "space", "space_sdk": "gradio", "private": False, "exist_ok": True})
    assert set(hub.commit) == set(files)
    uploaded = hub.commit["requirements.txt"].path_or_fileobj
    uploaded = uploaded if isinstance(uploaded, bytes) else uploaded.getvalue()
    assert uploaded.decode() == requirements_text(gpu=True) and "download.pytorch.org" not in uploaded.decode()  # a GPU Space: CUDA torch


def test_a_clean_copy_resolves_its_requirements_and_serves_as_a_space(tmp_path):
    from core.bench import free_port, serving
    from studio.space import space_files

    space = tmp_path / "space"
    for name in space_files():
        (space / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, space / name)
    # torch's CPU index is unreachable from here: resolve the rest as pip would on the Space
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("".join(line + "\n" for line in (space / "requirements.txt").read_text().splitlines() if not line.startswith("--")))
    report = tmp_path / "report.json"
    resolved = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet", "--report", str(report), "-r", str(requirements)],
        capture_output=True, text=True, timeout=600,
    )
    assert resolved.returncode == 0, resolved.stderr[-2000:]
    names = {item["metadata"]["name"].lower() for item in json.loads(report.read_text())["install"]}
    assert {"torch", "gradio", "diffusers"} <= names
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "SPACE_ID": "you/fusion-studio",
           "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port), "FUSION_STUDIO_HISTORY": str(tmp_path / "history")}
    with serving([sys.executable, "app.py"], port, timeout=180, env=env, cwd=space):  # no make, no install
        page = httpx.get(f"http://127.0.0.1:{port}/config", timeout=30)
        assert page.status_code == 200
    assert (tmp_path / "history" / "items").is_dir()


def test_a_wheel_carries_the_preset_and_the_examples_for_a_non_editable_install(tmp_path, monkeypatch):
    import sysconfig
    import zipfile

    import core.studio

    source = tmp_path / "source"  # built from a copy: setuptools writes build/ and *.egg-info into the tree
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, source / name)
    for name in ("core", "studio", "assets"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path)], check=True)
    wheel = zipfile.ZipFile(next(tmp_path.glob("fusion_studio-*.whl")))
    data = "fusion_studio-0.1.0.data/data/share/fusion-studio/assets/"
    packed = sorted(name.removeprefix(data) for name in wheel.namelist() if name.startswith(data))
    needed = sorted(str(path.relative_to(ROOT / "assets")) for folder in ("embedded", "examples") for path in (ROOT / "assets" / folder).rglob("*")
                    if path.is_file() and "eval" not in path.relative_to(ROOT / "assets").parts)
    assert packed == needed  # a new part's folder must be listed under [tool.setuptools.data-files]
    prefix = tmp_path / "prefix"
    for name in wheel.namelist():
        if name.startswith(data):
            target = prefix / "share" / "fusion-studio" / "assets" / name.removeprefix(data)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(wheel.read(name))
    monkeypatch.setattr(sysconfig, "get_path", lambda name, scheme=None: str(prefix))
    found = core.studio.find_assets(beside=tmp_path / "site-packages" / "assets")  # installed: nothing beside the packages
    assert found == prefix / "share" / "fusion-studio" / "assets"
    assert core.load_studio(found / "embedded").is_trained
