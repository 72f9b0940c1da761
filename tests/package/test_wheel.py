"""The wheel as a new user gets it: built once, installed into a fresh venv outside the
checkout, `mediasrv init site && mediasrv run -c site/conf.d` in an empty directory, then real
calls through it that hear a prompt and the hold music, both read from the installed package.

How this works: the session fixture `wheel` copies the checkout's files (`git ls-files`) into a
temporary directory and builds there with `pip wheel --no-build-isolation` (the same PEP 517
build as `python -m build --wheel`, without downloading build requirements), so nothing
outside the source list can slip into the wheel. To keep the test fast the copy's build
directory is seeded with what `scripts/setup.sh` compiled from the same sources, the media
core and the signalling modules of mediasrv/compiled.py (setuptools then skips the C
compile); one missing or older than its sources is compiled by the wheel build (about 30 s
for the core, 12 s for the two signalling modules). The venv is created without the checkout
on its path and pip installs the wheel and its dependencies with the machine's pip cache and
wheel mirror.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mediasrv.compiled import MODULES as COMPILED
from tests.parallel import server_rtp_ports
from tests.peers import audio
from tests.peers.baresip import Baresip
from tests.peers.phone import TestPhone
from tests.peers.sipp import free_port

ROOT = Path(__file__).resolve().parents[2]
# one xdist worker runs this directory, so the session's wheel and venv are built once
pytestmark = [pytest.mark.peer, pytest.mark.timeout(240), pytest.mark.xdist_group("package")]


def _sh(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert out.returncode == 0, f"{' '.join(cmd)}:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}"
    return out


def _seed_compiled_core(src: Path) -> None:
    """Put the checkout's compiled modules where setuptools' build_ext looks, if current: the
    media core (from ext/) and the signalling modules of mediasrv/compiled.py (from their .py)."""
    lib = src / "build" / f"lib.{sysconfig.get_platform()}-{sys.implementation.cache_tag}"
    now = time.time()

    def seed(built: Path, c_files: list[Path]) -> None:
        for c_file in c_files:  # Cython's output of the sources: no re-cythonize
            copy = src / c_file.relative_to(ROOT)
            shutil.copyfile(c_file, copy)
            os.utime(copy, (now - 1, now - 1))
        target = lib / built.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(built, target)  # newer than its sources
        os.utime(target, (now, now))

    built = sorted(ROOT.glob("mediasrv/_media*.so"))
    newest_source = max(p.stat().st_mtime for p in (ROOT / "ext").glob("*.p*"))
    if built and built[0].stat().st_mtime >= newest_source:
        seed(built[0], sorted(ROOT.glob("ext/*.c")))
    for name in COMPILED:
        path = ROOT / name.replace(".", "/")
        built = sorted(path.parent.glob(f"{path.name}.cpython-*.so"))
        c_file = path.with_suffix(".c")
        if built and c_file.is_file() and \
                built[0].stat().st_mtime >= path.with_suffix(".py").stat().st_mtime:
            seed(built[0], [c_file])


_NOT_SOURCE = {".git", ".venv", "build", "dist", "var", "__pycache__", ".pytest_cache",
               ".ruff_cache", ".hypothesis", ".benchmarks"}


def _source_files() -> list[str]:
    """The checkout's files as git sees them (tracked and new, not ignored); without git (a
    source tarball), every file outside the build and cache directories."""
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, text=True)
    if out.returncode == 0 and out.stdout:
        return [n for n in out.stdout.split("\n") if n]
    return [str(p.relative_to(ROOT)) for p in ROOT.rglob("*")
            if p.is_file() and not _NOT_SOURCE & set(p.relative_to(ROOT).parts)
            and p.suffix not in (".so", ".c", ".pyc") and ".egg-info" not in str(p)]


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    src, dist = work / "src", work / "dist"
    for name in _source_files():
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    _seed_compiled_core(src)
    _sh([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(dist), str(src)], cwd=work)
    (built,) = dist.glob("mediasrv-*.whl")
    return built


@pytest.fixture(scope="session")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding the wheel and its dependencies, nothing from the checkout."""
    env = tmp_path_factory.mktemp("venv") / "venv"
    _sh([sys.executable, "-m", "venv", "--without-pip", str(env)])
    _sh([sys.executable, "-m", "pip", "--python", str(env / "bin" / "python"), "install", "-q",
         "--no-compile", str(wheel)], cwd=env)
    return env


def installed_env() -> dict[str, str]:
    drop = ("PYTHONPATH", "MEDIASRV_CONFIG", "CONFIGURATION_DIRECTORY", "STATE_DIRECTORY",
            "VIRTUAL_ENV", "NOTIFY_SOCKET")
    return {k: v for k, v in os.environ.items() if k not in drop}


def test_wheel_carries_everything_needed_at_run_time(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for lang in ("en", "it"):
        for prompt in ("beep", "busy", "failed", "invalid", "transfer", "unavailable",
                       "vm-greeting"):
            assert f"mediasrv/data/sounds/{lang}/{prompt}.wav" in names
    assert "mediasrv/data/sounds/moh/default.wav" in names
    assert {f"mediasrv/data/conf.d/{f}" for f in ("00-server.toml", "10-extensions.toml",
                                                  "20-moh.toml")} <= names
    assert {"mediasrv/data/plugins/attended_transfer.toml",
            "mediasrv/data/plugins/blind_transfer.toml"} <= names
    assert any(n.startswith("mediasrv/_media.") and n.endswith(".so") for n in names)
    for name in COMPILED:  # the signalling modules compiled, beside their readable source
        path = name.replace(".", "/")
        assert any(n.startswith(f"{path}.cpython-") and n.endswith(".so") for n in names), name
        assert f"{path}.py" in names
    assert not any(n.startswith(("tests/", "ext/", "bench/")) for n in names)


def test_installed_wheel_runs_the_compiled_modules(venv: Path) -> None:
    out = _sh([str(venv / "bin" / "python"), "-c",
               "import importlib, sys\n"
               "for name in sys.argv[1:]:\n"
               "    print(importlib.import_module(name).__file__)", *COMPILED],
              cwd=venv, env=installed_env())
    files = out.stdout.split()
    assert len(files) == len(COMPILED)
    for name, file in zip(COMPILED, files, strict=True):
        assert file.startswith(str(venv)) and file.endswith(".so"), (name, file)


def edit_site(conf: Path, sip_port: int, rtp_base: int) -> None:
    """What an operator does after `mediasrv init`: own ports (also for TLS: two suites on one
    machine must not both want 127.0.0.1:5061), one more failover rule."""
    server = conf / "00-server.toml"
    text = server.read_text()
    for old, new in ((":5060", f":{sip_port}"), (":5061", f":{free_port(socket.SOCK_STREAM)}"),
                     ("[20000, 29999]", f"[{rtp_base}, {rtp_base + 99}]"),
                     ('listen = "127.0.0.1:8088"', 'listen = ""')):
        assert old in text
        text = text.replace(old, new)
    server.write_text(text)
    with (conf / "10-extensions.toml").open("a") as f:
        f.write('\n[extensions.100.failover]\n'
                'not_registered = { action = "announce", prompt = "unavailable" }\n')


@pytest.fixture
def installed_server(venv: Path, tmp_path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """`mediasrv init site && mediasrv run -c site/conf.d` in an empty directory."""
    cwd = tmp_path / "empty"
    cwd.mkdir()
    bin_dir, env = venv / "bin", installed_env()
    out = _sh([str(bin_dir / "mediasrv"), "init", "site"], cwd=cwd, env=env)
    assert "mediasrv run -c site/conf.d" in out.stdout
    sip_port = free_port()
    edit_site(cwd / "site" / "conf.d", sip_port, server_rtp_ports()[0])
    proc = subprocess.Popen([str(bin_dir / "mediasrv"), "run", "-c", "site/conf.d"], cwd=cwd,
                            env=env, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        while "mediasrv ready" not in (line := proc.stderr.readline()):
            assert line, "server exited:\n" + "".join(lines)
            lines.append(line)
        threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True).start()
        with (cwd / "site" / "conf.d" / "10-extensions.toml").open("rb") as f:
            passwords = {n: e["password"] for n, e in tomllib.load(f)["extensions"].items()}
        yield sip_port, passwords
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0, "".join(lines)
        assert (cwd / "site" / "var" / "mediasrv.sqlite3").is_file()
    finally:
        proc.kill()
        proc.stderr.close()


def speech_like(pcm: np.ndarray) -> bool:
    """Audible audio (RMS well above the μ-law idle noise) that no identity tone explains."""
    return len(pcm) > 0 and float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) > 300 \
        and not audio.tones_in(pcm)


async def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


@pytest.mark.asyncio
async def test_installed_wheel_serves_calls_with_prompts_and_hold_music(
        installed_server: tuple[int, dict[str, str]]) -> None:
    port, passwords = installed_server
    server = ("127.0.0.1", port)
    # baresip (a real phone) as 101 calls 100, which is not registered: the packaged prompt
    async with Baresip("101", passwords["101"], tone="A", registrar=server) as a:
        await a.wait_registered()
        await a.dial(f"sip:100@127.0.0.1:{port}")
        await a.wait_event("CALL_ESTABLISHED", timeout=5)
        await wait_for(lambda: speech_like(a.recording()[-2400:]), 5,
                       "baresip to hear the 'unavailable' prompt")
        await a.wait_event("CALL_CLOSED", timeout=15)
        # 102 calls baresip (auto answer), talks, then holds it: baresip hears the MoH that
        # `mediasrv init` copied into site/sounds/moh
        b = TestPhone("B", "102", passwords["102"], server=server)
        await b.start()
        try:
            assert (await b.register()).status == 200
            call = await b.call(f"sip:101@127.0.0.1:{port}")
            await a.wait_hearing({"B"}, timeout=5)
            assert await call.hold() == 200
            await wait_for(lambda: speech_like(a.recording()[-2400:]), 5,
                           "baresip to hear the hold music instead of B")
            await call.hangup()
        finally:
            await b.close()
