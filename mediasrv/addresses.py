"""Listener and API addresses as written in the configuration, checked before anything binds.

How this works: each parser takes the configuration's text and returns either the parsed value
or a `str` reason that `mediasrv.config` reports as `FILE: KEY: REASON`. Hosts must be IP
literals (IPv6 in brackets, as in RFC 3986 §3.2.2) or `localhost`: a listener binds an
address, and a name that resolves differently tomorrow is not one. Ports are 1-65535.
`is_loopback` tells whether an address is reachable only from this machine; a wildcard
(0.0.0.0, ::) or any other address is not, which is what the demo-password guard
(`exposure_problems`) needs. The cross-checks return (dotted key, reason) pairs.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from typing import Any

_HOST_PORT = re.compile(r"(\[[^\]]*\]|[^:\[\]]+):(\d+)")


def parse_host(text: str) -> str | None:
    """The bare host of `text` ("[::1]" -> "::1") when it is an IP literal or localhost."""
    bracketed = text.startswith("[") and text.endswith("]")
    host = text[1:-1] if bracketed else text
    if host == "localhost" and not bracketed:
        return host
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return None
    if (addr.version == 6) != bracketed:
        return None
    return host


def parse_host_port(text: str) -> tuple[str, int] | str:
    """`host:port` (IPv6 as `[addr]:port`) or the reason it is not one."""
    m = _HOST_PORT.fullmatch(text)
    if not m:
        return f"{text!r} is not host:port (IPv6 as [addr]:port)"
    host = parse_host(m.group(1))
    if host is None:
        return f"{m.group(1)!r} is not an IP address (IPv6 in brackets) or localhost"
    port = int(m.group(2))
    if not 1 <= port <= 65535:
        return f"port {port} is out of range 1-65535"
    return host, port


def parse_listener(text: str, transports: tuple[str, ...]) -> tuple[str, str, int] | str:
    """`transport:host:port` or the reason it is not one."""
    transport, sep, rest = text.partition(":")
    if not sep or transport not in transports:
        names = f"{', '.join(transports[:-1])} or {transports[-1]}"
        return f"{text!r} is not transport:host:port with transport {names}"
    parsed = parse_host_port(rest)
    if isinstance(parsed, str):
        return parsed
    return transport, *parsed


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# The shipped conf.d's demo secrets: refused on anything but loopback (`mediasrv init` writes
# random ones).
DEMO_SECRETS = frozenset({"change-me", *(f"demo{n}" for n in range(100, 110))})

KeyReason = tuple[str, str]


def exposure_problems(listen: Sequence[Any], api: Any, extensions: Iterable[Any]
                      ) -> list[KeyReason]:
    """No demo password (or API token) may be usable from beyond this machine."""
    found = []
    exposed = [lst for lst in listen if not is_loopback(lst.host)]
    for ext in extensions if exposed else ():
        if ext.password in DEMO_SECRETS:
            found.append((f"extensions.{ext.number}.password",
                          f"demo password {ext.password!r} on a non-loopback listener "
                          f"({exposed[0]}): set a real one"))
    api_addr = parse_host_port(api.listen) if api.listen else None
    if (isinstance(api_addr, tuple) and not is_loopback(api_addr[0])
            and api.token in DEMO_SECRETS):
        found.append(("api.token", f"demo token {api.token!r} on a non-loopback API address "
                                   f"({api.listen}): set a random one"))
    return found


def port_problems(listen: Sequence[Any], rtp: Any) -> list[KeyReason]:
    """A UDP SIP listener inside the RTP port range fights the media engine for its port."""
    return [(f"sip.listen[{i}]", f"port {lst.port} is inside rtp.ports "
                                 f"{rtp.port_min}-{rtp.port_max}")
            for i, lst in enumerate(listen)
            if lst.transport == "udp" and rtp.port_min <= lst.port <= rtp.port_max]
