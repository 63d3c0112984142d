"""Sharing as a Space: the README's front matter and requirements.txt agree with the project."""

from __future__ import annotations

import tomllib
from pathlib import Path

import gradio
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
