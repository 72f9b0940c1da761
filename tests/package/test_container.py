"""The container recipe (deploy/docker/Dockerfile) cannot be built here (no Docker engine), so
this checks what can go wrong without one: every shared library the wheel's media core needs
(its ELF NEEDED entries) comes from a Debian package the Dockerfile installs or the
python:3.11-slim-bookworm base already has, and the image runs the wheel with `mediasrv init`
on first start."""

from __future__ import annotations

import re
import shutil
import subprocess
import zipfile
from pathlib import Path

from tests.peers.require import missing

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
IN_BASE_IMAGE = {"libc6", "libssl3"}  # python:3.11-slim-bookworm ships these


def needed_packages(so: Path) -> set[str]:
    elf = subprocess.run(["readelf", "-d", str(so)], capture_output=True, text=True,
                         check=True).stdout
    packages = set()
    for lib in re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", elf):
        owner = subprocess.run(["dpkg", "-S", f"*/{lib}"], capture_output=True, text=True)
        assert owner.returncode == 0, f"no Debian package holds {lib}"
        packages.add(owner.stdout.split(":")[0])
    return packages


def test_dockerfile_installs_what_the_media_core_links(wheel: Path, tmp_path: Path) -> None:
    if not (shutil.which("readelf") and shutil.which("dpkg")):
        missing("readelf/dpkg missing (Debian binutils, dpkg)")
    with zipfile.ZipFile(wheel) as whl:
        (name,) = [n for n in whl.namelist()
                   if n.startswith("mediasrv/_media.") and n.endswith(".so")]
        so = Path(whl.extract(name, tmp_path))
    text = DOCKERFILE.read_text()
    (apt,) = re.findall(r"apt-get install -y --no-install-recommends ([^\\\n]+)", text)
    needed = needed_packages(so) - IN_BASE_IMAGE
    assert "libopus0" in needed  # the check sees the codecs' libraries
    assert needed <= set(apt.split()), f"Dockerfile lacks {needed - set(apt.split())}"
    assert "libsndfile1" in apt.split()  # soundfile loads it at run time (prompts, MoH)


def test_dockerfile_runs_the_wheel_and_inits_a_site() -> None:
    text = DOCKERFILE.read_text()
    assert text.startswith("#") and "FROM python:3.11-slim-bookworm\n" in text
    assert "pip install --no-cache-dir /tmp/mediasrv-*.whl" in text
    assert "--network host" in text and "VOLUME /var/lib/mediasrv" in text
    (cmd,) = re.findall(r"^CMD (.+)$", text, re.M)
    assert "mediasrv init site" in cmd and "exec mediasrv run -c site/conf.d" in cmd
