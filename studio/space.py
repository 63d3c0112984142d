"""Publish the studio as a Hugging Face Space in one command, from the working tree.

    python -m studio.space you/fusion-studio             # create the Space if needed, upload, one commit
    python -m studio.space you/fusion-studio --dry-run   # list what would go up
    python -m studio.space you/fusion-studio --gpu       # for GPU hardware: torch with CUDA

The files git tracks go up as one commit through ``huggingface_hub`` (not a git push, so the
repository's history, with every retrained copy of the weights, stays here); the Hub stores
large files in its LFS/Xet storage by itself. Tests, experiments, their reports and CI stay
behind. ``requirements.txt`` goes up as generated: torch's CPU wheels for a CPU Space, or with
``--gpu`` the CUDA ones. Signing in: ``huggingface-cli login`` or ``$HF_TOKEN``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from .requirements import requirements_text

ROOT = Path(__file__).resolve().parent.parent
LEFT_BEHIND = ("tests/", "experiments/", "docs/experiments/", ".ci/", ".github/")  # not needed to run the app


def space_files(root: Path = ROOT) -> list[str]:
    """The repository paths a Space needs: what git tracks (or, outside git, every file), minus
    ``LEFT_BEHIND`` and hidden files other than ``.gitattributes``."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):
        listed = [str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()]
    keep = []
    for name in filter(None, listed):
        hidden = any(part.startswith(".") for part in Path(name).parts) and name != ".gitattributes"
        if not hidden and not name.startswith(LEFT_BEHIND) and (root / name).is_file():
            keep.append(name)
    return sorted(keep)


def publish(repo_id: str, root: Path = ROOT, gpu: bool = False, private: bool = False, token: str | None = None, dry_run: bool = False, api=None) -> list[str]:
    """Creates the Space ``repo_id`` if needed and uploads ``space_files`` in one commit; returns the paths."""
    files = space_files(root)
    if dry_run:
        return files
    from huggingface_hub import CommitOperationAdd, HfApi

    api = api or HfApi(token=token)
    api.create_repo(repo_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
    operations = [
        CommitOperationAdd(path_in_repo=name, path_or_fileobj=requirements_text(root / "pyproject.toml", gpu=gpu).encode() if name == "requirements.txt" else str(root / name))
        for name in files
    ]
    api.create_commit(repo_id, operations=operations, repo_type="space", commit_message="Publish Fusion Studio")
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repo_id", help="the Space, as user/name")
    parser.add_argument("--gpu", action="store_true", help="the Space has a GPU: install torch with CUDA")
    parser.add_argument("--private", action="store_true", help="create the Space private")
    parser.add_argument("--dry-run", action="store_true", help="only list the files that would go up")
    args = parser.parse_args(argv)
    files = publish(args.repo_id, gpu=args.gpu, private=args.private, dry_run=args.dry_run)
    size = sum((ROOT / name).stat().st_size for name in files) / 1e6
    verb = "Would upload" if args.dry_run else "Uploaded"
    print(f"{verb} {len(files)} files ({size:.1f} MB) to the Space {args.repo_id}.", file=sys.stderr)
    if args.dry_run:
        print("\n".join(files))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
