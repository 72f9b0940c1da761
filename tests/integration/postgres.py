"""A throw-away PostgreSQL server holding Kamailio's tables, for the several-proxies test.

How this works: `Postgres.start()` runs the Debian server's own `initdb` into a fresh
directory and starts `postgres` on a free loopback port, its Unix socket in that directory
(never the system's). PostgreSQL refuses to run as root, so as root both run as the
`postgres` user (`runuser`), the directory owned by it. Then, as the operator would with
`kamdbctl create`, the `kamailio` role and database are made and the schema files the
`kamailio-postgres-modules` package ships (`/usr/share/kamailio/postgres/`: version,
location, subscriber) loaded; the subscribers come from `mediasrv export-subscribers` piped
into `psql`, the set-up deploy/kamailio/README.md documents.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mediasrv.config import DEFAULT_CONFIG_DIR
from tests.peers.require import missing

SCHEMA_DIR = Path("/usr/share/kamailio/postgres")
PASSWORD = "kamailio-test"


def bin_dir() -> Path | None:
    """The newest installed server's binaries (`/usr/lib/postgresql/N/bin`)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit()
                   else 0)
    return found[-1].parent if found else None


def require_postgres() -> None:
    """Skip (fail under CI=true) without a PostgreSQL server or Kamailio's postgres module."""
    absent = [what for what, ok in (
        ("postgresql", bin_dir() is not None),
        ("kamailio-postgres-modules", (SCHEMA_DIR / "usrloc-create.sql").exists()
         and any(Path("/usr/lib").glob("*/kamailio/modules/db_postgres.so"))))
        if not ok]
    if absent:
        missing(f"{', '.join(absent)} not installed (run scripts/setup.sh)")


class Postgres:
    """One server in a temporary directory; `url` is Kamailio's db_url for it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.dir = Path(tempfile.mkdtemp(prefix="kampg-"))
        self.data = self.dir / "data"
        self.bin = bin_dir()
        assert self.bin is not None
        self.proc: subprocess.Popen | None = None
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    @property
    def url(self) -> str:
        return f"postgres://kamailio:{PASSWORD}@127.0.0.1:{self.port}/kamailio"

    def start(self) -> Postgres:
        if self.as_user:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run([str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U",
                   "postgres", "--no-sync", "-E", "UTF8"])
        self.proc = subprocess.Popen(
            [*self.as_user, str(self.bin / "postgres"), "-D", str(self.data), "-p",
             str(self.port), "-k", str(self.dir), "-c", "listen_addresses=127.0.0.1",
             "-c", "fsync=off"], stdout=subprocess.DEVNULL,
            stderr=(self.dir / "postgres.log").open("ab"))
        deadline = time.monotonic() + 20
        while self._psql("postgres", "SELECT 1", check=False).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("postgres did not start:\n" + self.log())
            time.sleep(0.1)
        self._psql("postgres", f"CREATE ROLE kamailio LOGIN PASSWORD '{PASSWORD}'")
        self._psql("postgres", "CREATE DATABASE kamailio OWNER kamailio")
        schema = "".join((SCHEMA_DIR / f"{name}-create.sql").read_text()
                         for name in ("standard", "usrloc", "auth_db"))
        self._psql("kamailio", schema, user="kamailio")
        export = subprocess.run([sys.executable, "-m", "mediasrv", "export-subscribers", "-c",
                                 str(DEFAULT_CONFIG_DIR)], check=True, capture_output=True,
                                text=True)
        self._psql("kamailio", export.stdout, user="kamailio")
        return self

    def query(self, sql: str) -> list[list[str]]:
        """Rows of `sql` in the kamailio database, as text."""
        out = self._psql("kamailio", sql, user="kamailio", tuples=True).stdout
        return [line.split("|") for line in out.splitlines() if line]

    def _psql(self, db: str, sql: str, user: str = "postgres", check: bool = True,
              tuples: bool = False) -> subprocess.CompletedProcess:
        cmd = [str(self.bin / "psql"), "-h", str(self.dir), "-p", str(self.port), "-U", user,
               "-d", db, "-v", "ON_ERROR_STOP=1", "-q"] + (["-A", "-t"] if tuples else [])
        proc = subprocess.run(cmd, input=sql, capture_output=True, text=True)
        if check and proc.returncode != 0:
            raise RuntimeError(f"psql failed: {proc.stderr}\n{self.log()}")
        return proc

    def _run(self, cmd: list[str]) -> None:
        proc = subprocess.run([*self.as_user, *cmd], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed: {proc.stdout}{proc.stderr}")

    def log(self) -> str:
        path = self.dir / "postgres.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()   # SIGTERM: PostgreSQL's smart shutdown
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
