"""Run SIPp scenarios (``tests/sipp/*.xml``) as subprocesses and read back their outcome.

How this works
--------------
``Sipp`` prepares a private working directory with the injection CSV (one line per user:
``user;[authentication username=U password=P];P``, read SEQUENTIAL, so scenarios say
``[field0]`` for the user, ``[field1]`` for the Authorization line, ``[field2]`` for the
password) and ``tone.ulaw``
(raw μ-law of an identity tone, what the scenarios' ``rtp_stream`` plays). It then starts
``sipp -sf X.xml [remote] -i 127.0.0.1 -p PORT -m N ...`` there with ``-nostdin`` (no
curses), traces errors, statistics (``-trace_stat``, ';'-separated CSV, last row = final)
and the final screen, and a global ``-timeout`` so a stuck peer cannot hang a test.

SIPp exit codes: 0 all calls succeeded, 1 some call failed, 97 exit on internal command,
99 normal exit without calls, 255/254 fatal (e.g. cannot bind).
"""

from __future__ import annotations

import asyncio
import csv
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tests.parallel import peer_ports
from tests.peers import audio
from tests.peers.require import require_binary

SCENARIOS = Path(__file__).resolve().parent.parent / "sipp"
DEFAULT_KEYS = {"expires": "300"}
TONE_SECONDS = 2  # rtp_stream loops the file


def free_port(kind: int = socket.SOCK_DGRAM, even: bool = False) -> int:
    """A currently free loopback port (UDP by default)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if not even or port % 2 == 0:
            return port
    raise OSError("no free port")


def scenario_path(name: str | Path) -> Path:
    """``name`` as given if it is a path, else ``tests/sipp/<name>[.xml]``."""
    p = Path(name)
    if p.suffix == ".xml" and p.exists():
        return p.resolve()
    return SCENARIOS / (p.name if p.suffix == ".xml" else f"{p.name}.xml")


@dataclass
class SippResult:
    """What a SIPp run left behind."""

    returncode: int
    command: list[str]
    stats: dict[str, str] = field(default_factory=dict)
    errors: str = ""
    screen: str = ""
    stderr: str = ""
    messages: str = ""

    @property
    def successful(self) -> int:
        """Calls (scenario runs) that completed."""
        return int(self.stats.get("SuccessfulCall(C)", 0) or 0)

    @property
    def failed(self) -> int:
        """Calls that failed."""
        return int(self.stats.get("FailedCall(C)", 0) or 0)

    @property
    def ok(self) -> bool:
        """True when SIPp exited 0."""
        return self.returncode == 0

    def report(self) -> str:
        """A failure message with the command, counters and logs."""
        return (f"sipp exited {self.returncode} ({self.successful} ok, {self.failed} failed)\n"
                f"command: {' '.join(self.command)}\n--- errors ---\n{self.errors[-4000:]}\n"
                f"--- stderr ---\n{self.stderr[-2000:]}\n--- screen ---\n{self.screen[-3000:]}")

    def check(self) -> SippResult:
        """Raise AssertionError with ``report()`` unless SIPp exited 0."""
        if not self.ok:
            raise AssertionError(self.report())
        return self


class Sipp:
    """One SIPp process running one scenario.

    ``remote`` is ``"host:port"`` for client scenarios (None for a UAS). ``users`` are
    (user, password) pairs fed through the injection CSV. ``service`` is the Request-URI user
    (``-s``), ``duration`` the ``<pause/>`` length (``-d``, ms), ``tone`` the identity tone
    sent by ``rtp_stream``. ``keys`` become ``-key k v`` (defaults: ``DEFAULT_KEYS``).
    ``auto_answer`` adds ``-aa``; ``trace_msg`` keeps every message in ``messages.log``.
    """

    def __init__(self, scenario: str | Path, remote: str | None = None, *, port: int | None = None,
                 calls: int = 1, rate: float | None = None, limit: int | None = None,
                 users: list[tuple[str, str]] | None = None, service: str = "service",
                 duration: int = 1000, tone: str = "A", keys: dict[str, str] | None = None,
                 timeout: float = 20.0, trace_msg: bool = False, auto_answer: bool = True,
                 extra: list[str] | None = None):
        self.binary = require_binary("sipp")
        self.scenario = scenario_path(scenario)
        self.remote = remote
        self.port = port or free_port()
        # SIPp binds -mp and -mp + 2 (video): a window of this xdist worker's own
        self.media_port = peer_ports()
        self.calls, self.rate, self.limit = calls, rate, limit
        self.users = users or [("sipp", "sipp")]
        self.service, self.duration, self.tone = service, duration, tone
        self.keys = {**DEFAULT_KEYS, **(keys or {})}
        self.timeout = timeout
        self.trace_msg = trace_msg
        self.auto_answer = auto_answer
        self.extra = extra or []
        self.dir = Path(tempfile.mkdtemp(prefix=f"sipp-{self.scenario.stem}-"))
        self._proc: asyncio.subprocess.Process | None = None
        self._prepare()

    def _prepare(self) -> None:
        with open(self.dir / "users.csv", "w", newline="") as f:
            f.write("SEQUENTIAL\n")
            writer = csv.writer(f, delimiter=";", lineterminator="\n")
            for user, password in self.users:
                auth = f"[authentication username={user} password={password}]"
                writer.writerow([user, auth, password])
        hz = audio.TONE_HZ[self.tone]
        pcm = audio.sine([hz], audio.RATE * TONE_SECONDS)  # whole periods: loops seamlessly
        (self.dir / "tone.ulaw").write_bytes(audio.encode(pcm, 0))

    @property
    def command(self) -> list[str]:
        """The full SIPp command line."""
        cmd = [self.binary, "-sf", str(self.scenario)]
        if self.remote:
            cmd.append(self.remote)
        cmd += ["-i", "127.0.0.1", "-mi", "127.0.0.1", "-p", str(self.port),
                "-mp", str(self.media_port), "-m", str(self.calls), "-nostdin",
                "-inf", str(self.dir / "users.csv"), "-s", self.service, "-d", str(self.duration),
                "-timeout", f"{self.timeout}s", "-timeout_error",
                "-trace_err", "-error_file", str(self.dir / "errors.log"),
                "-trace_stat", "-stf", str(self.dir / "stats.csv"), "-fd", "1",
                "-trace_screen", "-screen_file", str(self.dir / "screen.log")]
        if self.rate is not None:
            cmd += ["-r", str(self.rate)]
        if self.limit is not None:
            cmd += ["-l", str(self.limit)]
        if self.auto_answer:  # 200 to unexpected OPTIONS/NOTIFY/INFO/UPDATE, as phones do
            cmd.append("-aa")
        if self.trace_msg:
            cmd += ["-trace_msg", "-message_file", str(self.dir / "messages.log")]
        for k, v in self.keys.items():
            cmd += ["-key", k, v]
        return cmd + self.extra

    async def start(self) -> Sipp:
        """Start SIPp in the background (use ``wait()`` for the result)."""
        self._proc = await asyncio.create_subprocess_exec(
            *self.command, cwd=self.dir, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        await asyncio.sleep(0.15)  # let it bind before a peer sends to it
        return self

    async def wait(self, timeout: float | None = None) -> SippResult:
        """Wait for SIPp to exit (killing it after ``timeout``) and collect its result."""
        assert self._proc is not None, "start() first"
        try:
            _, err = await asyncio.wait_for(self._proc.communicate(), timeout or self.timeout + 5)
        except TimeoutError:
            self._proc.kill()
            _, err = await self._proc.communicate()
        return self._result(self._proc.returncode or 0, err.decode(errors="replace"))

    async def run(self) -> SippResult:
        """Start, wait, return the result."""
        await self.start()
        return await self.wait()

    def run_sync(self) -> SippResult:
        """Run SIPp to completion from synchronous code."""
        proc = subprocess.run(self.command, cwd=self.dir, stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              timeout=self.timeout + 5, check=False)
        return self._result(proc.returncode, proc.stderr.decode(errors="replace"))

    def stop(self) -> None:
        """Kill a running SIPp (teardown)."""
        if self._proc and self._proc.returncode is None:
            self._proc.kill()

    def _result(self, code: int, stderr: str) -> SippResult:
        return SippResult(code, self.command, self._stats(), self._read("errors.log"),
                          self._read("screen.log"), stderr, self._read("messages.log"))

    def _read(self, name: str) -> str:
        path = self.dir / name
        return path.read_text(errors="replace") if path.exists() else ""

    def _stats(self) -> dict[str, str]:
        rows = [r for r in self._read("stats.csv").splitlines() if r.strip()]
        if len(rows) < 2:
            return {}
        return dict(zip(rows[0].split(";"), rows[-1].split(";"), strict=False))

    def cleanup(self) -> None:
        """Remove the working directory."""
        shutil.rmtree(self.dir, ignore_errors=True)
