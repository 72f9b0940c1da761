"""The operations API: routes, the Bearer-token check and the actions on a running server.

How this works: `ROUTES` is the routing table (method, path template, handler, whether a token
is needed); `ApiApp.__call__` matches a request against it (404 for an unknown path, 405 with
`Allow` for a known path and another method), checks `Authorization: Bearer <api.token>`
(RFC 6750 §2.1; a missing or wrong token gets 401 with `WWW-Authenticate`, RFC 6750 §3) and
runs the handler. Views are computed from the live server on each request (`views.py`).

Actions act through the same paths as a phone would:
- hang up: through the call control services use (`ServiceControl.end_from_outside`): every
  leg of the call is ended (BYE, CANCEL or a final answer, as its state needs), then every
  owner of a leg (a REFER transfer, a service session) is told it hung up, so it finishes as
  it would when the phone hangs up;
- transfer: the leg "dials" the service's start code (and then `target` and `#`) through the
  service host, with source `api` — the API is one more keypad: same code matcher, same
  permissions, same session;
- reload: `Server.reload()`, the SIGHUP path;
- unban: the SIP edge's guard forgets the ban at once (`GET /v1/bans` lists them).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol
from urllib.parse import unquote

from mediasrv.api import openapi, views
from mediasrv.api.events import EventHub
from mediasrv.api.http import EventStream, HttpError, HttpRequest, HttpResponse, HttpServer
from mediasrv.call.api import DigitReceived
from mediasrv.call.leg import SipLeg
from mediasrv.console.phone import ConsolePhone

if TYPE_CHECKING:
    from mediasrv.call.b2bua import B2BUA
    from mediasrv.call.control import ServiceControl
    from mediasrv.call.records import CallRecords
    from mediasrv.config import Config
    from mediasrv.metrics import Metrics
    from mediasrv.services.host import ServiceHost
    from mediasrv.transport.driver import SipDriver
    from mediasrv.transport.guard import Guard

log = logging.getLogger("mediasrv.api")

Answer = HttpResponse | EventStream
HANGUP_ROUNDS = 3  # a session told of a hang-up may still dial; those legs go in a later round
_TARGET = re.compile(r"[0-9*]{0,15}")


class Server(Protocol):
    """The parts of the running server the API reads and acts through (`server.Server`)."""

    config: Config
    b2bua: B2BUA | None
    driver: SipDriver | None
    control: ServiceControl | None
    services: ServiceHost | None
    records: CallRecords | None
    metrics: Metrics | None
    console: ConsolePhone | None

    def reload(self) -> None: ...


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    handler: str
    auth: bool = True

    def match(self, segments: list[str]) -> dict[str, str] | None:
        """The path parameters (percent-decoded) when the segments fit the template."""
        parts = self.template.strip("/").split("/")
        if len(parts) != len(segments):
            return None
        params = {}
        for part, seg in zip(parts, segments, strict=True):
            if part.startswith("{"):
                params[part[1:-1]] = unquote(seg)
            elif part != seg:
                return None
        return params


ROUTES: tuple[Route, ...] = (
    Route("GET", "/metrics", "metrics", auth=False),
    Route("GET", "/openapi.json", "openapi", auth=False),
    Route("GET", "/v1/registrations", "registrations"),
    Route("GET", "/v1/calls", "calls"),
    Route("GET", "/v1/calls/{call_id}", "call"),
    Route("DELETE", "/v1/calls/{call_id}", "hangup"),
    Route("GET", "/v1/channels", "channels"),
    Route("POST", "/v1/legs/{leg_id}/transfer", "transfer"),
    Route("POST", "/v1/reload", "reload"),
    Route("GET", "/v1/events", "events"),
    Route("GET", "/v1/bans", "bans"),
    Route("DELETE", "/v1/bans/{address}", "unban"),
    Route("GET", "/v1/console", "console"),
    Route("POST", "/v1/console/dial", "console_dial"),
    Route("POST", "/v1/console/hangup", "console_hangup"),
)


class ApiApp:
    """The request handler given to `HttpServer`."""

    def __init__(self, server: Server, hub: EventHub) -> None:
        self.server = server
        self.hub = hub
        self._document = json.dumps(openapi.document()).encode()

    async def __call__(self, request: HttpRequest) -> Answer:
        route, params = _route(request)
        if route.auth:
            self._authorise(request)
        handler: Callable[..., Awaitable[Answer]] = getattr(self, f"_{route.handler}")
        return await handler(request, **params)

    def _authorise(self, request: HttpRequest) -> None:
        token = self.server.config.api.token  # read per request: a reload can change it
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise _unauthorised("a Bearer token is required", "")
        if not token or not hmac.compare_digest(given.strip().encode(), token.encode()):
            raise _unauthorised("wrong token", ', error="invalid_token"')

    def _b2bua(self) -> B2BUA:
        if self.server.b2bua is None:
            raise HttpError(503, "the server is stopping")
        return self.server.b2bua

    # ------------------------------------------------------------------ views

    async def _metrics(self, request: HttpRequest) -> Answer:
        if self.server.metrics is None:
            raise HttpError(503, "the server is stopping")
        body, content_type = self.server.metrics.exposition()
        return HttpResponse(200, body, content_type)

    async def _openapi(self, request: HttpRequest) -> Answer:
        return HttpResponse(200, self._document)

    async def _registrations(self, request: HttpRequest) -> Answer:
        return HttpResponse.json(200, views.registrations(self._b2bua()))

    async def _calls(self, request: HttpRequest) -> Answer:
        return HttpResponse.json(200, views.calls(self._b2bua(), self.server.records))

    async def _call(self, request: HttpRequest, call_id: str) -> Answer:
        b2bua = self._b2bua()
        legs = _legs_of(b2bua, call_id)
        if not legs:
            raise HttpError(404, f"no live call {call_id!r}")
        return HttpResponse.json(200, views.call(b2bua, self.server.records, call_id, legs))

    async def _channels(self, request: HttpRequest) -> Answer:
        return HttpResponse.json(200, views.channels(self._b2bua()))

    async def _events(self, request: HttpRequest) -> Answer:
        kinds = tuple(k for k in request.query.get("kinds", "").split(",") if k)
        sub = self.hub.subscribe(kinds)
        return EventStream(sub.events(), close=lambda: self.hub.unsubscribe(sub))

    async def _bans(self, request: HttpRequest) -> Answer:
        driver = self.server.driver
        return HttpResponse.json(200, views.bans(self._guard(), driver.loop.time()))

    def _guard(self) -> Guard:
        driver = self.server.driver
        if driver is None or driver.guard is None:
            raise HttpError(503, "the server is stopping")
        return driver.guard

    # ------------------------------------------------------------------ actions

    async def _unban(self, request: HttpRequest, address: str) -> Answer:
        if not self._guard().unban(address):
            raise HttpError(404, f"{address!r} is not banned")
        return HttpResponse.json(200, {"address": address, "unbanned": True})

    async def _hangup(self, request: HttpRequest, call_id: str) -> Answer:
        b2bua, control = self._b2bua(), self.server.control
        if not _legs_of(b2bua, call_id) or control is None:
            raise HttpError(404, f"no live call {call_id!r}")
        ended: list[str] = []
        for _ in range(HANGUP_ROUNDS):
            legs = _legs_of(b2bua, call_id)
            control.end_from_outside(legs)
            ended += [leg.id for leg in legs]
        return HttpResponse.json(200, {"call_id": call_id, "legs": ended})

    async def _transfer(self, request: HttpRequest, leg_id: str) -> Answer:
        b2bua, body = self._b2bua(), request.json()
        if not isinstance(body, dict):
            raise HttpError(422, "the body must be a JSON object")
        name, target = str(body.get("service", "attended_transfer")), str(body.get("target", ""))
        if not _TARGET.fullmatch(target):
            raise HttpError(422, f"target {target[:20]!r} is not a number to dial")
        leg = b2bua.legs.by_id(leg_id)
        host = self.server.services
        service = host.services.get(name) if host else None
        if leg is None or host is None or service is None:
            raise HttpError(404, f"no live leg {leg_id!r}" if leg is None
                            else f"service {name!r} is not enabled")
        code = service.codes.get("start", "")
        _check_transferable(b2bua, leg, name, code)
        for digit in code + (f"{target}#" if target else ""):
            host.handle(DigitReceived(leg, digit, "api"))
        if not service.owns(leg):
            raise HttpError(409, f"{name} did not take the call")
        record = self.server.records.active.get(leg.call_id) if self.server.records else None
        state = record.transfer.get("state") if record and record.transfer else ""
        return HttpResponse.json(202, {"call_id": leg.call_id, "leg": leg.id, "service": name,
                                       "state": str(state)})

    async def _reload(self, request: HttpRequest) -> Answer:
        before = self.server.config
        self.server.reload()
        if self.server.config is before:
            raise HttpError(422, "reload refused: the configuration could not be loaded "
                            "(the server log says why); the running one stays")
        return HttpResponse.json(200, {"reloaded": True, "detail": "new calls use it"})


    # ------------------------------------------------------------------ the console

    def _console_phone(self) -> ConsolePhone:
        if self.server.console is None:
            raise HttpError(404, "no console: [console] extension is not set")
        return self.server.console

    async def _console(self, request: HttpRequest) -> Answer:
        phone = self._console_phone()
        return HttpResponse.json(200, _console_view(phone))

    async def _console_dial(self, request: HttpRequest) -> Answer:
        phone, body = self._console_phone(), request.json()
        number = str(body.get("number", "")) if isinstance(body, dict) else ""
        if not _TARGET.fullmatch(number) or not number:
            raise HttpError(422, f"number {number[:20]!r} is not a number to dial")
        try:
            phone.dial(number)
        except ValueError as exc:
            raise HttpError(409, str(exc)) from exc
        return HttpResponse.json(202, _console_view(phone))

    async def _console_hangup(self, request: HttpRequest) -> Answer:
        phone = self._console_phone()
        phone.hangup()
        return HttpResponse.json(200, _console_view(phone))


def _console_view(phone: ConsolePhone) -> dict[str, object]:
    return {"extension": phone.number, "registered": phone.registered.is_set(),
            "state": phone.state, "peer": phone.peer or None}


def _unauthorised(detail: str, error: str) -> HttpError:
    return HttpError(401, detail, (("WWW-Authenticate", f'Bearer realm="mediasrv"{error}'),))


def _route(request: HttpRequest) -> tuple[Route, dict[str, str]]:
    segments = request.path.strip("/").split("/")
    allowed = []
    for route in ROUTES:
        params = route.match(segments)
        if params is None:
            continue
        if route.method == request.method:
            return route, params
        allowed.append(route.method)
    if allowed:
        raise HttpError(405, f"allowed: {', '.join(allowed)}", (("Allow", ", ".join(allowed)),))
    raise HttpError(404, f"no such resource {request.path[:100]!r}")


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _legs_of(b2bua: B2BUA, call_id: str) -> list[SipLeg]:
    return b2bua.legs.of_call(call_id)


def _check_transferable(b2bua: B2BUA, leg: SipLeg, name: str, code: str) -> None:
    """The conditions under which the leg's own dialling of `code` would start the service."""
    peer = b2bua.topology.peer_of(leg)
    allowed = leg.extension is not None and leg.extension.may_use(name)
    problem = ("the service has no start code" if not code
               else "the leg is not answered" if not leg.answered
               else f"extension may not use {name}" if not allowed
               else "the call is already in a service" if leg.owner or (peer and peer.owner)
               else "the leg is not in a two-party call" if peer is None
               else "")
    if problem:
        raise HttpError(409, problem)


class OperationsApi:
    """The API's lifecycle for the server: the HTTP listener plus the event hub."""

    def __init__(self, server: Server) -> None:
        self.token = server.config.api.token
        self.hub = EventHub()
        self.http = HttpServer(ApiApp(server, self.hub))

    async def start(self, listen: str) -> None:
        """Binds `host:port` (`[v6]:port`); OSError when the address cannot be had."""
        host, _, port = listen.rpartition(":")
        host = host.strip("[]")
        await self.http.start(host, int(port))
        if not _loopback(host):
            log.warning("the API listens on %s, not loopback: anyone who can reach it and "
                        "has the token controls calls", host)
        if not self.token:
            log.warning("[api] token is empty: only /metrics and /openapi.json are served")
        elif self.token == "change-me":
            log.warning("[api] token is the shipped default: change it")

    @property
    def port(self) -> int:
        return self.http.port

    async def close(self) -> None:
        self.hub.close()
        await self.http.close()
