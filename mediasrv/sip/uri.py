"""SIP URIs, name-addr values and Via values (RFC 3261 §19.1, §20.10, §20.42, §25.1; RFC 3581).

How this works: each value type is a small dataclass with `parse(text)` and `__str__`, so
`parse(str(x)) == x`. Parsing is done by hand on the few delimiters the grammar uses
(`@ ; ? : < > "`), splitting only outside quoted strings and angle brackets, and checks
characters against the §25.1 classes where a wrong one would change the meaning.

Conventions:
- Parameter names are lower-cased (they compare case-insensitively, §19.1.4); values are
  kept verbatim, a quoted value keeps its quotes. A parameter without a value (`;lr`,
  `;rport`) maps to None.
- An IPv6 host is kept in its bracketed form (`[2001:db8::1]`) in `host`, as it is written
  in a URI or Via; `host_port()` returns the bare address for socket use.
- A `tel:` URI (RFC 3966) keeps the number in `user` and an empty `host`.

Parsing is memoised by text (`memoise_by_text`): one call's From, To, Contact and Via
values are read again and again by the transaction, dialog and call layers, so each
distinct value is parsed once. A `SipUri` is frozen and shared (its dicts must not be
mutated); a `NameAddr` or `Via` is mutable, so each `parse` returns a fresh copy with its
own `params`.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from mediasrv.sip.errors import SipParseError

Params = dict[str, str | None]

TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_HOSTNAME_RE = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9\-_.]*[A-Za-z0-9.])?")
# The strict §25.1 hostname (labels of letters, digits and inner hyphens, no empty label), for
# the Via sent-by: responses are routed to it, so a host that cannot exist is refused (400).
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_STRICT_HOSTNAME_RE = re.compile(rf"(?:{_LABEL}\.)*{_LABEL}\.?")
# user = 1*(unreserved / escaped / user-unreserved), §25.1; password allows a few less.
_USER_RE = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()&=+$,;?/]|%[0-9A-Fa-f]{2})+")
_PASSWORD_RE = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()&=+$,]|%[0-9A-Fa-f]{2})*")
# A parameter value: `%` is in the class, so an escape `%XX` needs no alternative of its own;
# one character class is matched 4x faster than a group repeated per character (a Via's
# branch, a From's tag: every message has new ones to check).
_PARAM_CHAR = r"[A-Za-z0-9\-_.!~*'()\[\]/:&+$`%]"
_PARAM_VALUE_RE = re.compile(_PARAM_CHAR + "*")
# Parameters `;name[=value]` with nothing to strip or unquote: each name a token, each value
# (non-empty) of `_PARAM_VALUE_RE`'s class.
_PLAIN_PARAMS_RE = re.compile(
    r"(?:;" + TOKEN_RE.pattern + r"(?:=" + _PARAM_CHAR + r"+)?)*"
)
_VIA_PROTO_RE = re.compile(
    r"\s*SIP\s*/\s*2\.0\s*/\s*(" + TOKEN_RE.pattern + r")\s+(.*)", re.IGNORECASE | re.DOTALL
)
DEFAULT_PORTS = {"sip": 5060, "sips": 5061}
BRANCH_MAGIC = "z9hG4bK"  # RFC 3261 §8.1.1.7
# Values longer than this are parsed every time, so hostile giant headers cannot fill the memo.
_MEMO_MAX_TEXT = 512
_T = TypeVar("_T")


def memoise_by_text(parse: Callable[[str], _T]) -> Callable[[str], _T]:
    """`parse` memoised by its text for texts up to `_MEMO_MAX_TEXT` characters; errors
    are not memoised (a bad value raises every time). Results are shared: return values
    that are immutable, or copy them."""
    cached = functools.lru_cache(maxsize=4096)(parse)

    def lookup(text: str) -> _T:
        return cached(text) if len(text) <= _MEMO_MAX_TEXT else parse(text)
    return lookup


_TOKENS: dict[str, bool] = {}  # is_token's answers for short texts (header and parameter
_TOKENS_MAX = 4096               # names, methods: the same few on every message), bounded


def is_token(text: str) -> bool:
    """True when `text` is a non-empty RFC 3261 token."""
    known = _TOKENS.get(text)
    if known is None:
        known = TOKEN_RE.fullmatch(text) is not None
        if len(text) <= 64 and len(_TOKENS) < _TOKENS_MAX:
            _TOKENS[text] = known
    return known


def split_outside(text: str, sep: str) -> list[str]:
    """Split `text` on `sep` where it is outside quoted strings and `<...>`.

    Backslash escapes inside quoted strings are honoured (§25.1 quoted-pair).
    """
    if '"' not in text and "<" not in text:
        return text.split(sep)  # the common case, many times faster than the scan below
    parts: list[str] = []
    start, depth, quoted, i = 0, 0, False, 0
    while i < len(text):
        ch = text[i]
        if quoted:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "<":
            depth += 1
        elif ch == ">" and depth:
            depth -= 1
        elif ch == sep and not depth:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    if quoted:
        raise SipParseError("unterminated quoted string")
    parts.append(text[start:])
    return parts


def read_quoted(text: str, start: int = 0) -> tuple[str, int]:
    """Read the quoted string at `text[start]`; return (unescaped content, index after it)."""
    out: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
            continue
        if ch == '"':
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    raise SipParseError("unterminated quoted string")


def quote(text: str) -> str:
    """Write `text` as a quoted string, escaping `"` and `\\`."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_params(text: str) -> Params:
    """Parse `;name[=value]` pairs (the text starts at, or before, the first `;`)."""
    params: Params = {}
    if _PLAIN_PARAMS_RE.fullmatch(text) is not None:
        # No space, quote or empty value (`;branch=z9hG4bK..;rport`): one regex match
        # checks every name and value, which the loop below checks one at a time.
        for part in text[1:].split(";") if text else ():
            name, eq, value = part.partition("=")
            params[name.lower()] = value if eq else None
        return params
    text = text.strip()
    if not text:
        return params
    if not text.startswith(";"):
        raise SipParseError(f"expected ';' before parameters: {text[:40]!r}")
    for part in split_outside(text[1:], ";"):
        name, eq, value = part.partition("=")
        name, value = name.strip().lower(), value.strip()
        if not is_token(name):
            raise SipParseError(f"bad parameter name {name!r}")
        if eq and not value:
            raise SipParseError(f"empty value for parameter {name!r}")
        if value.startswith('"'):
            if read_quoted(value)[1] != len(value):
                raise SipParseError(f"text after quoted value of {name!r}")
        elif eq and not _PARAM_VALUE_RE.fullmatch(value):
            raise SipParseError(f"bad value for parameter {name!r}")
        params[name] = value if eq else None
    return params


def format_params(params: Params) -> str:
    """Write parameters back as `;name=value;flag`."""
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


def _parse_port(text: str) -> int:
    if not text.isdigit() or len(text) > 5 or int(text) > 65535:
        raise SipParseError(f"bad port {text!r}")
    return int(text)


def parse_host_port(text: str) -> tuple[str, int | None]:
    """Parse `host[:port]`, where host is a name, IPv4 address or bracketed IPv6 address."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise SipParseError("unterminated IPv6 reference")
        host, rest = text[: end + 1], text[end + 1 :]
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise SipParseError(f"bad IPv6 address {host!r}") from None
        if rest and not rest.startswith(":"):
            raise SipParseError(f"junk after IPv6 address: {rest!r}")
        return host, _parse_port(rest[1:]) if rest else None
    host, colon, port = text.partition(":")
    if not _HOSTNAME_RE.fullmatch(host):
        raise SipParseError(f"bad host {host!r}")
    return host, _parse_port(port) if colon else None


def format_host_port(host: str, port: int | None) -> str:
    """Write `host[:port]`."""
    return host if port is None else f"{host}:{port}"


@dataclass(frozen=True)
class SipUri:
    """A `sip:`, `sips:` or `tel:` URI (RFC 3261 §19.1.1, RFC 3966)."""

    scheme: str
    host: str
    user: str | None = None
    password: str | None = None
    port: int | None = None
    params: Params = field(default_factory=dict, hash=False)
    headers: dict[str, str] = field(default_factory=dict, hash=False)

    @staticmethod
    def parse(text: str) -> SipUri:
        """Parse a URI; raises `SipParseError` (status 416 for an unknown scheme).
        The result is shared between equal texts: treat it as immutable."""
        return _parse_uri(text)

    @classmethod
    def _parse(cls, text: str) -> SipUri:
        scheme, colon, rest = text.partition(":")
        scheme = scheme.lower()
        if not colon or not is_token(scheme):
            raise SipParseError(f"not a URI: {text[:60]!r}")
        if scheme == "tel":
            return cls._parse_tel(rest)
        if scheme not in DEFAULT_PORTS:
            raise SipParseError(f"unsupported URI scheme {scheme!r}", status=416)
        userinfo, at, rest = rest.rpartition("@")
        rest, _, hdrs = rest.partition("?")
        hostport, semi, params = rest.partition(";")
        host, port = parse_host_port(hostport)
        user, password = cls._parse_userinfo(userinfo) if at else (None, None)
        return cls(
            scheme, host, user, password, port,
            parse_params(semi + params), cls._parse_headers(hdrs),
        )

    @staticmethod
    def _parse_userinfo(userinfo: str) -> tuple[str, str | None]:
        user, colon, password = userinfo.partition(":")
        if not _USER_RE.fullmatch(user):
            raise SipParseError(f"bad user part {user!r}")
        if colon and not _PASSWORD_RE.fullmatch(password):
            raise SipParseError("bad password part")
        return user, password if colon else None

    @staticmethod
    def _parse_headers(text: str) -> dict[str, str]:
        headers: dict[str, str] = {}
        for part in text.split("&") if text else []:
            name, _, value = part.partition("=")
            if not name or not _PARAM_VALUE_RE.fullmatch(name + value):
                raise SipParseError(f"bad URI header {part!r}")
            headers[name] = value
        return headers

    @classmethod
    def _parse_tel(cls, rest: str) -> SipUri:
        number, semi, params = rest.partition(";")
        if not re.fullmatch(r"\+?[0-9A-Fa-f*#.()\-]+", number):
            raise SipParseError(f"bad tel number {number!r}")
        return cls("tel", "", number, None, None, parse_params(semi + params))

    def __str__(self) -> str:
        return self._text

    @functools.cached_property
    def _text(self) -> str:
        # Written once per instance: a URI is immutable and shared by its text's memo, and the
        # same Contact or From URI is written into many messages of a call.
        if self.scheme == "tel":
            return f"tel:{self.user}{format_params(self.params)}"
        out = [self.scheme, ":"]
        if self.user is not None:
            out += [self.user, "" if self.password is None else ":" + self.password, "@"]
        out += [format_host_port(self.host, self.port), format_params(self.params)]
        if self.headers:
            out += ["?", "&".join(f"{k}={v}" for k, v in self.headers.items())]
        return "".join(out)

    def host_port(self) -> tuple[str, int]:
        """The (bare host, port) to send to; the port defaults to 5060, or 5061 for sips."""
        return self.host.strip("[]"), self.port or DEFAULT_PORTS.get(self.scheme, 5060)

    @property
    def transport(self) -> str | None:
        """The `transport` parameter, upper-cased, or None."""
        value = self.params.get("transport")
        return value.upper() if value else None


@dataclass
class NameAddr:
    """`[display-name] <uri> *(;param)` as in From, To, Contact, Route (RFC 3261 §20.10).

    `display_name` is unescaped (None when absent); `__str__` always writes the `<uri>` form
    and quotes a display name, so URI parameters are never mistaken for header parameters.
    """

    uri: SipUri
    display_name: str | None = None
    params: Params = field(default_factory=dict)

    @staticmethod
    def parse(text: str) -> NameAddr:
        """Parse a name-addr or addr-spec with header parameters."""
        shared = _parse_name_addr(text)
        return NameAddr(shared.uri, shared.display_name, dict(shared.params))

    @classmethod
    def _parse(cls, text: str) -> NameAddr:
        text = text.strip()
        display: str | None = None
        rest = text
        if text.startswith('"'):
            display, end = read_quoted(text)
            rest = text[end:].lstrip()
            if not rest.startswith("<"):
                raise SipParseError("quoted display name without <uri>")
        elif "<" in text:
            display, rest = text[: text.index("<")].strip() or None, text[text.index("<") :]
            if display is not None and not all(is_token(w) for w in display.split()):
                raise SipParseError(f"bad display name {display!r}")
        if rest.startswith("<"):
            end = rest.find(">")
            if end < 0:
                raise SipParseError("unterminated <uri>")
            return cls(SipUri.parse(rest[1:end]), display, parse_params(rest[end + 1 :]))
        uri_text, semi, params = rest.partition(";")
        uri_text = uri_text.rstrip()
        if any(c in uri_text for c in " \t,?"):
            raise SipParseError(f"bad addr-spec {uri_text[:60]!r}")
        return cls(SipUri.parse(uri_text), None, parse_params(semi + params))

    def __str__(self) -> str:
        name = "" if self.display_name is None else quote(self.display_name) + " "
        return f"{name}<{self.uri}>{format_params(self.params)}"

    @property
    def tag(self) -> str | None:
        """The `tag` parameter (§19.3), or None."""
        return self.params.get("tag")


@dataclass
class Via:
    """One Via value: `SIP/2.0/transport sent-by *(;param)` (RFC 3261 §20.42, RFC 3581)."""

    transport: str
    host: str
    port: int | None = None
    params: Params = field(default_factory=dict)

    @staticmethod
    def parse(text: str) -> Via:
        """Parse one Via value (not a comma-separated list)."""
        shared = _parse_via(text)
        return Via(shared.transport, shared.host, shared.port, dict(shared.params))

    @classmethod
    def _parse(cls, text: str) -> Via:
        # The usual `SIP/2.0/UDP host...` is split without the regex (same result: the
        # protocol is the token up to the first space, the rest starts after the spaces).
        proto, space, rest = text[8:].partition(" ")
        if text.startswith("SIP/2.0/") and space and is_token(proto):
            rest = rest.lstrip()
        else:
            m = _VIA_PROTO_RE.fullmatch(text)
            if m is None:
                raise SipParseError(f"bad Via {text[:60]!r}")
            proto, rest = m.group(1), m.group(2)
        sent_by, semi, params = rest.partition(";")
        host, port = _parse_sent_by(sent_by)
        return cls(proto.upper(), host, port, parse_params(semi + params))

    def __str__(self) -> str:
        hp = format_host_port(self.host, self.port)
        return f"SIP/2.0/{self.transport} {hp}{format_params(self.params)}"

    @property
    def branch(self) -> str | None:
        """The `branch` parameter (§8.1.1.7), or None."""
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        """The `received` parameter (§18.2.1), or None."""
        return self.params.get("received")

    @property
    def rport(self) -> int | None:
        """The `rport` value filled in by a server (RFC 3581 §4), or None when absent/empty."""
        value = self.params.get("rport")
        return int(value) if value and value.isdigit() else None


@memoise_by_text
def _parse_sent_by(text: str) -> tuple[str, int | None]:
    """A Via's sent-by `host[:port]` (whitespace around the colon allowed, §20.42), with the
    strict hostname check; memoised: a peer sends from the same address every time."""
    host, port = parse_host_port("".join(text.split()))
    if not host.startswith("[") and not _STRICT_HOSTNAME_RE.fullmatch(host):
        raise SipParseError(f"bad Via host {host[:60]!r}")
    return host, port


_parse_uri = memoise_by_text(SipUri._parse)
_parse_name_addr = memoise_by_text(NameAddr._parse)
_parse_via = memoise_by_text(Via._parse)


def tag_of(text: str) -> str | None:
    """The `tag` parameter of a From/To value (§19.3), read without copying its parse."""
    return _parse_name_addr(text).params.get("tag")


def without_tag(text: str) -> str:
    """A From/To value written without its `tag` (a dialog's local or remote URI, §12.1.1),
    read without copying its parse."""
    addr = _parse_name_addr(text)
    if "tag" not in addr.params:
        return str(addr)
    params = {k: v for k, v in addr.params.items() if k != "tag"}
    return str(NameAddr(addr.uri, addr.display_name, params))


def branch_of(text: str) -> str | None:
    """The `branch` parameter of one Via value (§8.1.1.7), read without copying its parse."""
    return _parse_via(text).params.get("branch")


class _RandomHex:
    """Hex digits from the OS's CSPRNG, read 4 KiB at a time: the tags and branches of a
    call cost one slice each instead of one `os.urandom` call each. Every digit is handed out
    once, so tags keep 64 and branches 96 random bits (RFC 3261 §19.3 asks 32 at least,
    §8.1.1.7 unique branches); a forked child starts a pool of its own rather than repeat its
    parent's values."""

    __slots__ = ("_hex", "_at")
    POOL = 4096  # bytes per read: 8192 digits, about 180 calls' tags and branches

    def __init__(self) -> None:
        self._hex = ""
        self._at = 0

    def take(self, digits: int) -> str:
        at = self._at
        end = at + digits
        if end > len(self._hex):
            self._hex, at, end = os.urandom(self.POOL).hex(), 0, digits
        self._at = end
        return self._hex[at:end]

    def drop(self) -> None:
        self._hex, self._at = "", 0


_random = _RandomHex()
os.register_at_fork(after_in_child=_random.drop)


def generate_tag() -> str:
    """A random From/To tag with 64 bits of randomness (§19.3)."""
    return _random.take(16)


def generate_branch() -> str:
    """A random RFC 3261 branch: the magic cookie and 96 random bits (§8.1.1.7)."""
    return BRANCH_MAGIC + _random.take(24)


def generate_call_id(host: str) -> str:
    """A globally unique Call-ID `random@host` (§8.1.1.4)."""
    return f"{secrets.token_hex(12)}@{host}"
