"""The registrar (RFC 3261 §10.3): REGISTER in, bindings kept, the 200 (or error) out.

How this works: `Registrar.register(extension, request, source, now)` runs the steps of §10.3
for an already authenticated request and returns the response to send. Bindings are per
extension and contact URI, with an absolute expiry (wall-clock, so they survive a restart)
and the address the REGISTER came from (received/rport, RFC 3581): requests to the phone go
to that address, which is what reaches a phone behind NAT. Every change is written to the
SQLite store at once; `Registrar.load()` reads the live ones back at start-up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from mediasrv.call.store import BindingRow, Store
from mediasrv.sip.errors import SipParseError
from mediasrv.sip.message import Request, Response, make_response
from mediasrv.sip.uri import NameAddr

log = logging.getLogger("mediasrv.registrar")

MIN_EXPIRES = 60
MAX_EXPIRES = 3600
DEFAULT_EXPIRES = 3600

Source = tuple[str, int, str]  # host, port, transport


class Registrar:
    def __init__(self, store: Store, on_change: Callable[[str], None] | None = None) -> None:
        self.store = store
        self.bindings: dict[str, dict[str, BindingRow]] = {}
        self._on_change = on_change or (lambda _ext: None)

    def load(self, now: float) -> int:
        for row in self.store.load_bindings(now):
            self.bindings.setdefault(row.extension, {})[row.contact] = row
        return sum(len(b) for b in self.bindings.values())

    def contacts(self, extension: str, now: float) -> list[BindingRow]:
        """Live bindings of an extension, highest q first."""
        live = [b for b in self.bindings.get(extension, {}).values() if b.expires_at > now]
        return sorted(live, key=lambda b: -b.q)

    def is_registered(self, extension: str, now: float) -> bool:
        return bool(self.contacts(extension, now))

    def expire(self, now: float) -> None:
        for ext, table in self.bindings.items():
            for contact in [c for c, b in table.items() if b.expires_at <= now]:
                del table[contact]
                self.store.delete_binding(ext, contact)
                self._on_change(ext)

    def register(self, extension: str, request: Request, source: Source,
                 now: float) -> Response:
        try:
            contacts = _contact_values(request)
            header_expires = _expires_header(request)
        except (SipParseError, ValueError) as exc:
            return make_response(request, 400, f"Bad Contact or Expires: {exc}")
        if contacts == ["*"]:
            return self._unregister_all(extension, request, header_expires, now)
        parsed = []
        for value in contacts:
            try:
                addr = NameAddr.parse(value)
                expires = _contact_expires(addr, header_expires)
            except (SipParseError, ValueError):
                return make_response(request, 400, "Bad Contact")
            if 0 < expires < MIN_EXPIRES:
                return make_response(request, 423, headers=[("Min-Expires", str(MIN_EXPIRES))])
            parsed.append((addr, min(expires, MAX_EXPIRES)))
        for addr, expires in parsed:
            error = self._apply(extension, addr, expires, request, source, now)
            if error:
                return make_response(request, 500, error)
        return self._ok(extension, request, now)

    def _unregister_all(self, extension: str, request: Request, expires: int | None,
                        now: float) -> Response:
        if expires != 0:
            return make_response(request, 400, "Contact * needs Expires: 0")
        for contact in list(self.bindings.get(extension, {})):
            self._remove(extension, contact)
        log.info("extension %s unregistered all contacts", extension)
        return self._ok(extension, request, now)

    def _apply(self, extension: str, addr: NameAddr, expires: int, request: Request,
               source: Source, now: float) -> str | None:
        contact = str(addr.uri)
        call_id, (cseq, _) = request.call_id, request.cseq
        old = self.bindings.get(extension, {}).get(contact)
        if old and old.call_id == call_id and cseq <= old.cseq:
            return "Out of order CSeq"
        if expires == 0:
            self._remove(extension, contact)
            return None
        row = BindingRow(extension, contact, now + expires, call_id, cseq,
                         _q_value(addr), source[0], source[1], source[2])
        self.bindings.setdefault(extension, {})[contact] = row
        self.store.save_binding(row)
        if old is None:
            log.info("extension %s registered %s from %s:%s/%s", extension, contact, *source)
            self._on_change(extension)
        return None

    def _remove(self, extension: str, contact: str) -> None:
        if self.bindings.get(extension, {}).pop(contact, None) is not None:
            self.store.delete_binding(extension, contact)
            self._on_change(extension)

    def _ok(self, extension: str, request: Request, now: float) -> Response:
        headers = [("Contact", f"<{b.contact}>;expires={int(b.expires_at - now)}")
                   for b in self.contacts(extension, now)]
        return make_response(request, 200, headers=headers + [("Date", _http_date())])


def _contact_values(request: Request) -> list[str]:
    values = [v for line in request.headers.get_all("Contact") for v in [line.strip()] if v]
    if "*" in values and len(values) > 1:
        raise ValueError("* must be the only Contact")
    return values


def _expires_header(request: Request) -> int | None:
    value = request.headers.get("Expires")
    return None if value is None else int(value.strip())


def _contact_expires(addr: NameAddr, header: int | None) -> int:
    value = addr.params.get("expires")
    if value is not None:
        return int(value)
    return DEFAULT_EXPIRES if header is None else header


def _q_value(addr: NameAddr) -> float:
    try:
        return float(addr.params.get("q") or 1.0)
    except ValueError:
        return 1.0


def _http_date() -> str:
    from email.utils import formatdate
    return formatdate(usegmt=True)

