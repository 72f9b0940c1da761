"""Raw SIP text for the test phone: messages, digest answers and SDP, written from the RFCs.

How this works
--------------
This is deliberately NOT the server's SIP stack (``mediasrv.sip``): the test phone must be a
second, independent reading of the RFCs, so that a shared misunderstanding cannot hide.

* ``Msg`` is a start line, an ordered header list and a body (RFC 3261 §7). Parsing expands
  the compact header forms (§7.3.3) and folds nothing else; building always writes
  Content-Length (§20.14). Header names compare case-insensitively (§7.3.1).
* ``digest_authorization`` answers a ``WWW-Authenticate``/``Proxy-Authenticate`` challenge
  (RFC 3261 §22.4, RFC 7616 §3.4 for MD5 and SHA-256 with ``qop=auth``, RFC 8760 for their
  use in SIP).
* ``sdp_offer``/``sdp_answer``/``parse_sdp`` cover one audio stream (RFC 4566, RFC 3264
  offer/answer incl. §8.4 hold by direction attribute, RFC 4733 ``telephone-event``).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field

COMPACT = {"v": "Via", "f": "From", "t": "To", "i": "Call-ID", "m": "Contact",
           "l": "Content-Length", "c": "Content-Type", "k": "Supported", "s": "Subject",
           "e": "Content-Encoding",
           "r": "Refer-To", "b": "Referred-By", "o": "Event", "u": "Allow-Events"}
MAGIC = "z9hG4bK"  # RFC 3261 §8.1.1.7 branch cookie


def new_branch() -> str:
    """A fresh RFC 3261 branch."""
    return MAGIC + secrets.token_hex(8)


def new_tag() -> str:
    """A fresh From/To tag."""
    return secrets.token_hex(6)


@dataclass
class Msg:
    """One SIP request or response."""

    start: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @property
    def is_request(self) -> bool:
        """True for requests (start line does not begin with ``SIP/2.0``)."""
        return not self.start.startswith("SIP/2.0 ")

    @property
    def method(self) -> str:
        """The request method, or for a response the CSeq method."""
        return self.start.split(" ", 1)[0] if self.is_request else self.cseq[1]

    @property
    def uri(self) -> str:
        """Request-URI of a request."""
        return self.start.split(" ")[1]

    @property
    def status(self) -> int:
        """Status code of a response (0 for requests)."""
        return 0 if self.is_request else int(self.start.split(" ")[1])

    @property
    def cseq(self) -> tuple[int, str]:
        """(number, method) of the CSeq header."""
        num, method = self.get("CSeq").split()
        return int(num), method

    @property
    def call_id(self) -> str:
        """The Call-ID."""
        return self.get("Call-ID")

    @property
    def branch(self) -> str:
        """Branch parameter of the top Via."""
        return param(self.get("Via"), "branch") or ""

    def get(self, name: str, default: str = "") -> str:
        """First value of header ``name`` (case-insensitive), or ``default``."""
        values = self.get_all(name)
        return values[0] if values else default

    def get_all(self, name: str) -> list[str]:
        """All values of header ``name``, comma-separated values of one line not split."""
        low = name.lower()
        return [v for k, v in self.headers if k.lower() == low]

    def set(self, name: str, value: str) -> None:
        """Replace every ``name`` header with one of ``value``."""
        self.remove(name)
        self.headers.append((name, value))

    def remove(self, name: str) -> None:
        """Drop every ``name`` header."""
        self.headers = [(k, v) for k, v in self.headers if k.lower() != name.lower()]

    def __bytes__(self) -> bytes:
        lines = [self.start, *(f"{k}: {v}" for k, v in self.headers
                               if k.lower() != "content-length")]
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


def parse(data: bytes) -> Msg:
    """Parse one datagram into a ``Msg``; raises ValueError on garbage."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        raise ValueError("no end of headers")
    lines = head.decode("utf-8", "replace").split("\r\n")
    msg = Msg(lines[0])
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and msg.headers:  # RFC 3261 §7.3.1 line folding
            k, v = msg.headers[-1]
            msg.headers[-1] = (k, v + " " + line.strip())
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise ValueError(f"bad header line {line!r}")
        name = name.strip()
        msg.headers.append((COMPACT.get(name.lower(), name), value.strip()))
    length = msg.get("Content-Length")
    msg.body = body[: int(length)] if length else body
    return msg


def param(value: str, name: str) -> str | None:
    """Value of ``;name=value`` in a header value (outside <...>), or None."""
    tail = value.rsplit(">", 1)[-1]
    for part in tail.split(";")[1:]:
        k, _, v = part.strip().partition("=")
        if k.lower() == name.lower():
            return v.strip('"')
    return None


def tag_of(value: str) -> str | None:
    """The ``tag`` parameter of a From/To value."""
    return param(value, "tag")


def uri_of(value: str) -> str:
    """The URI inside a name-addr (``"x" <sip:..>;p``) or an addr-spec."""
    m = re.search(r"<([^>]*)>", value)
    return m.group(1) if m else value.split(";")[0].strip()


def host_port(uri: str, default_port: int = 5060) -> tuple[str, int]:
    """(host, port) of a ``sip:`` URI."""
    rest = uri.split(":", 1)[1].split(";")[0].split("?")[0]
    hostport = rest.rsplit("@", 1)[-1]
    host, _, port = hostport.partition(":")
    return host, int(port) if port else default_port


# --- Digest (RFC 7616 §3.4, RFC 8760) -------------------------------------------------------

HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


def parse_challenge(value: str) -> dict[str, str]:
    """The parameters of a ``Digest`` challenge, keys lower-cased."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        raise ValueError(f"not a Digest challenge: {value!r}")
    pairs = re.findall(r'([\w-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]+)', rest)
    return {k.lower(): v.strip('"') for k, v in pairs}


def pick_challenge(values: list[str]) -> dict[str, str]:
    """The first challenge with an algorithm we support (RFC 8760 §2.4: the UAS orders them)."""
    for value in values:
        ch = parse_challenge(value)
        if ch.get("algorithm", "MD5").upper() in HASHES:
            return ch
    raise ValueError(f"no supported digest algorithm in {values!r}")


def digest_authorization(ch: dict[str, str], method: str, uri: str, user: str, password: str,
                         nc: int = 1, cnonce: str | None = None) -> str:
    """The Authorization header value answering challenge ``ch`` (RFC 7616 §3.4.1)."""
    algorithm = ch.get("algorithm", "MD5").upper()
    h = HASHES[algorithm]

    def hx(s: str) -> str:
        return h(s.encode()).hexdigest()

    realm, nonce = ch["realm"], ch["nonce"]
    ha1 = hx(f"{user}:{realm}:{password}")
    ha2 = hx(f"{method}:{uri}")
    qops = [q.strip() for q in ch.get("qop", "").split(",") if q.strip()]
    fields = [f'username="{user}"', f'realm="{realm}"', f'nonce="{nonce}"',
              f'uri="{uri}"', f"algorithm={algorithm}"]
    if "auth" in qops:
        cnonce = cnonce or secrets.token_hex(8)
        response = hx(f"{ha1}:{nonce}:{nc:08x}:{cnonce}:auth:{ha2}")
        fields += [f'response="{response}"', "qop=auth", f"nc={nc:08x}", f'cnonce="{cnonce}"']
    else:  # RFC 2069 compatibility form, still allowed by RFC 3261 §22.4
        fields.append(f'response="{hx(f"{ha1}:{nonce}:{ha2}")}"')
    if "opaque" in ch:
        opaque = ch["opaque"]
        fields.append(f'opaque="{opaque}"')
    return "Digest " + ", ".join(fields)


# --- SDP (RFC 4566, RFC 3264) ----------------------------------------------------------------

RTPMAP = {0: "PCMU/8000", 8: "PCMA/8000", 9: "G722/8000"}   # static PTs (RFC 3551 §6)
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
# RFC 3264 §6.1: the answer's direction mirrors the offer's.
ANSWER_DIRECTION = {"sendrecv": "sendrecv", "sendonly": "recvonly", "recvonly": "sendonly",
                    "inactive": "inactive"}


@dataclass
class Sdp:
    """The parts of one audio SDP the phone cares about."""

    host: str
    port: int
    payloads: list[int]
    rtpmap: dict[int, str]
    direction: str = "sendrecv"

    @property
    def dtmf_pt(self) -> int | None:
        """Payload type of telephone-event, if offered."""
        return next((pt for pt, enc in self.rtpmap.items()
                     if enc.lower().startswith("telephone-event")), None)


def parse_sdp(body: bytes) -> Sdp:
    """Parse the first audio stream of an SDP body."""
    host, port, payloads, rtpmap, direction, in_audio = "", 0, [], {}, "sendrecv", False
    for line in body.decode().splitlines():
        key, _, value = line.partition("=")
        if key == "m":
            in_audio = value.startswith("audio") and not port
            if in_audio:
                parts = value.split()
                port, payloads = int(parts[1]), [int(p) for p in parts[3:]]
        elif key == "c" and (in_audio or not host):
            host = value.split()[2]
        elif key == "a" and value in DIRECTIONS and (in_audio or not port):
            direction = value
        elif key == "a" and value.startswith("rtpmap:") and in_audio:
            pt, enc = value[7:].split(" ", 1)
            rtpmap[int(pt)] = enc
    for pt in payloads:
        rtpmap.setdefault(pt, RTPMAP.get(pt, "?"))
    return Sdp(host, port, payloads, rtpmap, direction)


def build_sdp(host: str, port: int, payloads: list[int], dtmf_pt: int | None, direction: str,
              session: int, version: int, rtpmap: dict[int, str] | None = None,
              fmtp: dict[int, str] | None = None, ptime: int = 20) -> bytes:
    """An SDP body with one audio stream; ``rtpmap`` names dynamic payload types."""
    pts = payloads + ([dtmf_pt] if dtmf_pt is not None else [])
    names = RTPMAP | (rtpmap or {})
    lines = ["v=0", f"o=- {session} {version} IN IP4 {host}", "s=-", f"c=IN IP4 {host}", "t=0 0",
             f"m=audio {port} RTP/AVP {' '.join(map(str, pts))}"]
    lines += [f"a=rtpmap:{pt} {names[pt]}" for pt in payloads]
    lines += [f"a=fmtp:{pt} {fmtp[pt]}" for pt in payloads if fmtp and pt in fmtp]
    if dtmf_pt is not None:
        lines += [f"a=rtpmap:{dtmf_pt} telephone-event/8000", f"a=fmtp:{dtmf_pt} 0-16"]
    lines += [f"a=ptime:{ptime}", f"a={direction}"]
    return ("\r\n".join(lines) + "\r\n").encode()
