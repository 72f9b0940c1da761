"""Kamailio in front of N mediasrv nodes, all real processes on loopback, for tests and bench.

How this works: `Cluster.start()` builds Kamailio's SQLite database from the schema files the
Debian package ships (`/usr/share/kamailio/db_sqlite/`: version, location, subscriber), fills
the subscriber table with `mediasrv export-subscribers --sqlite` (the command operators run),
writes the dispatcher list and starts `kamailio -DD -E` on 127.0.0.2 with the shipped
`deploy/kamailio/kamailio.cfg` (ports and paths given with `-A`). Each node is
`python -m mediasrv run` with a site directory of its own: SIP and API ports, RTP range,
database, `node_id`, `trusted` = the proxy's address, `outbound_proxy` = the proxy. Phones
live on 127.0.0.1, so they are not trusted by the nodes: only the proxy is.

`proxies=2` with `database="postgres"` is the several-proxies set-up: both Kamailios (on
127.0.0.2, two ports) keep usrloc in one PostgreSQL (`tests/integration/postgres.py`), so
a phone registered through one is found by the other; the nodes send their calls to
extensions through the last proxy.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mediasrv.config import DEFAULT_CONFIG_DIR
from tests.integration.postgres import Postgres
from tests.parallel import server_rtp_ports
from tests.peers.phone import TestPhone
from tests.peers.require import missing, require_binary
from tests.peers.sipmsg import Msg

PACKAGE_ROOT = Path(__file__).resolve().parents[2]   # the repository
KAMAILIO = "/usr/sbin/kamailio"
SCHEMA_DIR = Path("/usr/share/kamailio/db_sqlite")
KAMAILIO_CFG = PACKAGE_ROOT / "deploy" / "kamailio" / "kamailio.cfg"
PROXY_HOST = "127.0.0.2"
TOKEN = "cluster-test"


def free_port(host: str = "127.0.0.1") -> int:
    """A port free for UDP and TCP on `host`."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind((host, 0))
            port = u.getsockname()[1]
            with socket.socket() as t:
                try:
                    t.bind((host, port))
                except OSError:
                    continue
            return port


def require_kamailio() -> None:
    """Skip (fail under CI=true) when Kamailio or its SQLite module is not installed."""
    if not Path(KAMAILIO).exists():
        require_binary("kamailio")
    if not (SCHEMA_DIR / "usrloc-create.sql").exists() or not any(
            Path("/usr/lib").glob("*/kamailio/modules/db_sqlite.so")):
        missing("kamailio-sqlite-modules is not installed (run scripts/setup.sh)")


def build_database(path: Path) -> None:
    """Kamailio's tables (version, location, subscriber) from the shipped schema, then the
    subscribers from the extensions with `mediasrv export-subscribers`."""
    db = sqlite3.connect(path)
    for name in ("standard", "usrloc", "auth_db"):
        db.executescript((SCHEMA_DIR / f"{name}-create.sql").read_text())
    db.close()
    subprocess.run([sys.executable, "-m", "mediasrv", "export-subscribers", "-c",
                    str(DEFAULT_CONFIG_DIR), "--sqlite", str(path)], check=True,
                   capture_output=True, cwd=PACKAGE_ROOT)


@dataclass
class Node:
    """One mediasrv process."""

    name: str
    port: int
    api_port: int
    site: Path
    log: Path
    proc: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        return f"sip:127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mediasrv", "run", "-c", str(DEFAULT_CONFIG_DIR),
                 "-c", str(self.site)], cwd=PACKAGE_ROOT, stdout=out, stderr=out, env=env)

    def ready(self) -> bool:
        return "mediasrv ready" in self.log.read_text(errors="replace")

    def api(self, path: str) -> object:
        req = urllib.request.Request(f"http://127.0.0.1:{self.api_port}{path}",
                                     headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(req, timeout=3) as resp:
            return json.loads(resp.read())

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass
class Cluster:
    """Kamailio on 127.0.0.2 plus `nodes` mediasrv processes; phones register to Kamailio."""

    workdir: Path
    nodes_count: int = 3
    site_extra: str = ""                  # more TOML for every node's site file
    fr_timer_ms: int = 1500               # Kamailio: no answer from a node this long -> next
    rtp_span: int = 0                     # RTP ports per node from 20000 (0: the test window)
    proxies: int = 1                      # Kamailio processes sharing the database
    database: str = "sqlite"              # or "postgres" (several proxies)
    dmq: bool = False                     # the proxies replicate their Call-ID -> node table
    proxy_ports: list[int] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)
    kamailios: list[subprocess.Popen] = field(default_factory=list)
    phones: list[TestPhone] = field(default_factory=list)
    postgres: Postgres | None = None

    # ------------------------------------------------------------------ start and stop

    async def start(self) -> Cluster:
        self.proxy_ports = [free_port(PROXY_HOST) for _ in range(self.proxies)]
        for i in range(self.nodes_count):
            self.nodes.append(self._node(i + 1))
        for node in self.nodes:
            node.start()
        if self.database == "postgres":
            self.postgres = await asyncio.to_thread(Postgres(free_port()).start)
            db_url, defines = self.postgres.url, ["-A", "WITH_POSTGRES"]
        else:
            db = self.workdir / "kamailio.sqlite"
            build_database(db)
            db_url, defines = f"sqlite:///{db}", []
        # the nodes listen before the first OPTIONS probe, or the dispatcher marks them down
        await self._wait(lambda: all(n.ready() for n in self.nodes))
        for index in range(self.proxies):
            self._start_kamailio(index, db_url, defines + self._dmq(index))
        await self._wait(self._kamailio_ready)
        return self

    @property
    def proxy_port(self) -> int:
        return self.proxy_ports[0]

    @property
    def kamailio(self) -> subprocess.Popen | None:
        return self.kamailios[0] if self.kamailios else None

    async def _wait(self, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 30
        while not ready():
            if time.monotonic() > deadline or not all(n.alive for n in self.nodes):
                raise RuntimeError("cluster did not start:\n" + self.logs())
            await asyncio.sleep(0.05)

    def _node(self, index: int) -> Node:
        site = self.workdir / f"node{index}"
        site.mkdir()
        port, api_port = free_port(), free_port()
        rtp_min, rtp_max = server_rtp_ports()  # this xdist worker's, below the ephemeral ports
        if self.rtp_span:  # a bench, alone on the machine: wide ranges of its own
            rtp_min = 20000 + (index - 1) * self.rtp_span
            rtp_max = rtp_min + self.rtp_span - 1
        (site / "99-node.toml").write_text(
            f'[sip]\nlisten = ["udp:127.0.0.1:{port}"]\ntimer_t1 = 0.1\n'
            f'trusted = ["{PROXY_HOST}/32"]\n'
            f'outbound_proxy = "sip:{PROXY_HOST}:{self.proxy_ports[-1]}"\n'
            f'node_id = "node{index}"\ndrain_timeout = 30\n'
            f'[rtp]\nports = [{rtp_min}, {rtp_max}]\n'
            f'[storage]\npath = "{site}/node.sqlite3"\n'
            f'[api]\nlisten = "127.0.0.1:{api_port}"\ntoken = "{TOKEN}"\n' + self.site_extra)
        return Node(f"node{index}", port, api_port, site, self.workdir / f"node{index}.log")

    def _start_kamailio(self, index: int, db_url: str, defines: list[str]) -> None:
        dslist = self.workdir / "dispatcher.list"
        dslist.write_text("".join(f"1 {n.uri} 0 0\n" for n in self.nodes))
        name = self._kamailio_name(index)
        run = self.workdir / f"{name}-run"
        run.mkdir()
        log = (self.workdir / f"{name}.log").open("ab")
        self.kamailios.append(subprocess.Popen(
            [KAMAILIO, "-f", str(KAMAILIO_CFG), "-DD", "-E", "-T", "-n", "2",
             "-P", str(run / "kamailio.pid"), "-Y", str(run), "-w", str(self.workdir),
             "-A", f"LISTEN=udp:{PROXY_HOST}:{self.proxy_ports[index]}",
             "-A", f'DBURL="{db_url}"', "-A", f'DSLIST="{dslist}"', "-A", "DS_PING=1",
             "-A", f"FR_TIMER={self.fr_timer_ms}", *defines],
            stdout=log, stderr=log))

    def _dmq(self, index: int) -> list[str]:
        """Proxy `index` is a dmq server on its own SIP socket and notifies the next one."""
        if not self.dmq:
            return []
        other = self.proxy_ports[(index + 1) % self.proxies]
        return ["-A", "WITH_DMQ", "-A", f'DMQ_SERVER="sip:{PROXY_HOST}:{self.proxy_ports[index]}"',
                "-A", f'DMQ_NOTIFY="sip:{PROXY_HOST}:{other}"']

    @staticmethod
    def _kamailio_name(index: int) -> str:
        return "kamailio" if index == 0 else f"kamailio{index + 1}"

    def _kamailio_ready(self) -> bool:
        for index, proc in enumerate(self.kamailios):
            log = self.workdir / f"{self._kamailio_name(index)}.log"
            text = log.read_text(errors="replace")
            if proc.poll() is not None:
                raise RuntimeError(f"{log.stem} exited:\n" + text[-3000:])
            if "SO_RCVBUF is finally" not in text:
                return False
        return True

    async def stop(self) -> None:
        for phone in self.phones:
            await phone.close()
        for node in self.nodes:
            node.stop()
        for kamailio in self.kamailios:
            if kamailio.poll() is None:
                kamailio.terminate()
                try:
                    kamailio.wait(5)
                except subprocess.TimeoutExpired:
                    kamailio.kill()
                    kamailio.wait()
        if self.postgres is not None:
            self.postgres.stop()

    def logs(self) -> str:
        out = []
        for path in sorted(self.workdir.glob("*.log")):
            out.append(f"--- {path.name}\n{path.read_text(errors='replace')[-2500:]}")
        return "\n".join(out)

    # ------------------------------------------------------------------ phones and calls

    @property
    def proxy(self) -> tuple[str, int]:
        return (PROXY_HOST, self.proxy_port)

    def uri(self, ext: str, proxy: int = 0) -> str:
        return f"sip:{ext}@{PROXY_HOST}:{self.proxy_ports[proxy]}"

    async def phone(self, name: str, ext: str, cls: type[TestPhone] = TestPhone,
                    register: bool = True, proxy: int = 0, **kw) -> TestPhone:
        """A phone of extension `ext` whose registrar and outbound proxy is proxy `proxy`."""
        phone = cls(name, ext, f"demo{ext}", server=(PROXY_HOST, self.proxy_ports[proxy]),
                    **kw)
        await phone.start()
        self.phones.append(phone)
        if register:
            resp = await phone.register()
            assert resp.status == 200, resp
        return phone

    def node_of(self, invite: Msg) -> Node:
        """The node an INVITE a phone received came from (its Via below the proxy's)."""
        for via in invite.get_all("Via"):
            for node in self.nodes:
                if f"127.0.0.1:{node.port};" in via:
                    return node
        raise AssertionError(f"no node in {invite.get_all('Via')}")
