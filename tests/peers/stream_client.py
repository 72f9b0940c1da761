"""StreamClient: a tiny SIP client over one TCP or TLS connection (REGISTER, OPTIONS, raw).

How this works: one asyncio stream connection (TLS through the stdlib `ssl` module, with the
server verified against the test CA and SNI sent), requests built with `tests.peers.sipmsg`
(independent of `mediasrv.sip`), responses framed by Content-Length (RFC 3261 §18.3) and
matched to their request by the top Via branch. `register()` answers a digest challenge once
(§22.2). It is the test suite's own TLS phone where SIPp has no TLS (the Debian build has
none) and the REGISTER-rate benchmark's client.
"""

from __future__ import annotations

import asyncio
import secrets
import ssl

from tests.peers.sipmsg import Msg, digest_authorization, new_branch, new_tag, parse, pick_challenge


def tls_client_context(ca: str | None) -> ssl.SSLContext:
    """Verify the server against `ca` (the test's self-signed certificate)."""
    ctx = ssl.create_default_context(cafile=ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


class StreamClient:
    """One SIP user over one stream connection to `server`."""

    def __init__(self, user: str, password: str, server: tuple[str, int], *,
                 transport: str = "tls", ssl_context: ssl.SSLContext | None = None,
                 server_name: str | None = "localhost") -> None:
        self.user, self.password, self.server = user, password, server
        self.transport = transport
        self.ssl_context = ssl_context
        self.server_name = server_name
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.local: tuple[str, int] = ("", 0)
        self.call_id = secrets.token_hex(8)
        self.cseq = 0
        self.unmatched: list[Msg] = []  # requests the server sent us

    async def connect(self) -> StreamClient:
        kw: dict = {}
        if self.transport == "tls":
            kw = {"ssl": self.ssl_context, "server_hostname": self.server_name}
        self.reader, self.writer = await asyncio.open_connection(*self.server, **kw)
        self.local = self.writer.get_extra_info("sockname")[:2]
        return self

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except (OSError, ssl.SSLError):
                pass

    @property
    def contact(self) -> str:
        return f"<sip:{self.user}@{self.local[0]}:{self.local[1]};transport={self.transport}>"

    def request(self, method: str, uri: str, extra: list[tuple[str, str]] | None = None) -> Msg:
        self.cseq += 1
        host, port = self.local
        aor = f"sip:{self.user}@{self.server[0]}"
        return Msg(f"{method} {uri} SIP/2.0", [
            ("Via", f"SIP/2.0/{self.transport.upper()} {host}:{port};branch={new_branch()}"),
            ("Max-Forwards", "70"), ("From", f"<{aor}>;tag={new_tag()}"), ("To", f"<{aor}>"),
            ("Call-ID", self.call_id), ("CSeq", f"{self.cseq} {method}"),
            ("Contact", self.contact), *(extra or [])])

    async def send_raw(self, data: bytes) -> None:
        assert self.writer is not None
        self.writer.write(data)
        await self.writer.drain()

    async def read_message(self, timeout: float = 5.0) -> Msg:
        assert self.reader is not None
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), timeout)
        msg = parse(head)
        length = int(msg.get("Content-Length") or 0)
        if length:
            msg.body = await asyncio.wait_for(self.reader.readexactly(length), timeout)
        return msg

    async def transact(self, msg: Msg, timeout: float = 5.0) -> Msg:
        """Send a request; return its final response (provisionals skipped)."""
        await self.send_raw(bytes(msg))
        while True:
            resp = await self.read_message(timeout)
            if resp.is_request:
                self.unmatched.append(resp)
            elif resp.branch == msg.branch and resp.status >= 200:
                return resp

    async def register(self, expires: int = 300) -> Msg:
        uri = f"sip:{self.server[0]}"
        extra = [("Expires", str(expires))]
        resp = await self.transact(self.request("REGISTER", uri, extra))
        if resp.status in (401, 407):
            header = "WWW-Authenticate" if resp.status == 401 else "Proxy-Authenticate"
            ch = pick_challenge(resp.get_all(header))
            auth = digest_authorization(ch, "REGISTER", uri, self.user, self.password)
            name = "Authorization" if resp.status == 401 else "Proxy-Authorization"
            resp = await self.transact(self.request("REGISTER", uri, [*extra, (name, auth)]))
        return resp
