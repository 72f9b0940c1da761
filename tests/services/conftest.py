"""Fixtures: extensions, service configs from the schema defaults, a fake call and a host."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from mediasrv.config import SERVICE_SCHEMAS, Extension, FailoverAction, ServiceConfig
from mediasrv.services.host import ServiceHost

from .fake_call import FakeCall, FakeLeg


def extension(number: str, *, services: tuple[str, ...] = ("*",), moh_class: str = "default",
              direct_media: bool = False, **failover: FailoverAction) -> Extension:
    table = {c: failover.get(c, FailoverAction("return"))
             for c in ("busy", "no_answer", "not_registered")}
    return Extension(number=number, password="pw", ha1="", name=number, language="en",
                     ring_timeout=20.0, dtmf="auto", direct_media=direct_media, moh_class=moh_class,
                     services=services, failover=table, voicemail_max_seconds=120.0)


EXTENSIONS = {
    "100": extension("100"),
    "101": extension("101"),
    "102": extension("102"),
    "103": extension("103", busy=FailoverAction("announce", prompt="busy"),
                     no_answer=FailoverAction("voicemail"),
                     not_registered=FailoverAction("hangup")),
    "104": extension("104", services=()),
    "105": extension("105", moh_class="jazz"),
    "106": extension("106", services=("blind_transfer",)),
    "107": extension("107", direct_media=True),
}


def service_config(name: str, *, enabled: bool = True, codes: dict[str, str] | None = None,
                   **tables: dict[str, Any]) -> ServiceConfig:
    """A ServiceConfig as the loader makes it: schema defaults, overridden per table."""
    schema = SERVICE_SCHEMAS[name]
    settings = {t: {k: s.default for k, s in keys.items()} for t, keys in schema.items()
                if t != "codes"}
    for table, values in tables.items():
        settings[table].update(values)
    all_codes = {k: s.default for k, s in schema["codes"].items()} | (codes or {})
    return ServiceConfig(name, enabled, "", f"plugins/{name}.toml", all_codes, settings)


class World:
    """A fake call model with a host, and the legs of one established call T <-> X."""

    def __init__(self, configs: list[ServiceConfig]) -> None:
        self.fake = FakeCall(EXTENSIONS)
        self.host = ServiceHost(self.fake, configs)
        self.fake.host = self.host
        self.t = self.fake.new_leg("T", "100")
        self.x = self.fake.new_leg("X", "101")

    def connect(self, a: FakeLeg | None = None, b: FakeLeg | None = None) -> None:
        self.fake.call(a or self.t, b or self.x)

    def hears(self, leg: FakeLeg) -> str:
        return self.fake.hears(leg)

    def assert_clean(self) -> None:
        """Nothing leaked: no timers, no leg still owned by a service."""
        assert self.fake.pending_timers == 0
        assert self.host.pending_timers == 0
        assert self.fake.owners == {}
        assert not any(s.busy for s in self.host.services.values())


@pytest.fixture
def world() -> Iterator[World]:
    w = World([service_config("attended_transfer"), service_config("blind_transfer")])
    yield w


def make_world(*configs: ServiceConfig) -> World:
    return World(list(configs))
