"""SIP messages: parse, build and serialise (RFC 3261 §7, §8.2.6, §18.3, §20, §21, §25).

How this works:
- `parse_message(bytes)` splits the head from the body at the first empty line (CRLF or,
  tolerantly, LF-only line endings), unfolds continuation lines (§7.3.1), normalises
  compact header names to full ones (§7.3.3), then checks the start line and the headers
  every request or response must carry (§8.1.1): To, From, Call-ID, CSeq, Via.
  Content-Length trims datagram bodies (§18.3). On failure it raises `SipParseError`
  with the status to answer and, for a request whose dialog-identifying headers parsed,
  `.partial` so the endpoint can still send that 400 (RFC 4475 §3.1.2). A message in the
  usual shape (CRLF line ends only, no folded line, no bare CR/LF or NUL in the head, plain
  `name: value` lines) is split by a fast path of plain string calls (`_plain_head`); any
  other takes the general path, which names what is wrong; both give the same result.
- `Headers` keeps header lines in order as received; `get_all` splits comma-separated
  lists (§7.3.1) only for headers whose grammar is a list.
- `StreamFramer` cuts a TCP byte stream into messages using Content-Length (§18.3),
  skipping keep-alive CRLFs (RFC 5626 §3.5.1).
- `make_response` builds a response from a request per §8.2.6.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from mediasrv.sip.errors import SipParseError
from mediasrv.sip.uri import (
    NameAddr,
    SipUri,
    Via,
    branch_of,
    is_token,
    memoise_by_text,
    split_outside,
    tag_of,
)

MAX_MESSAGE_SIZE = 64 * 1024
MAX_HEADER_LINES = 100
SIP_VERSION = "SIP/2.0"

COMPACT_FORMS = {
    "a": "Accept-Contact", "b": "Referred-By", "c": "Content-Type", "e": "Content-Encoding",
    "f": "From", "i": "Call-ID", "k": "Supported", "l": "Content-Length", "m": "Contact",
    "o": "Event", "r": "Refer-To", "s": "Subject", "t": "To", "u": "Allow-Events",
    "v": "Via", "x": "Session-Expires", "y": "Identity", "j": "Reject-Contact",
    "d": "Request-Disposition",
}
# Names whose usual spelling is not plain Title-Case-Per-Word.
_CANONICAL = {
    n.lower(): n
    for n in (
        "Call-ID", "CSeq", "WWW-Authenticate", "MIME-Version", "RAck", "RSeq", "SIP-ETag",
        "SIP-If-Match", "P-Asserted-Identity", "P-Preferred-Identity", "Identity-Info",
    )
}
# Headers whose grammar is a comma-separated list (§7.3.1; RFC 3261 §20, RFC 3265, RFC 3262).
LIST_HEADERS = frozenset(
    n.lower()
    for n in (
        "Via", "Contact", "Route", "Record-Route", "Path", "Service-Route", "Allow", "Supported",
        "Require", "Proxy-Require", "Unsupported", "Accept", "Accept-Encoding",
        "Accept-Language", "Content-Encoding", "Content-Language", "Allow-Events",
        "Alert-Info", "Call-Info", "Error-Info", "In-Reply-To", "Warning", "Reply-To",
        "P-Asserted-Identity", "Accept-Contact", "Reason",
    )
)
# Headers a message must carry exactly once (§8.1.1, §20).
_SINGLE_HEADERS = ("From", "To", "Call-ID", "CSeq")
_SINGLE_KEYS = tuple(n.lower() for n in _SINGLE_HEADERS)
# What a response copies from its request (§8.2.6.2), in this order; Record-Route only into
# responses that may create a dialog (101-299, §12.1.1).
_COPIED = ("Via", "Record-Route", "From", "To", "Call-ID", "CSeq")
_COPIED_NO_RR = tuple(n for n in _COPIED if n != "Record-Route")
_T = TypeVar("_T")
_UNSET = object()  # a memo's "not computed yet" (None is a value there)

REASON_PHRASES: dict[int, str] = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 199: "Early Dialog Terminated",
    200: "OK", 202: "Accepted", 204: "No Notification",
    300: "Multiple Choices", 301: "Moved Permanently", 302: "Moved Temporarily",
    305: "Use Proxy", 380: "Alternative Service",
    400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
    407: "Proxy Authentication Required", 408: "Request Timeout", 410: "Gone",
    412: "Conditional Request Failed", 413: "Request Entity Too Large",
    414: "Request-URI Too Long", 415: "Unsupported Media Type",
    416: "Unsupported URI Scheme", 420: "Bad Extension", 421: "Extension Required",
    422: "Session Interval Too Small", 423: "Interval Too Brief",
    429: "Provide Referrer Identity", 480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist", 482: "Loop Detected", 483: "Too Many Hops",
    484: "Address Incomplete", 485: "Ambiguous", 486: "Busy Here", 487: "Request Terminated",
    488: "Not Acceptable Here", 489: "Bad Event", 491: "Request Pending",
    493: "Undecipherable",
    500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Server Time-out", 505: "Version Not Supported",
    513: "Message Too Large", 580: "Precondition Failure",
    600: "Busy Everywhere", 603: "Decline", 604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}

_HEAD_END_RE = re.compile(rb"\r?\n\r?\n")
_LINE_RE = re.compile(r"\r?\n")
_FOLD_RE = re.compile(r"\r?\n[ \t]+")


@functools.lru_cache(maxsize=512)
def canonical_name(name: str) -> str:
    """The full, conventionally spelt header name for `name` (compact forms expanded)."""
    low = name.lower()
    if low in COMPACT_FORMS:
        return COMPACT_FORMS[low]
    return _CANONICAL.get(low) or "-".join(w.capitalize() for w in name.split("-"))


class Headers:
    """Ordered, case-insensitive multi-map of header lines (RFC 3261 §7.3).

    Each stored line keeps one header field line's value; names are stored in canonical
    form (compact forms expanded), so iteration reproduces the message's order.

    Lookups are memoised until the next change: `get` results by header name, and values
    derived from them (`derived`, e.g. a message's To tag or CSeq) by a name starting with
    "#". A message is read many times while it is handled and changed rarely; every method
    that changes a line empties the memo.
    """

    __slots__ = ("_items", "_memo")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        # (lower-case key, canonical name, value): the key makes lookups one comparison.
        self._items: list[tuple[str, str, str]] = [_line(n, v) for n, v in items]
        self._memo: dict[str, object] = {}

    def get(self, name: str) -> str | None:
        """The first value for `name`, or None; for a list header (e.g. Via, Contact) the
        first element of its first line."""
        memo = self._memo
        # memoised by the name as asked (the callers' few spellings), so that a hit costs
        # no canonical-name look-up
        value = memo.get(name, _UNSET)
        if value is not _UNSET:
            return value  # type: ignore[return-value]
        key = _key(name)
        value = None
        for item in self._items:  # indexing, not unpacking: compiled, one reference not three
            if item[0] == key:
                v = item[2]
                value = (_split_list(v) or (v,))[0] if key in LIST_HEADERS else v
                break
        memo[name] = value
        return value

    def derived(self, name: str, compute: Callable[[Headers], _T]) -> _T:
        """`compute(self)`, memoised under `name` (which starts with "#") until the next
        change; an exception is not memoised."""
        value = self._memo.get(name, _UNSET)
        if value is _UNSET:
            value = self._memo[name] = compute(self)
        return value  # type: ignore[return-value]

    def get_all(self, name: str) -> list[str]:
        """All values for `name` in order; list headers are split on their commas."""
        key = _key(name)
        values = [item[2] for item in self._items if item[0] == key]
        if key not in LIST_HEADERS:
            return values
        return [p for v in values for p in _split_list(v)]

    def set(self, name: str, value: str) -> None:
        """Replace every line of `name` by one line, at the place of the first one."""
        key = _key(name)
        items = self._items
        at = [i for i, item in enumerate(items) if item[0] == key]
        if len(at) == 1:
            items[at[0]] = _line(name, value)
        else:
            self.remove(name)
            items = self._items
            items.insert(at[0] if at else len(items), _line(name, value))
        self._memo.clear()

    def add(self, name: str, value: str) -> None:
        """Append a line."""
        self._items.append(_line(name, value))
        self._memo.clear()

    def prepend(self, name: str, value: str) -> None:
        """Insert a line before the first line of `name` (or at the top), e.g. a new Via."""
        key = _key(name)
        index = next((i for i, item in enumerate(self._items) if item[0] == key), 0)
        self._items.insert(index, _line(name, value))
        self._memo.clear()

    def remove(self, name: str) -> None:
        """Remove every line of `name`."""
        key = _key(name)
        self._items = [item for item in self._items if item[0] != key]
        self._memo.clear()

    def count(self, name: str) -> int:
        """How many lines of `name` there are (not list elements)."""
        key = _key(name)
        n = 0
        for item in self._items:  # a loop, not sum() over a generator: compiled, 3x cheaper
            if item[0] == key:
                n += 1
        return n

    def items(self) -> list[tuple[str, str]]:
        """All (name, value) lines, in order."""
        return [(n, v) for _k, n, v in self._items]

    def copy(self) -> Headers:
        """A shallow copy."""
        new = Headers()
        new._items = list(self._items)
        new._memo = dict(self._memo)
        return new

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.items())

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and self._items == other._items

    def __repr__(self) -> str:
        return f"Headers({self.items()!r})"


def _split_list(value: str) -> tuple[str, ...]:
    """Elements of a comma-separated header value; an unbalanced quote leaves it whole, so
    the error surfaces where the element is parsed, not in a lookup."""
    if "," not in value and '"' not in value:
        # one element (most Via and Contact values): cheaper than a look-up in the memo
        element = value.strip()
        return (element,) if element else ()
    return _split_list_memo(value)


@memoise_by_text
def _split_list_memo(value: str) -> tuple[str, ...]:
    """`_split_list` of a value with commas or quotes. Memoised: a message's Via and
    Contact values are looked up many times while it is handled."""
    try:
        parts = split_outside(value, ",")
    except SipParseError:
        return (value,)
    return tuple(p.strip() for p in parts if p.strip())


@functools.lru_cache(maxsize=512)
def _key(name: str) -> str:
    return canonical_name(name).lower()


@functools.lru_cache(maxsize=512)
def _names(name: str) -> tuple[str, str]:
    canonical = canonical_name(name)
    return canonical.lower(), canonical


def _line(name: str, value: str) -> tuple[str, str, str]:
    key, canonical = _names(name)
    return key, canonical, value


class _MessageBase:
    """Accessors shared by requests and responses (dialog and transaction identifiers)."""

    headers: Headers
    body: bytes

    def _start_line(self) -> str:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        """Serialise, first setting Content-Length to the body's length (§20.14)."""
        length, headers = str(len(self.body)), self.headers
        lines = [self._start_line()]
        count, right = 0, False
        for item in headers._items:  # the lines written and Content-Length checked, one pass
            if item[0] == "content-length":
                count += 1
                right = item[2] == length
            lines.append(f"{item[1]}: {item[2]}")
        if count == 0:  # a new message: what `set` would do, appended to the lines as well
            headers.add("Content-Length", length)
            lines.append(f"Content-Length: {length}")
        elif count != 1 or not right:
            headers.set("Content-Length", length)
            return self.to_bytes()
        lines += ("", "")  # the head's final CRLF and the empty line (§7), in the one join
        return "\r\n".join(lines).encode("utf-8", "surrogateescape") + self.body

    @property
    def call_id(self) -> str:
        """The Call-ID (§20.8); "" when missing."""
        return self.headers.get("Call-ID") or ""

    @property
    def cseq(self) -> tuple[int, str]:
        """(sequence number, method) from CSeq (§20.16)."""
        return self.headers.derived("#cseq", _cseq_of)

    @property
    def from_addr(self) -> NameAddr:
        """The parsed From header."""
        return NameAddr.parse(self.headers.get("From") or "")

    @property
    def to_addr(self) -> NameAddr:
        """The parsed To header."""
        return NameAddr.parse(self.headers.get("To") or "")

    @property
    def from_tag(self) -> str | None:
        """The From tag (§19.3)."""
        return self.headers.derived("#from_tag", _from_tag_of)

    @property
    def to_tag(self) -> str | None:
        """The To tag (§19.3); None outside a dialog."""
        return self.headers.derived("#to_tag", _to_tag_of)

    @property
    def top_via(self) -> Via:
        """The topmost Via value (§8.2.6.2, §18.2.1)."""
        via = self.headers.get("Via")
        if via is None:
            raise SipParseError("missing Via")
        return Via.parse(via)

    @property
    def via_branch(self) -> str | None:
        """The branch parameter of the topmost Via (§17.2.3)."""
        return self.headers.derived("#via_branch", _branch_of)


def _cseq_of(headers: Headers) -> tuple[int, str]:
    return parse_cseq(headers.get("CSeq") or "")


def _from_tag_of(headers: Headers) -> str | None:
    return tag_of(headers.get("From") or "")


def _to_tag_of(headers: Headers) -> str | None:
    return tag_of(headers.get("To") or "")


def _branch_of(headers: Headers) -> str | None:
    via = headers.get("Via")
    if via is None:
        raise SipParseError("missing Via")
    return branch_of(via)


@dataclass(eq=True)
class Request(_MessageBase):
    """A SIP request (§7.1). `uri` is the Request-URI text, any scheme."""

    method: str
    uri: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    def _start_line(self) -> str:
        return f"{self.method} {self.uri} {SIP_VERSION}"

    @property
    def request_uri(self) -> SipUri:
        """The Request-URI parsed (raises `SipParseError`, status 416 for other schemes)."""
        return SipUri.parse(self.uri)


@dataclass(eq=True)
class Response(_MessageBase):
    """A SIP response (§7.2)."""

    status: int
    reason: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    def _start_line(self) -> str:
        return f"{SIP_VERSION} {self.status} {self.reason}"


Message = Request | Response


@memoise_by_text
def parse_cseq(value: str) -> tuple[int, str]:
    """Parse a CSeq value `number method` (§20.16; number below 2**31, §8.1.1.5). Memoised:
    the same few values (`1 INVITE`, `2 ACK`) come in every call."""
    parts = value.split()
    if len(parts) != 2 or not parts[0].isdigit() or not is_token(parts[1]):
        raise SipParseError(f"bad CSeq {value[:40]!r}")
    if len(parts[0]) > 10 or int(parts[0]) >= 2**31:
        raise SipParseError("CSeq number too large")
    return int(parts[0]), parts[1]


def _head_end(data: bytes) -> tuple[int, int] | None:
    """Where `_HEAD_END_RE` first matches in `data` (start, end), or None. The usual CRLF
    head is found with `find` (a regex search tries every position of the message); when a
    bare-LF blank line could come first, the regex decides."""
    crlf = data.find(b"\r\n\r\n")
    if crlf >= 0 and data.find(b"\n\n", 0, crlf + 1) < 0 \
            and data.find(b"\n\r\n", 0, crlf + 2) < 0:  # none starting before crlf
        return crlf, crlf + 4
    m = _HEAD_END_RE.search(data)
    return (m.start(), m.end()) if m else None


def _split_lines(head: str) -> tuple[list[str], bool]:
    """`_LINE_RE.split(_FOLD_RE.sub(" ", head))` (continuation lines unfolded, §7.3.1) with
    plain string operations: no regex pass over every message; and whether the lines are
    free of the control characters a header value must not hold (a bare CR, NUL), looked for
    once in the whole head rather than in every line."""
    if "\n " in head or "\n\t" in head:
        head = _FOLD_RE.sub(" ", head)
    head = head.replace("\r\n", "\n")
    return head.split("\n"), "\r" not in head and "\x00" not in head


def _split_head(data: bytes) -> tuple[str, bytes]:
    at = _head_end(data)
    head, body = (data[: at[0]], data[at[1] :]) if at else (data, b"")
    try:
        return head.decode("utf-8"), body
    except UnicodeDecodeError:
        raise SipParseError("header not UTF-8") from None


def _parse_start_line(line: str, headers: Headers) -> Request | Response:
    if line.startswith("SIP/"):
        version, _, rest = line.partition(" ")
        code, _, reason = rest.partition(" ")
        if version != SIP_VERSION:
            raise SipParseError(f"unsupported version {version[:20]!r}", status=505)
        if len(code) != 3 or not code.isdigit() or not 100 <= int(code) <= 699:
            raise SipParseError(f"bad status code {code[:10]!r}")
        return Response(int(code), reason.strip(), headers)
    parts = line.split(" ")
    if len(parts) != 3 or not is_token(parts[0]) or not parts[1]:
        raise SipParseError("bad request line")
    if parts[2] != SIP_VERSION:
        status = 505 if parts[2].upper().startswith("SIP/") else 400
        raise SipParseError(f"unsupported version {parts[2][:20]!r}", status=status)
    return Request(parts[0], parts[1], headers)


def _parse_header_lines(
    lines: list[str], clean: bool
) -> tuple[Headers, SipParseError | None]:
    """Parse header lines; on a bad line, return what parsed so far and the error. `clean`:
    no line holds a bare CR or a NUL (`_split_lines` looked), so no line is searched."""
    if len(lines) > MAX_HEADER_LINES:
        return Headers(), SipParseError("too many header lines")
    headers = Headers()
    items = headers._items
    for line in lines:
        raw, colon, value = line.partition(":")
        names = _HEADER_NAMES.get(raw) if colon else None
        if names is None:
            name = raw.rstrip(" \t")
            if not colon or not is_token(name):
                return headers, SipParseError(f"bad header line {line[:40]!r}")
            names = _names(name)
            if len(_HEADER_NAMES) < _HEADER_NAMES_MAX:
                _HEADER_NAMES[raw] = names
        # a bare CR would split the line on the way out
        if not clean and ("\r" in value or "\x00" in value):
            name = raw.rstrip(" \t")
            return headers, SipParseError(f"control character in {name}")
        items.append((*names, value.strip(" \t")))
    return headers, None


# Header names as they come before the colon (`Via`, `v `...) -> (key, canonical name): the
# same few on every message; bounded, so a flood of made-up names cannot grow it.
_HEADER_NAMES: dict[str, tuple[str, str]] = {}
_HEADER_NAMES_MAX = 1024


def _check_request_uri(uri: str) -> None:
    scheme = uri.partition(":")[0].lower()
    if scheme in ("sip", "sips", "tel"):
        SipUri.parse(uri)
    elif not is_token(scheme) or ":" not in uri:
        raise SipParseError(f"bad Request-URI {uri[:60]!r}")


def _check_mandatory(msg: Request | Response) -> None:
    """Check the headers every message needs (§8.1.1) and their syntax."""
    h = msg.headers
    counts = dict.fromkeys(_SINGLE_KEYS, 0)  # one pass over the lines, not one per name
    for item in h._items:
        key = item[0]
        if key in counts:
            counts[key] += 1
    for name, key in zip(_SINGLE_HEADERS, _SINGLE_KEYS, strict=True):
        if (n := counts[key]) != 1:
            raise SipParseError(f"{'missing' if not n else 'repeated'} {name}")
    call_id = h.get("Call-ID")
    if not call_id or " " in call_id:
        raise SipParseError("bad Call-ID")
    # parsed for their syntax errors, into the memo the message's readers use
    h.derived("#from_tag", _from_tag_of)
    h.derived("#to_tag", _to_tag_of)
    _number, method = msg.cseq
    if isinstance(msg, Request) and method != msg.method:
        raise SipParseError("CSeq method does not match the request line")
    vias = h.get_all("Via")
    if not vias:
        raise SipParseError("missing Via")
    h.derived("#via_branch", _branch_of)  # the first element of the first Via line
    for via in vias[1:]:
        branch_of(via)


def _apply_content_length(msg: Request | Response, body: bytes) -> None:
    value, count = None, 0
    for item in msg.headers._items:  # one pass for `get` and `count`
        if item[0] == "content-length":
            count += 1
            if value is None:
                value = item[2]
    if count > 1:
        raise SipParseError("repeated Content-Length")
    if value is None:
        msg.body = body
        return
    if not value.isdigit() or len(value) > 9:
        raise SipParseError(f"bad Content-Length {value[:20]!r}")
    length = int(value)
    if length > len(body):
        raise SipParseError("Content-Length larger than the body")
    msg.body = body[:length]  # §18.3: extra datagram bytes are discarded


def _plain_head(data: bytes) -> tuple[list[str], bytes] | None:
    """The head's lines and the body of a message in the usual shape: CRLF line ends only,
    no folded line, no bare CR or LF and no NUL in the head; None for any other (the general
    path then parses it and names what is wrong). Each check scans the head once in C; the
    counts also rule out a bare-LF blank line before the first CRLF CRLF (`_head_end`)."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    try:
        head = data[:end].decode("utf-8")
    except UnicodeDecodeError:
        return None
    lines = head.split("\r\n")
    breaks = len(lines) - 1
    if head.count("\n") != breaks or head.count("\r") != breaks or "\x00" in head:
        return None
    return lines, data[end + 4 :]


def _plain_header_lines(lines: list[str]) -> Headers | None:
    """`_parse_header_lines` for the lines of `_plain_head`, or None when one of them is not
    a plain `name: value` line (a folded line starts with a space, so its name is no token)."""
    if len(lines) > MAX_HEADER_LINES:
        return None
    items = []
    for line in lines:
        colon = line.find(":")
        if colon < 0:
            return None
        raw = line[:colon]
        names = _HEADER_NAMES.get(raw)
        if names is None:
            name = raw.rstrip(" \t")
            if not is_token(name):
                return None
            names = _names(name)
            if len(_HEADER_NAMES) < _HEADER_NAMES_MAX:
                _HEADER_NAMES[raw] = names
        items.append((names[0], names[1], line[colon + 1 :].strip(" \t")))
    headers = Headers()
    headers._items = items
    return headers


def parse_message(data: bytes) -> Request | Response:
    """Parse one complete SIP message (a datagram, or a framed stream message).

    Raises `SipParseError`; see the module docstring for `.status` and `.partial`.
    Messages in the usual shape take a fast path to the same result (`_plain_head`).
    """
    if len(data) > MAX_MESSAGE_SIZE:
        raise SipParseError("message too large", status=413)
    if data[:1] in (b"\r", b"\n"):
        data = data.lstrip(b"\r\n")
    plain = _plain_head(data)
    headers = _plain_header_lines(plain[0][1:]) if plain is not None else None
    if plain is not None and headers is not None:
        lines, body = plain
        msg, error = _parse_start_line(lines[0], headers), None
    else:
        head, body = _split_head(data)
        lines, clean = _split_lines(head)
        msg = _parse_start_line(lines[0], Headers())
        msg.headers, error = _parse_header_lines(lines[1:], clean)
    try:
        if isinstance(msg, Request):
            _check_request_uri(msg.uri)
        if error is not None:
            raise error
        _check_mandatory(msg)
        _apply_content_length(msg, body)
    except SipParseError as exc:
        exc.partial = _answerable(msg)
        raise
    return msg


def _answerable(msg: Request | Response) -> Request | None:
    """The request if a response can be built from it (§8.2.6), else None."""
    if not isinstance(msg, Request) or msg.method == "ACK":
        return None
    try:
        Via.parse(msg.headers.get("Via") or "")
        parse_cseq(msg.headers.get("CSeq") or "")
        NameAddr.parse(msg.headers.get("From") or "")
    except SipParseError:
        return None
    # To is only copied into the answer, so a malformed one still gets its 400 (RFC 4475 §3.1.2).
    return msg if msg.headers.get("Call-ID") and msg.headers.get("To") else None


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
) -> Response:
    """Build a response to `request` (§8.2.6): copies Via, From, To, Call-ID and CSeq.

    `to_tag` is added to To unless the request's To already has one (an in-dialog
    request); Record-Route is copied into 101-299 responses, which may create a
    dialog (§12.1.1). Extra `headers` are appended in order. Works on the `.partial`
    request of a `SipParseError`, whose To may be malformed (it is then copied unchanged).
    """
    copied = _COPIED if 101 <= status <= 299 else _COPIED_NO_RR
    lines = request.headers._items
    # a pass per name: measured cheaper than one pass sorting the lines into lists per name
    out = Headers()
    out._items = [line for name in copied for line in lines if line[1] == name]
    to = out.get("To")
    if to_tag is not None and to is not None and _tag_or_unparsable(to) is None:
        out.set("To", f"{to};tag={to_tag}")
    for name, value in headers:
        out.add(name, value)
    return Response(status, reason or REASON_PHRASES.get(status, "Unknown"), out)


def _tag_or_unparsable(value: str) -> str | None:
    """The tag of a To value; a To that does not parse is left alone (answering a 400)."""
    try:
        return tag_of(value)
    except SipParseError:
        return "unparsable"


_CONTENT_LENGTH_RE = re.compile(rb"^(?:content-length|l)[ \t]*:[ \t]*(\S*)", re.I | re.M)
_TOKEN_BYTES = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                         b"-.!%*_+`'~")
_LINE_CHARS_RE = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")
# The shape of a start line (§7.1, §7.2), no more: a status line, or three words, the first a
# token and the last SIP/something (the parser answers a wrong version 505 itself).
_START_SHAPE_RE = re.compile(rb"SIP/[^ ]* .*|[A-Za-z0-9.!%*_+`'~-]+ [^ ]+ [Ss][Ii][Pp]/[^ ]*")


def start_line_verdict(data: bytes | bytearray) -> bool | None:
    """Can `data` (a stream at the start of a message) begin a SIP message? False as soon as
    it cannot (a first byte that starts no method and no `SIP/`, a control byte in the first
    line, a first line of another protocol such as `GET / HTTP/1.1`), True once a complete
    first line has the shape of a start line, None while it is too early to say."""
    if not data:
        return None
    if data[0] not in _TOKEN_BYTES:
        return False
    end = _LINE_CHARS_RE.match(data).end()  # type: ignore[union-attr]
    if end == len(data):
        return None
    if data[end] == 0x0D and end + 1 == len(data):
        return None
    if data[end] == 0x0A or data[end] == 0x0D and data[end + 1] == 0x0A:
        return _START_SHAPE_RE.fullmatch(data, 0, end) is not None
    return False


class StreamFramer:
    """Cut a TCP byte stream into SIP messages by Content-Length (§18.3).

    `feed()` returns parsed messages and `SipParseError`s in order. A message that is
    framed but invalid is reported and the stream goes on; a framing error (missing or bad
    Content-Length, oversize) is reported once, `should_close` becomes True and further
    input is ignored, since the stream can no longer be resynchronised.

    The cheap checks come first, so a flood of garbage costs little: a message must begin
    like a SIP start line (`start_line_verdict`, decided on its first bytes: binary garbage
    or another protocol is refused at its first byte or line, without waiting for a header
    end), a header larger than `max_size` is refused without being parsed (no answer: the
    parse is what a flood would cost), and the search for the header end resumes where the
    last one stopped instead of rescanning the buffer on every read.
    """

    def __init__(self, max_size: int = MAX_MESSAGE_SIZE) -> None:
        self._buffer = bytearray()
        self.max_size = max_size
        self.should_close = False
        self._start_ok = False  # the current message's first line has been checked
        self._scanned = 0  # the header end is not before this offset

    @property
    def buffered(self) -> int:
        """Bytes of an unfinished message (CRLF keep-alives do not count)."""
        return len(self._buffer)  # `_next` strips leading CRLFs on every feed

    def feed(self, data: bytes) -> list[Request | Response | SipParseError]:
        """Add received bytes; return every message completed by them."""
        if self.should_close:
            return []
        self._buffer += data
        out: list[Request | Response | SipParseError] = []
        while not self.should_close:
            item = self._next()
            if item is None:
                break
            out.append(item)
        return out

    def _next(self) -> Request | Response | SipParseError | None:
        buf = self._buffer
        if not self._start_ok:
            skip = 0
            while skip < len(buf) and buf[skip] in (0x0D, 0x0A):
                skip += 1
            if skip:
                del buf[:skip]
                self._scanned = 0
            verdict = start_line_verdict(buf)
            if verdict is False:
                return self._fatal(SipParseError("not a SIP start line"))
            if verdict is None:
                return self._fatal(SipParseError("header too large", 413)) \
                    if len(buf) > self.max_size else None
            self._start_ok = True
        m = _HEAD_END_RE.search(buf, self._scanned)
        if m is None:
            if len(buf) > self.max_size:
                return self._fatal(SipParseError("header too large", 413))
            self._scanned = max(0, len(buf) - 3)
            return None
        if m.end() > self.max_size:
            return self._fatal(SipParseError("header too large", 413))
        head = bytes(buf[: m.end()])
        lengths = _CONTENT_LENGTH_RE.findall(head)
        if len(lengths) != 1 or not lengths[0].isdigit() or len(lengths[0]) > 9:
            return self._fatal(SipParseError("missing or bad Content-Length"), head)
        total = m.end() + int(lengths[0])
        if total > self.max_size:
            return self._fatal(SipParseError("message too large", 413), head)
        if len(buf) < total:
            return None
        chunk = bytes(buf[:total])
        del buf[:total]
        self._start_ok, self._scanned = False, 0
        try:
            return parse_message(chunk)
        except SipParseError as exc:
            return exc

    def _fatal(self, error: SipParseError, head: bytes = b"") -> SipParseError:
        self.should_close = True
        self._buffer.clear()
        if head:
            error.partial = _partial_from_head(head)
        return error


def _partial_from_head(head: bytes) -> Request | None:
    """A request to answer a framing error with, parsed from the head alone."""
    without_length = _CONTENT_LENGTH_RE.sub(b"Content-Length: 0", head)
    try:
        msg = parse_message(without_length)
    except SipParseError as exc:
        return exc.partial
    return msg if isinstance(msg, Request) and msg.method != "ACK" else None
