"""The plugin contract: a `Service` per enabled plugin file, a `Session` per use of it.

How this works: the `ServiceHost` (host.py) makes one `Service` for every enabled plugin file
(`plugins/NAME.toml`, read into a `ServiceConfig` by `mediasrv.config`) and hands it the
call model's `CallControl`. When a leg dials the service's `start` code during an ordinary
call, the host calls `Service.start(leg, peer)`; the service opens a `Session`, which takes
over the legs it acts on (`CallControl.take_over`). From then on the host gives every event of
those legs to `Service.handle(event)`, which routes it to the owning session.

A session is a state machine written as a table: `TRANSITIONS[(state, event)] = (action,
next_state)`. `fire(event)` runs the action method and enters the next state (`None` means the
action returns it, for the few rows whose outcome depends on configuration). Every transition is
published with `CallControl.publish` (logged with the call id). Entering one of `TERMINAL`
states, or having no live leg left, ends the session: its legs are released and the legs left
talking to each other are handed back to the host as an ordinary call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any, ClassVar

from mediasrv.call.api import CallControl, CallEvent, Leg, Timer
from mediasrv.config import SERVICE_SCHEMAS, ServiceConfig
from mediasrv.logs import call_logger

log = logging.getLogger("mediasrv.services")

SessionEnded = Callable[["Session", list[Leg]], None]


class Service:
    """One enabled plugin. Subclasses set `name` and implement `start()`."""

    name: ClassVar[str] = ""

    def __init__(self, control: CallControl, config: ServiceConfig) -> None:
        self.control = control
        self.config = config
        self.sessions: set[Session] = set()  # the live ones (a leg's owner is on the leg)
        self.session_ended: SessionEnded = lambda session, legs: None  # the host sets this

    @property
    def codes(self) -> Mapping[str, str]:
        """The plugin file's `[codes]` table (code name -> DTMF string)."""
        return self.config.codes

    def setting(self, table: str, key: str, default: Any = None) -> Any:
        """A typed setting of the plugin file, else the schema's default, else `default`."""
        value = self.config.settings.get(table, {}).get(key)
        if value is None:
            spec = SERVICE_SCHEMAS.get(self.config.name, {}).get(table, {}).get(key)
            value = spec.default if spec is not None else default
        return value

    def start(self, leg: Leg, peer: Leg) -> bool:
        """`leg` dialled this service's start code while talking to `peer`.
        Returns True when a session now owns the call."""
        raise NotImplementedError

    def session_of(self, leg: Leg) -> Session | None:
        """This service's session owning `leg` (`CallControl.owner_of`), if any."""
        owner = self.control.owner_of(leg)
        return owner if isinstance(owner, Session) and owner.service is self else None

    def owns(self, leg: Leg) -> bool:
        return self.session_of(leg) is not None

    @property
    def busy(self) -> bool:
        """True while any session of this service is running."""
        return bool(self.sessions)

    def handle(self, event: CallEvent) -> bool:
        """Gives the event to the session owning its leg; True when it was used."""
        session = self.session_of(event.leg)
        return session.handle(event) if session else False


class Session:
    """Per-use state of a service: owned legs, one state machine table, timers."""

    TRANSITIONS: ClassVar[Mapping[tuple[Any, Any], tuple[str, Any]]] = {}
    TERMINAL: ClassVar[frozenset[Any]] = frozenset()
    KIND: ClassVar[str] = "service"

    def __init__(self, service: Service, anchor: Leg, state: StrEnum) -> None:
        self.service = service
        self.control = service.control
        self.anchor = anchor  # the leg whose call id names this session in logs and events
        self.state = state
        self.legs: list[Leg] = []
        self._gone: set[str] = set()
        self._timers: list[Timer] = []
        self.finished = False
        self.log = call_logger(log, anchor.call_id)

    # -- legs

    @property
    def name(self) -> str:
        """The service's name: what the API shows as the owner of the legs."""
        return self.service.name

    def own(self, leg: Leg) -> None:
        """Takes `leg` over (the call layer keeps the one record: `CallControl.owner_of`)."""
        self.service.sessions.add(self)
        self.legs.append(leg)
        self.control.take_over(leg, self)

    def alive(self, leg: Leg | None) -> bool:
        return leg is not None and not leg.ended and leg.id not in self._gone

    def gone(self, leg: Leg) -> None:
        """Notes that `leg` ended (the far side hung up)."""
        self._gone.add(leg.id)

    def hang_up(self, leg: Leg | None) -> None:
        if leg is not None and self.alive(leg):
            self._gone.add(leg.id)
            self.control.hangup(leg)

    # -- timers

    def schedule(self, delay: float, callback: Callable[[], None]) -> None:
        def run() -> None:
            self._timers.remove(timer)
            if not self.finished:
                callback()
        timer = self.control.schedule(delay, run)
        self._timers.append(timer)

    def cancel_timers(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()

    # -- the machine

    def handle(self, event: CallEvent) -> bool:
        raise NotImplementedError

    def fire(self, event: StrEnum) -> None:
        """Runs the table row for (state, event); an event with no row is ignored."""
        if self.finished:
            return
        row = self.TRANSITIONS.get((self.state, event))
        if row is None:
            self.log.debug("%s: %s ignored in %s", self.KIND, event, self.state)
        else:
            action, target = row
            result = getattr(self, action)()
            before, self.state = self.state, target if target is not None else result
            self.entered(before)
            self.publish(event=str(event), previous=str(before))
        if self.state in self.TERMINAL:
            self.finish(self.connected())
        elif not any(self.alive(leg) for leg in self.legs):
            self.finish([])

    def entered(self, previous: Any) -> None:
        """Called after each transition, before it is published (subclasses tidy up here)."""

    def publish(self, **fields: object) -> None:
        self.control.publish(self.anchor, self.KIND, service=self.service.name,
                             state=str(self.state), **self.describe(), **fields)

    def describe(self) -> dict[str, object]:
        """Extra fields published with every transition (the parties' numbers)."""
        return {}

    def connected(self) -> list[Leg]:
        """The legs left talking to each other when the session ends in a terminal state."""
        return []

    def finish(self, connected: list[Leg]) -> None:
        """Releases every leg and hands the legs still talking back to the host."""
        if self.finished:
            return
        self.finished = True
        self.cancel_timers()
        self.stop()
        self.service.sessions.discard(self)
        for leg in self.legs:
            self.control.release(leg, self)
        self.service.session_ended(self, [leg for leg in connected if self.alive(leg)])

    def stop(self) -> None:
        """Subclasses cancel their own helpers (digit collectors, code matchers) here."""
