"""SIP over TCP and IPv6 against a live mediasrv, and responses routed per RFC 3261 §18.

How this works: ``overlay_harness`` starts the same server as the ``harness`` fixture with one
more configuration file laid over it (later files override key by key), e.g. IPv6 listeners
or ``sip.trusted``. SIPp runs over TCP with ``-t t1`` (one connection, RFC 3261 §18.3
framing by Content-Length); a raw asyncio client checks the §18.2.1 ``received``/RFC 3581
``rport`` stamping and what happens when a peer closes its TCP connection mid-transaction
(§17.2.4: the transaction fails, the call behind it is torn down). IPv6 is tested on
``[::1]`` when the machine has it. Every test ends with the harness's leak check.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from mediasrv.config import DEFAULT_CONFIG_DIR, DEFAULT_PLUGIN_DIR, load_config
from mediasrv.server import Server
from tests.integration.conftest import Harness, site_config, wait_until
from tests.integration.test_sipp import SippFactory, register_callee, sipp_runs
from tests.peers.sipp import Sipp

pytestmark = [pytest.mark.asyncio, pytest.mark.peer]


@contextlib.asynccontextmanager
async def overlay_harness(tmp_path: Path, overlay: Callable[[int], str]) -> AsyncIterator[Harness]:
    """The harness's server plus ``overlay(port)`` as a last config file; leak-checked."""
    site = site_config(tmp_path)
    port = int(load_config([site]).sip.listen[0].port)
    (site / "99-zz-overlay.toml").write_text(overlay(port))
    server = Server(load_config([DEFAULT_CONFIG_DIR, site], DEFAULT_PLUGIN_DIR))
    await server.start()
    h = Harness(server, tmp_path)
    try:
        yield h
        await h.settle()
        assert all(v == 0 for v in server.b2bua.leak_report().values())
        assert server.engine.open_stream_count() == 0
    finally:
        for phone in h.phones:
            await phone.close()
        await server.stop()


@pytest.fixture
async def sipp(harness: Harness) -> AsyncIterator[SippFactory]:
    """SIPp runs against the harness's server (see ``test_sipp.sipp_runs``)."""
    async with sipp_runs(harness) as make:
        yield make


def has_ipv6_loopback() -> bool:
    """True when ::1 can be bound (both UDP and TCP)."""
    try:
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            with socket.socket(socket.AF_INET6, kind) as s:
                s.bind(("::1", 0))
    except OSError:
        return False
    return True


def sip_request(method: str, uri: str, via: str, *, to: str | None = None,
                body: str = "", extra: str = "") -> bytes:
    """A minimal request in RFC 3261 §8.1.1 shape, Content-Length set (§18.3)."""
    call_id = secrets.token_hex(8)
    head = (f"{method} {uri} SIP/2.0\r\nVia: {via};branch=z9hG4bK{secrets.token_hex(6)}\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:raw@127.0.0.1>;tag={secrets.token_hex(4)}\r\n"
            f"To: <{to or uri}>\r\nCall-ID: {call_id}\r\nCSeq: 1 {method}\r\n{extra}")
    if body:
        head += "Content-Type: application/sdp\r\n"
    return f"{head}Content-Length: {len(body.encode())}\r\n\r\n{body}".encode()


def top_via(response: bytes) -> str:
    """The top Via header value of a response."""
    for line in response.decode().split("\r\n"):
        if line.lower().startswith(("via:", "v:")):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no Via in {response!r}")


OFFER = ("v=0\r\no=raw 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
         "m=audio 9000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")


# ---------------------------------------------------------------------------- TCP

TCP = ["-t", "t1"]


async def test_register_and_call_over_tcp(harness: Harness, sipp: SippFactory) -> None:
    uas = await register_callee(sipp, "103", "uas_answer", transport=TCP, tone="D")
    [binding] = harness.server.b2bua.registrar.contacts("103", _now())
    assert (binding.transport, binding.source_port) == ("tcp", uas.port)
    a = await harness.phone("A", "101")
    call = await a.call(harness.uri("103"))  # UDP caller, TCP callee: the server connects
    assert call.final_status == 200
    await a.wait_hearing({"D"})
    await call.hangup()
    (await uas.wait()).check()


async def test_sipp_caller_over_tcp(harness: Harness, sipp: SippFactory) -> None:
    b = await harness.phone("B", "102")
    uac = await sipp("uac_call_rtp", "101", service="102", tone="C", duration=2000,
                     extra=TCP).start()
    incoming = await b.next_incoming()
    await b.wait_hearing({"C"})
    (await uac.wait()).check()
    await incoming.wait_state("terminated")


TRUSTED_HOST = "127.0.0.2"  # loopback too; phones on 127.0.0.1 still register (trusted
                            # sources may not, they are not extensions)


def trusted(_port: int) -> str:
    return f'[sip]\ntrusted = ["{TRUSTED_HOST}/32"]\n'


async def test_tcp_peer_closing_ends_its_ringing_call(tmp_path: Path) -> None:
    async with overlay_harness(tmp_path, trusted) as h:
        b = await h.phone("B", "102", answer=None)
        host, port = h.sip_addr
        reader, writer = await asyncio.open_connection(host, port, local_addr=(TRUSTED_HOST, 0))
        me = f"{TRUSTED_HOST}:{writer.get_extra_info('sockname')[1]}"
        writer.write(sip_request("INVITE", h.uri("102"), f"SIP/2.0/TCP {me};rport", body=OFFER,
                                 extra=f"Contact: <sip:raw@{me};transport=tcp>\r\n"))
        await writer.drain()
        incoming = await b.next_incoming()
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"SIP/2.0 1")  # 100/180
        writer.close()  # the caller goes away while B rings (ring timeout: 20 s)
        await incoming.wait_state("terminated", timeout=2)  # B was CANCELled
        endpoint = h.server.driver.endpoint
        await wait_until(lambda: not h.server.b2bua.legs and not endpoint.transaction_count("tcp"),
                         1,
            "the call and its TCP transaction to end (Timer H would be 3.2 s)")


# ---------------------------------------------------------------------------- §18 responses

async def udp_exchange(message: bytes, dest: tuple[str, int], family: int = socket.AF_INET,
                       bind: str = "127.0.0.1") -> tuple[bytes, int]:
    """Send one datagram from a fresh socket; return the reply and our port."""
    loop = asyncio.get_running_loop()
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.bind((bind, 0))
        s.setblocking(False)
        s.sendto(message, dest)
        reply = await asyncio.wait_for(loop.sock_recv(s, 65535), 2)
        return reply, s.getsockname()[1]


async def test_udp_response_goes_to_the_source_with_rport(harness: Harness) -> None:
    # A sent-by that is wrong in host and port: only rport (RFC 3581 §4) brings it back here.
    reply, port = await udp_exchange(
        sip_request("OPTIONS", harness.uri("101"), "SIP/2.0/UDP 192.0.2.1:5999;rport"),
        harness.sip_addr)
    assert reply.startswith(b"SIP/2.0 200 ")
    assert ";received=127.0.0.1" in top_via(reply) and f";rport={port}" in top_via(reply)


async def test_udp_response_without_rport_uses_received_and_sent_by_port(
        harness: Harness) -> None:
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        port = s.getsockname()[1]
        s.sendto(sip_request("OPTIONS", harness.uri("101"), f"SIP/2.0/UDP 192.0.2.1:{port}"),
                 harness.sip_addr)  # §18.2.2: to `received`, at the sent-by port
        reply = await asyncio.wait_for(loop.sock_recv(s, 65535), 2)
    assert reply.startswith(b"SIP/2.0 200 ")
    assert "received=127.0.0.1" in top_via(reply) and "rport" not in top_via(reply)


async def test_tcp_response_comes_back_on_the_same_connection(harness: Harness) -> None:
    reader, writer = await asyncio.open_connection(*harness.sip_addr)
    writer.write(sip_request("OPTIONS", harness.uri("101"), "SIP/2.0/TCP 192.0.2.1:5999"))
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
    writer.close()
    assert head.startswith(b"SIP/2.0 200 ") and "received=127.0.0.1" in top_via(head)


def _now() -> float:
    import time
    return time.time()


# ---------------------------------------------------------------------------- IPv6

def ipv6_only(port: int) -> str:
    return f'[sip]\nlisten = ["udp:[::1]:{port}", "tcp:[::1]:{port}"]\n'


@pytest.fixture
def ipv6() -> None:
    """Skip without ::1; under CI=true a machine that has ::1 must pass these tests."""
    if not has_ipv6_loopback():
        pytest.skip("this machine has no IPv6 loopback (::1)")


async def test_ipv6_udp_and_tcp_listeners_answer(tmp_path: Path, ipv6: None) -> None:
    async with overlay_harness(tmp_path, ipv6_only) as h:
        host, port = h.sip_addr
        assert host == "::1"
        uri = f"sip:101@[::1]:{port}"
        reply, mine = await udp_exchange(sip_request("OPTIONS", uri, "SIP/2.0/UDP [::1]:9;rport"),
                                         (host, port), socket.AF_INET6, "::1")
        assert reply.startswith(b"SIP/2.0 200 ") and f"rport={mine}" in top_via(reply)
        assert "received=::1" in top_via(reply)
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(sip_request("REGISTER", f"sip:[::1]:{port}", "SIP/2.0/TCP [::1]:9",
                                 to=f"sip:101@[::1]:{port}"))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
        writer.close()
        assert head.startswith(b"SIP/2.0 401 ")  # a digest challenge, over TCP on ::1


async def test_ipv6_sipp_call_through_the_server(tmp_path: Path, ipv6: None) -> None:
    async with overlay_harness(tmp_path, ipv6_only) as h:
        port = h.sip_addr[1]
        remote = f"[::1]:{port}"
        v6 = ["-i", "::1"]
        runs = [Sipp("register_auth", remote, users=[("102", "demo102")],
                     extra=[*v6, "-auth_uri", remote])]  # SIPp would write sip:::1:P
        try:
            (await runs[0].run()).check()
            runs.append(await Sipp("uas_answer", port=runs[0].port, users=[("102", "demo102")],
                                   extra=v6).start())
            runs.append(Sipp("uac_call_rtp", remote, users=[("101", "demo101")], service="102",
                             duration=500, extra=[*v6, "-auth_uri", f"102@{remote}"]))
            (await runs[2].run()).check()
            (await runs[1].wait()).check()
        finally:
            for run in runs:
                run.stop()
                run.cleanup()


def dual_stack(port: int) -> str:
    return (f'[sip]\nlisten = ["udp:127.0.0.1:{port}", "tcp:127.0.0.1:{port}", '
            f'"udp:[::1]:{port}", "tcp:[::1]:{port}"]\n')


async def test_ipv4_caller_reaches_an_ipv6_callee_on_a_dual_stack_server(
        tmp_path: Path, ipv6: None) -> None:
    """A call between an IPv4 and an IPv6 phone on a server listening on both families (the
    Via and Contact each side gets are checked in tests/sip/test_endpoint_dual_stack.py)."""
    async with overlay_harness(tmp_path, dual_stack) as h:
        port = h.sip_addr[1]
        v6_remote, v4_remote = f"[::1]:{port}", f"127.0.0.1:{port}"
        v6 = ["-i", "::1"]
        runs = [Sipp("register_auth", v6_remote, users=[("102", "demo102")],
                     extra=[*v6, "-auth_uri", v6_remote])]
        try:
            (await runs[0].run()).check()
            runs.append(await Sipp("uas_answer", port=runs[0].port, users=[("102", "demo102")],
                                   extra=v6).start())
            runs.append(Sipp("uac_call_rtp", v4_remote, users=[("101", "demo101")],
                             service="102", duration=500,
                             extra=["-auth_uri", f"102@{v4_remote}"]))
            (await runs[2].run()).check()
            (await runs[1].wait()).check()
        finally:
            for run in runs:
                run.stop()
                run.cleanup()
