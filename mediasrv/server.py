"""Server lifecycle: start-up, the main loop, reload and shutdown.

How this works (the uvicorn shape): `Server.run()` owns one asyncio loop. `start()` builds the
parts from the frozen `Config` in dependency order and binds every listener, turning any
failure into a `StartupError` that names what could not start; `stop()` releases them in
reverse order. SIGINT sets the stop event (a clean stop takes well under a second). SIGTERM
first drains: new calls and OPTIONS get 503 while existing calls finish (`sip.drain_timeout`
at most), then stops, so a proxy in front moves new calls to other nodes. SIGHUP re-reads
the configuration and, when it is valid, hands it to the parts so that new calls use it (a
bad file leaves the running configuration in place and says why). Under systemd each step is
reported with sd_notify (mediasrv/notify.py): READY=1 once every listener is bound,
RELOADING=1 then READY=1 around a SIGHUP, STOPPING=1 when a stop or drain begins.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sqlite3
import ssl
import time
from collections.abc import Callable
from pathlib import Path

from mediasrv import notify
from mediasrv.api.app import OperationsApi
from mediasrv.call.b2bua import B2BUA
from mediasrv.call.clock import LoopClock
from mediasrv.call.control import ServiceControl
from mediasrv.call.gatekeeper import Gatekeeper
from mediasrv.call.records import CallRecords
from mediasrv.call.registrar import Registrar
from mediasrv.call.store import Store
from mediasrv.config import Config, ConfigError, Listener
from mediasrv.console.phone import ConsoleError, ConsolePhone, open_console
from mediasrv.media import sounds
from mediasrv.media.engine import MediaError
from mediasrv.media.pool import MediaPool
from mediasrv.metrics import Metrics
from mediasrv.paths import SOUNDS_DIR
from mediasrv.services.host import ServiceHost
from mediasrv.sip.endpoint import EndpointConfig, SipEndpoint
from mediasrv.stalls import StallWatchdog, settle_collector
from mediasrv.transport.driver import SipDriver
from mediasrv.transport.guard import Guard
from mediasrv.transport.tcp import TcpListener
from mediasrv.transport.tls import TlsListener
from mediasrv.transport.udp import UdpListener, open_udp

log = logging.getLogger("mediasrv.server")


class StartupError(Exception):
    """The server cannot start: the message says which part and why."""


class Server:
    def __init__(self, config: Config, reload: Callable[[], Config] | None = None) -> None:
        self.config = config
        self._reload_config = reload
        self.store: Store | None = None
        self.engine: MediaPool | None = None
        self.driver: SipDriver | None = None
        self.b2bua: B2BUA | None = None
        self.control: ServiceControl | None = None
        self.services: ServiceHost | None = None
        self.records: CallRecords | None = None  # operations: call records, metrics, API
        self.metrics: Metrics | None = None
        self.api: OperationsApi | None = None
        self.console: ConsolePhone | None = None
        self._housekeeping: asyncio.Task | None = None
        self._drain_task: asyncio.Task | None = None
        self.watchdog = StallWatchdog()
        self._stop = asyncio.Event()
        self.ready = False  # listeners bound, serving (a failure before is a start-up failure)

    # ------------------------------------------------------------------ lifecycle

    def run(self) -> int:
        return asyncio.run(self.serve())

    async def serve(self) -> int:
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        await self.start()
        settle_collector()
        loop.add_signal_handler(signal.SIGINT, self._stop.set)
        loop.add_signal_handler(signal.SIGTERM, self.drain)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        self.ready = True
        log.info("mediasrv ready: %s", self._status())
        notify.ready(self._status())
        try:
            await self._stop.wait()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            log.info("mediasrv stopping")
            notify.stopping()
            await self.stop()
        log.info("mediasrv stopped")
        return 0

    def request_stop(self) -> None:
        self._stop.set()

    def drain(self) -> None:
        """SIGTERM: take no new calls (503), let the existing ones finish, then stop."""
        notify.stopping()
        if self.b2bua is None or not self.b2bua.legs:
            self._stop.set()
        elif self._drain_task is None:
            self.b2bua.drain.draining = True
            log.info("draining: %d leg(s) still up; new calls get 503 (up to %g s)",
                     len(self.b2bua.legs), self.config.sip.drain_timeout)
            self._drain_task = asyncio.get_running_loop().create_task(self._drained())

    async def _drained(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.sip.drain_timeout
        while self.b2bua is not None and self.b2bua.legs and loop.time() < deadline:
            await asyncio.sleep(0.1)
        if self.b2bua is not None and self.b2bua.legs:
            log.warning("drain timeout: ending %d leg(s)", len(self.b2bua.legs))
        else:
            log.info("drained: no call left")
        self._stop.set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.watchdog.start(loop)
        try:
            self.store = self._open_store()
            registrar = Registrar(self.store)
            log.info("%d registration(s) restored", registrar.load(time.time()))
            self.engine = self._start_engine(loop)
            guard = Guard(self.config.security, self.config.sip.is_trusted)
            self.driver = SipDriver(self._endpoint(), lambda _e: None, loop, guard)
            self.b2bua = B2BUA(self.config, self.driver, self.engine, registrar,
                               Gatekeeper(self.config), self.store, LoopClock(loop))
            self.control = ServiceControl(self.b2bua)
            self.services = ServiceHost(self.control, self.config.services.values())
            self.b2bua.listener = self.services.handle
            self.b2bua.observers.append(self.services.observe)
            self.driver.on_event = self.b2bua.on_sip_event
            self._watch_calls(self.b2bua, self.store)
            await self._bind_listeners()
            sec = self.config.security
            self.driver.start_reaper(sec.header_timeout, sec.idle_timeout)
            await self._start_api()
            await self._start_console()
        except BaseException:
            await self.stop()
            raise
        self._housekeeping = loop.create_task(self._expire_bindings(registrar))

    async def stop(self) -> None:
        if self.console is not None:
            await self.console.stop()
            self.console = None
        await self._stop_api()
        if self._housekeeping is not None:
            self._housekeeping.cancel()
        if self.b2bua is not None:
            for leg in list(self.b2bua.legs):
                self.b2bua.hangup(leg)
        if self.driver is not None:
            for udp in self.driver.udp:
                udp.close()
            for tcp in self.driver.tcp:
                await tcp.close()
            self.driver.close()
        if self.engine is not None:
            self.engine.stop()
        if self.records is not None:
            self.records.flush()  # the calls that ended in the last 0.1 s, and in this stop
        if self.store is not None:
            self.store.close()
        self.watchdog.stop()
        self.driver = self.engine = self.store = self.b2bua = None
        self.records = self.metrics = None

    def reload(self) -> None:
        if self._reload_config is None:
            return
        notify.reloading()
        if self.records is not None:
            self.records.flush()
        try:
            config = self._reload_config()
        except ConfigError as exc:
            log.error("reload refused, keeping the running configuration:\n%s", exc)
        except Exception as exc:  # e.g. the configuration directory is gone: keep serving
            log.error("reload refused, keeping the running configuration: %s", exc)
        else:
            self._apply(config)
        notify.ready(self._status())

    def _apply(self, config: Config) -> None:
        self.config = config
        if self.b2bua is not None:
            self.b2bua.config = config
            self.b2bua.gatekeeper.config = config
        if self.services is not None:
            self.services.configure(config.services.values())
        if self.driver is not None and self.driver.guard is not None:
            self._apply_edge(self.driver, config)
        log.info("configuration reloaded: new calls use it")

    @staticmethod
    def _apply_edge(driver: SipDriver, config: Config) -> None:
        """`[security]` and `sip.trusted` take effect at once; listeners and `[tls]` need a
        restart (the certificate is loaded when its listener binds)."""
        sec = config.security
        assert driver.guard is not None
        driver.guard.config, driver.guard.trusted = sec, config.sip.is_trusted
        driver.header_timeout, driver.idle_timeout = sec.header_timeout, sec.idle_timeout
        for lst in driver.tcp:
            lst.max_per_source = sec.max_connections_per_source

    def _status(self) -> str:
        return f"SIP on {', '.join(str(lst) for lst in self.config.sip.listen)}"

    # ------------------------------------------------------------------ parts

    def _endpoint(self) -> SipEndpoint:
        local: dict[str, tuple[str, int]] = {}
        local_v6: dict[str, tuple[str, int]] = {}
        for lst in self.config.sip.listen:
            family = local_v6 if ":" in lst.host else local
            family.setdefault(lst.transport, (lst.host, lst.port))
        t1 = self.config.sip.timer_t1
        size = self.config.security.max_message_size
        if t1 >= 0.5:
            return SipEndpoint(local, EndpointConfig(t1=t1, t2=8 * t1, max_message_size=size),
                               local_v6=local_v6)
        # A T1 below RFC 3261's default is only for loopback tests: every wait scales with it.
        return SipEndpoint(local, EndpointConfig(t1=t1, t2=8 * t1, t4=10 * t1, min_d=64 * t1,
                                                 max_message_size=size), local_v6=local_v6)

    def _open_store(self) -> Store:
        path = self.config.storage.path
        try:
            return Store(path, self.config.sip.node_id)
        except (OSError, sqlite3.Error) as exc:
            reason = getattr(exc, "strerror", None) or exc
            raise StartupError(f"storage.path {path}: {reason}") from exc

    def _start_engine(self, loop: asyncio.AbstractEventLoop) -> MediaPool:
        rtp = self.config.rtp
        try:
            engine = MediaPool(rtp.address, rtp.port_min, rtp.port_max, threads=rtp.threads,
                               max_busy=rtp.max_busy, ptime_ms=rtp.ptime,
                               rtp_timeout=rtp.timeout)
        except MediaError as exc:
            raise StartupError(f"media engine: {exc}") from exc
        for lang_dir in sorted(SOUNDS_DIR.iterdir()):
            if lang_dir.is_dir() and lang_dir.name != "moh":
                self._load_prompts(engine, lang_dir)
        for moh in self.config.moh.values():
            engine.define_moh_class(
                moh.name, sounds.load_moh_class(moh.name, list(moh.patterns)),
                sounds.load_moh_class(moh.name, list(moh.patterns), rate=16000))
        engine.start(loop, lambda event: self.b2bua and self.b2bua.on_media_event(event))
        return engine

    @staticmethod
    def _load_prompts(engine: MediaPool, lang_dir: Path) -> None:
        for wav in sorted(lang_dir.glob("*.wav")):
            try:
                engine.load_sound(f"{lang_dir.name}/{wav.stem}", sounds.load_sound(wav),
                                  sounds.load_sound(wav, rate=16000))
            except (OSError, RuntimeError, ValueError) as exc:
                log.error("prompt %s cannot be loaded: %s", wav, exc)

    async def _bind_listeners(self) -> None:
        assert self.driver is not None
        driver = self.driver
        for lst in self.config.sip.listen:
            try:
                if lst.transport == "udp":
                    driver.udp.append(await self._open_udp(lst))
                else:
                    tcp = self._stream_listener(lst.transport)
                    await tcp.listen(lst.host, lst.port)
                    driver.tcp.append(tcp)
            except (OSError, ssl.SSLError) as exc:
                why = getattr(exc, "reason", None) or exc.strerror or exc
                raise StartupError(f"cannot listen on {lst}: {why}") from exc

    async def _open_udp(self, lst: Listener) -> UdpListener:
        assert self.driver is not None
        wanted = self.config.sip.udp_receive_buffer
        udp = await open_udp(lst.host, lst.port, self.driver.on_data, receive_buffer=wanted)
        if udp.receive_buffer < wanted:
            log.warning("%s: the kernel granted a receive buffer of %d KiB, not the %d KiB "
                        "of sip.udp_receive_buffer; a pause of the loop under load then loses "
                        "datagrams: raise net.core.rmem_max (sysctl -w net.core.rmem_max=%d, "
                        "deploy/sysctl/60-mediasrv.conf)", lst,
                        udp.receive_buffer // 1024, wanted // 1024, wanted)
        return udp

    def _stream_listener(self, transport: str) -> TcpListener:
        assert self.driver is not None and self.driver.guard is not None
        driver, sec, now = self.driver, self.config.security, self.driver.loop.time
        limits = {"refuse": lambda host: driver.guard.is_banned(host, now()),
                  "max_per_source": sec.max_connections_per_source}
        if transport == "tls":
            return TlsListener(driver.on_data, driver.on_closed, config=self.config.tls,
                               handshake_timeout=sec.header_timeout, **limits)
        return TcpListener(driver.on_data, driver.on_closed, **limits)

    # ------------------------------------------------------------------ operations

    def _watch_calls(self, b2bua: B2BUA, store: Store) -> None:
        """Call records and metrics observe every call event from the first call on."""
        self.records = CallRecords(store.db, b2bua, b2bua.clock, self.config.sip.node_id)
        self.metrics = Metrics(b2bua, self.watchdog.stats)
        self.records.on_finished.append(self.metrics.call_finished)
        b2bua.observers += [self.records.observe, self.metrics.observe]
        b2bua.listener = self.metrics.count_digits(b2bua.listener)
        if self.driver is not None:
            self.metrics.watch_edge(self.driver)
        self.metrics.start()

    async def _start_api(self) -> None:
        listen = self.config.api.listen
        if not listen:
            return
        self.api = OperationsApi(self)
        try:
            await self.api.start(listen)
        except OSError as exc:
            raise StartupError(f"cannot listen on api {listen}: {exc.strerror or exc}") from exc
        assert self.b2bua is not None
        self.b2bua.observers.append(self.api.hub.observe)
        log.info("operations API on http://%s/ (/metrics needs no token)", listen)

    async def _start_console(self) -> None:
        """The sound card as an extension (optional extra), once SIP listens."""
        if not self.config.console.extension:
            return
        try:
            self.console = await open_console(self.config)
        except ConsoleError as exc:
            raise StartupError(f"console: {exc}") from exc

    async def _stop_api(self) -> None:
        if self.metrics is not None:
            self.metrics.stop()
        if self.api is not None:
            await self.api.close()
            self.api = None

    async def _expire_bindings(self, registrar: Registrar) -> None:
        while True:
            await asyncio.sleep(10)
            registrar.expire(time.time())
