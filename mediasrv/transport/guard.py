"""The edge guard: ban list, per-source rate limit and a cheap pre-parse of UDP datagrams.

How this works: every datagram (and every chunk of a TCP/TLS stream) passes `admit()` before
the SIP parser sees it. In order, each step cheaper than the SIP parse it saves:

1. a banned source is dropped (one dict lookup; the ban expires by itself);
2. trusted sources (`sip.trusted`) skip everything else;
3. a token bucket per source address admits `rate_limit` requests a second (burst: one
   second's worth; responses to our own requests are not counted); the excess is dropped
   and counts as a strike;
4. UDP only (a stream chunk is not a message): `preparse()` looks at the bytes without
   parsing them: size, the start line (RFC 3261 §7.1, §7.2), the five headers every request
   needs (Via, From, To, Call-ID, CSeq: §8.1.1) and the top Via's sent-by host and port
   (§20.42, §25.1 `host`). Anything off is dropped and counts as a strike: a request whose
   Via cannot name a host must not be answered (a 2xx to it would be a reflection vector),
   and a scanner learns nothing from silence. A stream's messages get their cheap check in
   the SIP core's framer instead (`StreamFramer`: a start line's shape on the first byte or
   line, the size before any parse); its framing errors close the connection and reach
   `strike()` like parse errors.

`strike()` is also called by the driver for every message the full parser refused. A source
with `ban_threshold` strikes within `ban_window` seconds is banned for `ban_time` seconds and a
fail2ban-friendly WARNING is logged: `mediasrv: banned 192.0.2.7 for 600 s: 50 invalid
requests in 10 s`. The guard knows bytes and addresses only, no SIP state and no calls.
"""

from __future__ import annotations

import logging
import re
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from mediasrv.config_edge import SecurityConfig

log = logging.getLogger("mediasrv.security")

_START_RE = re.compile(
    rb"(?:[A-Za-z][A-Za-z0-9.!%*_+`'~-]* (?:sips?|tel):[^ \r\n]+ SIP/2\.0"
    rb"|SIP/2\.0 [1-6][0-9][0-9] [^\r\n]*)\r\n")
# The patterns below run on the lower-cased head and start with the line feed before a header
# name (the start line, which `_START_RE` checked, can name no header): a literal first byte
# lets the regex engine jump from line to line instead of trying every byte of the head.
# The names of the required headers present (full or compact): the alternation is anchored
# by `[ \t]*:`, so "to" is found for "To:" and never for "Tox:".
_REQUIRED_NAMES_RE = re.compile(rb"\n(via|v|from|f|to|t|call-id|i|cseq)[ \t]*:")
_VIA_RE = re.compile(rb"\n(?:via|v)[ \t]*:[ \t]*sip[ \t]*/[ \t]*2\.0[ \t]*/[ \t]*[a-z]+[ \t]+"
                     rb"([^;,\r\n \t]+)")
_LABEL = rb"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_SENT_BY_RE = re.compile(
    rb"(?:\[[0-9A-Fa-f:.]{2,45}\]|(?:" + _LABEL + rb"\.)*" + _LABEL + rb"\.?)(?::([0-9]{1,5}))?")
# The usual sent-by, an IPv4 address: a subset of `_SENT_BY_RE` (each part is a label) that
# the engine matches without the label pattern's backtracking.
_SENT_BY_V4_RE = re.compile(rb"[0-9]{1,3}(?:\.[0-9]{1,3}){3}(?::([0-9]{1,5}))?")
_REQUIRED = {b"via": b"v", b"from": b"f", b"to": b"t", b"call-id": b"i", b"cseq": b""}
_HEAD_END = b"\r\n\r\n"


def preparse(data: bytes, max_size: int) -> str | None:
    """Why the datagram is not a SIP message worth parsing, or None when it may be one."""
    if len(data) > max_size:
        return "too large"
    head_end = data.find(_HEAD_END)
    head = data if head_end < 0 else data[:head_end + 2]
    if _START_RE.match(head) is None:
        return "bad start line"
    low = head.lower()
    names = set(_REQUIRED_NAMES_RE.findall(low))
    for name, compact in _REQUIRED.items():
        if name not in names and compact not in names:
            return f"no {name.decode()} header"
    via = _VIA_RE.search(low)
    if via is None:
        return "bad via"
    sent_by = _SENT_BY_V4_RE.fullmatch(via.group(1)) or _SENT_BY_RE.fullmatch(via.group(1))
    if sent_by is None or (sent_by.group(1) and not 0 < int(sent_by.group(1)) < 65536):
        return "bad via host"
    return None


@dataclass(slots=True)
class _Source:
    tokens: float
    stamp: float
    strikes: deque[float] = field(default_factory=deque)


@dataclass(frozen=True, slots=True)
class Ban:
    """One banned source address, until `until` (loop clock), and why."""

    host: str
    until: float
    reason: str


class Guard:
    """Admits or drops input per source; keeps the ban list and the drop counters."""

    def __init__(self, config: SecurityConfig, trusted: Callable[[str], bool]) -> None:
        self.config = config
        self.trusted = trusted
        self.bans: dict[str, Ban] = {}
        self.dropped: Counter[str] = Counter()  # reason -> messages dropped at the edge
        self.bans_total = 0
        self._sources: dict[str, _Source] = {}

    # ------------------------------------------------------------------ the per-input path

    def admit(self, data: bytes, host: str, datagram: bool, now: float) -> bool:
        """True when `data` from `host` may go on to the SIP parser."""
        ban = self.bans.get(host)
        if ban is not None:
            if now < ban.until:
                self.dropped["banned"] += 1
                return False
            self.unban(host)
        if self.trusted(host):
            return True
        cfg = self.config
        if cfg.rate_limit and not data.startswith(b"SIP/2.0 "):
            src = self._source(host, now)
            src.tokens = min(float(cfg.rate_limit),
                             src.tokens + (now - src.stamp) * cfg.rate_limit)
            src.stamp = now
            if src.tokens < 1.0:
                self.dropped["rate_limited"] += 1
                self.strike(host, now, "messages over the rate limit")
                return False
            src.tokens -= 1.0
        if datagram and len(data) > 4:
            why = preparse(data, cfg.max_message_size)
            if why is not None:
                self.dropped[why] += 1
                self.strike(host, now)
                return False
        return True

    def strike(self, host: str, now: float, what: str = "invalid requests") -> None:
        """One invalid (or excess) message from `host`; bans it past the threshold."""
        cfg = self.config
        if not cfg.ban_threshold or host in self.bans or self.trusted(host):
            return
        strikes = self._source(host, now).strikes
        strikes.append(now)
        while strikes and strikes[0] < now - cfg.ban_window:
            strikes.popleft()
        if len(strikes) >= cfg.ban_threshold:
            self.ban(host, now, f"{len(strikes)} {what} in {cfg.ban_window:g} s")

    # ------------------------------------------------------------------ the ban list

    def ban(self, host: str, now: float, reason: str, seconds: float | None = None) -> Ban:
        seconds = self.config.ban_time if seconds is None else seconds
        ban = self.bans[host] = Ban(host, now + seconds, reason)
        self._sources.pop(host, None)
        self.bans_total += 1
        log.warning("mediasrv: banned %s for %g s: %s", host, seconds, reason)
        return ban

    def unban(self, host: str) -> bool:
        if self.bans.pop(host, None) is None:
            return False
        log.info("mediasrv: unbanned %s", host)
        return True

    def is_banned(self, host: str, now: float) -> bool:
        ban = self.bans.get(host)
        return ban is not None and now < ban.until

    def expire(self, now: float) -> None:
        """Lift bans that ran out and forget quiet sources (called about once a second)."""
        for host in [h for h, b in self.bans.items() if b.until <= now]:
            self.unban(host)
        window = self.config.ban_window
        for host in [h for h, s in self._sources.items()
                     if s.stamp < now - window and not s.strikes or
                     s.strikes and s.strikes[-1] < now - window]:
            del self._sources[host]

    def _source(self, host: str, now: float) -> _Source:
        src = self._sources.get(host)
        if src is None:
            src = self._sources[host] = _Source(float(self.config.rate_limit), now)
        return src
