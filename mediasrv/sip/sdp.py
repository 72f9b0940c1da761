"""SDP bodies and the offer/answer model for audio (RFC 4566, RFC 3264, RFC 4733 §7).

How this works:
- `SessionDescription.parse` reads `type=value` lines (RFC 4566 §5) into a session part
  and a list of `MediaDescription`s. The attributes we act on (rtpmap, fmtp, ptime and the
  direction attributes, RFC 4566 §6) are parsed into fields; every other line is kept in
  order so `parse(to_bytes(sd)) == sd`.
- `negotiate` picks the first audio stream of an offer that we can serve and the first of
  its formats (the offerer's preference, RFC 3264 §6.1) among our codecs; telephone-event
  is found by its rtpmap at whatever payload type the offer uses (RFC 4733 §7.1.1).
- Codecs: PCMU/PCMA (static PTs 0/8), G.722 (static PT 9, clock 8000 though it samples at
  16 kHz, RFC 3551 §4.5.2) and Opus (dynamic PT, `opus/48000/2` with `useinbandfec=1` and
  `stereo=0`, RFC 7587 §6-7); a codec matches by name and its registered clock rate.
- `build_answer` answers that stream and rejects every other one with port 0, keeping the
  offer's order and count of m-lines (RFC 3264 §6); `build_offer` makes our own offer.
- `is_hold` recognises both hold styles: a sendonly/inactive direction (RFC 3264 §8.4)
  and the older connection address 0.0.0.0 (RFC 2543, RFC 3264 §8.4 note).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mediasrv.sip.errors import SdpNegotiationError, SdpParseError

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
# RFC 3264 §6.1: the answer's direction for each offered direction, when we would send
# and receive.
ANSWER_DIRECTION = {
    "sendrecv": "sendrecv",
    "sendonly": "recvonly",
    "recvonly": "sendonly",
    "inactive": "inactive",
}
# RFC 3551 §6 static payload types (name, clock rate) used when an offer omits rtpmap.
STATIC_PAYLOAD_TYPES = {
    0: ("PCMU", 8000), 3: ("GSM", 8000), 4: ("G723", 8000), 8: ("PCMA", 8000),
    9: ("G722", 8000), 13: ("CN", 8000), 18: ("G729", 8000),
}
CODEC_PAYLOAD_TYPES = {"PCMU": 0, "PCMA": 8, "G722": 9, "OPUS": 111}   # OPUS: dynamic, ours
CODEC_RTPMAP = {"PCMU": "PCMU/8000", "PCMA": "PCMA/8000", "G722": "G722/8000",
                "OPUS": "opus/48000/2"}
CODEC_CLOCK = {"PCMU": 8000, "PCMA": 8000, "G722": 8000, "OPUS": 48000}
CODEC_FMTP = {"OPUS": "useinbandfec=1;stereo=0;sprop-stereo=0"}   # RFC 7587 §6.1
TELEPHONE_EVENT = "telephone-event"
_SESSION_ORDER = "vosiuepcbtrzka"


@dataclass
class Origin:
    """The `o=` line (RFC 4566 §5.2)."""

    username: str
    session_id: int
    version: int
    address: str
    nettype: str = "IN"
    addrtype: str = "IP4"

    def __str__(self) -> str:
        return (
            f"{self.username} {self.session_id} {self.version} "
            f"{self.nettype} {self.addrtype} {self.address}"
        )


@dataclass
class MediaDescription:
    """One `m=` section (RFC 4566 §5.14) with the attributes we act on parsed out.

    `connection` is this section's own `c=` address (None: the session's applies);
    `direction` is its own direction attribute (None: the session's, else sendrecv).
    `lines` keeps every other line as (type, value); `attributes` every other `a=` line
    as (name, value or None).
    """

    media: str
    port: int
    proto: str
    formats: list[str]
    connection: str | None = None
    rtpmap: dict[int, str] = field(default_factory=dict)
    fmtp: dict[int, str] = field(default_factory=dict)
    direction: str | None = None
    ptime: int | None = None
    attributes: list[tuple[str, str | None]] = field(default_factory=list)
    lines: list[tuple[str, str]] = field(default_factory=list)
    port_count: int | None = None

    def codec_of(self, fmt: str) -> tuple[str, int] | None:
        """(encoding name, clock rate) of payload type `fmt`, from rtpmap or the static table."""
        if not fmt.isdigit():
            return None
        pt = int(fmt)
        if pt in self.rtpmap:
            name, _, rest = self.rtpmap[pt].partition("/")
            rate = rest.partition("/")[0]
            return name, int(rate) if rate.isdigit() else 0
        return STATIC_PAYLOAD_TYPES.get(pt)

    def to_lines(self) -> list[str]:
        """The section's lines in RFC 4566 §5 order (m, i, c, b, k, a)."""
        port = f"{self.port}/{self.port_count}" if self.port_count else str(self.port)
        out = [f"m={self.media} {port} {self.proto} {' '.join(self.formats)}"]
        add = out.append
        # loops, not comprehensions: each comprehension is a call, and most lists are short
        lines = self.lines  # usually none
        if lines:
            out += [f"{t}={v}" for t, v in lines if t == "i"]
        if self.connection is not None:
            add(f"c=IN {_addrtype(self.connection)} {self.connection}")
        if lines:
            out += [f"{t}={v}" for t, v in lines if t != "i"]
        for pt, v in self.rtpmap.items():
            add(f"a=rtpmap:{pt} {v}")
        for pt, v in self.fmtp.items():
            add(f"a=fmtp:{pt} {v}")
        if self.ptime is not None:
            add(f"a=ptime:{self.ptime}")
        for n, v in self.attributes:
            add(f"a={n}" if v is None else f"a={n}:{v}")
        if self.direction is not None:
            add(f"a={self.direction}")
        return out


@dataclass
class SessionDescription:
    """A parsed SDP body (RFC 4566 §5)."""

    origin: Origin
    session_name: str = "-"
    connection: str | None = None
    media: list[MediaDescription] = field(default_factory=list)
    direction: str | None = None
    times: list[str] = field(default_factory=lambda: ["0 0"])
    attributes: list[tuple[str, str | None]] = field(default_factory=list)
    lines: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def parse(cls, data: bytes | str) -> SessionDescription:
        """Parse an SDP body; raises `SdpParseError` (a 400) when malformed."""
        if isinstance(data, bytes):
            try:
                data = data.decode("utf-8")
            except UnicodeDecodeError:
                raise SdpParseError("SDP is not UTF-8") from None
        lines = [ln for ln in data.replace("\r\n", "\n").split("\n") if ln.strip()]
        if not lines or lines[0].strip() != "v=0":
            raise SdpParseError("SDP must start with v=0")
        return _Parser().run(lines[1:])

    def to_bytes(self) -> bytes:
        """Serialise with CRLF line ends, in the line order of RFC 4566 §5."""
        origin, name = str(self.origin), self.session_name or "-"
        if self.lines:  # lines of other types: sorted in among o, s, c, t
            c = [] if self.connection is None else [("c", f"IN {_addrtype(self.connection)} "
                                                          f"{self.connection}")]
            head = [("o", origin), ("s", name)] + c + self.lines + [("t", t) for t in self.times]
            head.sort(key=lambda tv: _SESSION_ORDER.index(tv[0]))  # stable: repeats keep order
            out = ["v=0"] + [f"{t}={v}" for t, v in head]
        else:  # o, s, c, t alone are in order already
            out = ["v=0", f"o={origin}", f"s={name}"]
            if self.connection is not None:
                out.append(f"c=IN {_addrtype(self.connection)} {self.connection}")
            for t in self.times:
                out.append(f"t={t}")
        for n, v in self.attributes:
            out.append(f"a={n}" if v is None else f"a={n}:{v}")
        if self.direction is not None:
            out.append(f"a={self.direction}")
        for m in self.media:
            out += m.to_lines()
        out.append("")
        return "\r\n".join(out).encode()

    def media_address(self, media: MediaDescription) -> str | None:
        """The connection address that applies to `media` (its own, else the session's)."""
        return media.connection if media.connection is not None else self.connection

    def media_direction(self, media: MediaDescription) -> str:
        """The direction that applies to `media` (its own, else the session's, else sendrecv)."""
        return media.direction or self.direction or "sendrecv"


def _addrtype(address: str) -> str:
    return "IP6" if ":" in address else "IP4"


class _Parser:
    """Line-by-line SDP reader: session-level lines until the first m=, then per media."""

    def __init__(self) -> None:
        self.origin: Origin | None = None
        self.session = SessionDescription(Origin("-", 0, 0, "0.0.0.0"), times=[])
        self.current: MediaDescription | None = None

    def run(self, lines: list[str]) -> SessionDescription:
        for line in lines:
            kind, eq, value = line.partition("=")
            if not eq or len(kind) != 1 or not kind.islower():
                raise SdpParseError(f"bad SDP line {line[:40]!r}")
            self._line(kind, value.strip())
        if self.origin is None:
            raise SdpParseError("SDP without o= line")
        self.session.origin = self.origin
        return self.session

    def _line(self, kind: str, value: str) -> None:
        if kind == "a":  # the commonest line first
            self._attribute(value)
        elif kind == "m":
            self.current = _parse_media_line(value)
            self.session.media.append(self.current)
        elif kind == "c":
            self._set_connection(_parse_connection(value))
        elif self.current is not None:
            self.current.lines.append((kind, value))
        elif kind == "o":
            self.origin = _parse_origin(value)
        elif kind == "s":
            self.session.session_name = value or "-"  # s= must not be empty (RFC 4566 §5.3)
        elif kind == "t":
            self.session.times.append(value)
        else:
            self.session.lines.append((kind, value))

    def _set_connection(self, address: str) -> None:
        if self.current is not None:
            self.current.connection = address
        else:
            self.session.connection = address

    def _attribute(self, value: str) -> None:
        name, colon, arg = value.partition(":")
        target = self.current
        if name in DIRECTIONS and not colon:
            if target is None:
                self.session.direction = name
            else:
                target.direction = name
        elif target is not None and name in ("rtpmap", "fmtp"):
            pt, _, rest = arg.partition(" ")
            if not pt.isdigit() or not rest.strip():
                raise SdpParseError(f"bad a={name} {arg[:40]!r}")
            getattr(target, name)[int(pt)] = rest.strip()
        elif target is not None and name == "ptime":
            if not re.fullmatch(r"\d{1,4}(\.\d*)?", arg.strip()):
                raise SdpParseError(f"bad ptime {arg[:20]!r}")
            target.ptime = round(float(arg))
        else:
            attrs = target.attributes if target is not None else self.session.attributes
            attrs.append((name, arg if colon else None))


def _parse_origin(value: str) -> Origin:
    parts = value.split()
    if len(parts) != 6 or not parts[1].isdigit() or not parts[2].isdigit():
        raise SdpParseError(f"bad o= line {value[:60]!r}")
    return Origin(parts[0], int(parts[1]), int(parts[2]), parts[5], parts[3], parts[4])


def _parse_connection(value: str) -> str:
    parts = value.split()
    if len(parts) != 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
        raise SdpParseError(f"bad c= line {value[:60]!r}")
    return parts[2]


def _parse_media_line(value: str) -> MediaDescription:
    parts = value.split()
    if len(parts) < 4:
        raise SdpParseError(f"bad m= line {value[:60]!r}")
    port, slash, count = parts[1].partition("/")
    # RFC 4566 §5.14: <port>/<number of ports>; a count of zero ports means nothing.
    if not port.isdigit() or int(port) > 65535 or (slash and not (count.isdigit()
                                                                  and int(count) > 0)):
        raise SdpParseError(f"bad m= port {parts[1][:20]!r}")
    return MediaDescription(
        parts[0], int(port), parts[2], parts[3:], port_count=int(count) if slash else None
    )


def is_hold(sd: SessionDescription) -> bool:
    """True when the remote puts us on hold: its first live audio stream is sendonly or
    inactive (RFC 3264 §8.4), or has connection address 0.0.0.0 (RFC 2543 style)."""
    for m in sd.media:
        if m.media == "audio" and m.port != 0:
            held = sd.media_direction(m) in ("sendonly", "inactive")
            return held or sd.media_address(m) in ("0.0.0.0", "::")
    return False


@dataclass(frozen=True)
class Negotiated:
    """The outcome of `negotiate`: what to send to the remote and how."""

    codec: str
    pt: int
    event_pt: int | None
    remote_addr: str
    remote_port: int
    direction: str
    ptime: int
    media_index: int
    event_fmtp: str | None = None


def negotiate(offer: SessionDescription, local_codecs: list[str], *,
              secure: bool = False) -> Negotiated:
    """Choose the codec and stream to answer `offer` with (RFC 3264 §6.1); secure=True
    considers RTP/SAVP(F) and UDP/TLS/RTP/SAVP(F) streams too (the caller then handles their
    keys: sdp_crypto.py, call/srtp_policy.py).

    Raises `SdpNegotiationError` (488) when no audio stream offers one of `local_codecs`.
    """
    wanted = {c.upper() for c in local_codecs}
    protos = ("RTP/AVP", "RTP/AVPF") + (("RTP/SAVP", "RTP/SAVPF", "UDP/TLS/RTP/SAVP",
                                          "UDP/TLS/RTP/SAVPF") if secure else ())
    for index, m in enumerate(offer.media):
        if m.media != "audio" or m.port == 0 or m.proto.upper() not in protos:
            continue
        chosen = _first_codec(m, wanted)
        address = offer.media_address(m)
        if chosen is None or address is None:
            continue
        event_pt = _event_pt(m)
        return Negotiated(
            chosen[0], chosen[1], event_pt, address, m.port, offer.media_direction(m),
            m.ptime or 20, index, m.fmtp.get(event_pt) if event_pt is not None else None,
        )
    raise SdpNegotiationError(f"no common audio codec (we offer {', '.join(local_codecs)})")


def _first_codec(m: MediaDescription, wanted: set[str]) -> tuple[str, int] | None:
    for fmt in m.formats:
        codec = m.codec_of(fmt)
        name = codec[0].upper() if codec is not None else ""
        if codec is not None and name in wanted and codec[1] == CODEC_CLOCK.get(name, 8000):
            return name, int(fmt)
    return None


def _event_pt(m: MediaDescription) -> int | None:
    for fmt in m.formats:
        codec = m.codec_of(fmt)
        if codec is not None and codec[0].lower() == TELEPHONE_EVENT and codec[1] == 8000:
            return int(fmt)
    return None


def _audio_media(
    port: int, codecs: list[tuple[str, int]], event_pt: int | None, event_fmtp: str | None,
    ptime: int, direction: str,
) -> MediaDescription:
    formats, rtpmap, fmtp = [], {}, {}
    for name, pt in codecs:  # one loop, not three comprehensions: this runs on every call
        formats.append(str(pt))
        rtpmap[pt] = CODEC_RTPMAP[name]
        if name in CODEC_FMTP:
            fmtp[pt] = CODEC_FMTP[name]
    if event_pt is not None:
        formats.append(str(event_pt))
        rtpmap[event_pt] = f"{TELEPHONE_EVENT}/8000"
        fmtp[event_pt] = event_fmtp or "0-16"
    return MediaDescription("audio", port, "RTP/AVP", formats, rtpmap=rtpmap, fmtp=fmtp,
                            direction=direction, ptime=ptime)


def build_answer(
    offer: SessionDescription,
    negotiated: Negotiated,
    local_addr: str,
    local_port: int,
    session_id: int,
    version: int,
    direction: str | None = None,
) -> SessionDescription:
    """Answer `offer` (RFC 3264 §6): the negotiated stream gets our address, port, codec and
    telephone-event; every other m-line is rejected with port 0, in the offer's order.
    `direction` defaults to the mirror of the offer's (sendonly -> recvonly, §6.1)."""
    direction = direction or ANSWER_DIRECTION[negotiated.direction]
    media = []
    for index, m in enumerate(offer.media):
        if index == negotiated.media_index:
            media.append(_audio_media(
                local_port, [(negotiated.codec, negotiated.pt)], negotiated.event_pt,
                negotiated.event_fmtp, negotiated.ptime, direction,
            ))
        else:
            media.append(MediaDescription(m.media, 0, m.proto, list(m.formats)))
    return _session(local_addr, session_id, version, media)


def build_offer(
    local_addr: str,
    local_port: int,
    codecs: list[str],
    event_pt: int | None = 101,
    *,
    session_id: int,
    version: int,
    direction: str = "sendrecv",
    ptime: int = 20,
) -> SessionDescription:
    """Our offer: one audio stream with `codecs` in order (PCMU, PCMA, G722 at their static
    payload types, OPUS at 111) and telephone-event at `event_pt` (RFC 4733 §7.1.1; None
    leaves it out)."""
    pts = [(c.upper(), CODEC_PAYLOAD_TYPES[c.upper()]) for c in codecs]
    media = [_audio_media(local_port, pts, event_pt, None, ptime, direction)]
    return _session(local_addr, session_id, version, media)


def _session(
    addr: str, session_id: int, version: int, media: list[MediaDescription]
) -> SessionDescription:
    origin = Origin("mediasrv", session_id, version, addr, addrtype=_addrtype(addr))
    return SessionDescription(origin, "mediasrv", addr, media)
