"""Our Contact and host:port towards a phone: its transport and address family, and the
listeners of the configuration in force (they are written once per listener set)."""

from __future__ import annotations

import dataclasses

from mediasrv.call.legs import Legs
from mediasrv.config import DEFAULT_CONFIG_DIR, DEFAULT_PLUGIN_DIR, Listener, load_config
from tests.call.world import FakeClock, FakeEngine

SHIPPED = load_config([DEFAULT_CONFIG_DIR], DEFAULT_PLUGIN_DIR)


def with_listeners(*listeners: Listener):
    return dataclasses.replace(SHIPPED, sip=dataclasses.replace(SHIPPED.sip,
                                                                listen=tuple(listeners)))


def test_contact_by_transport_and_family_and_after_a_reload() -> None:
    legs = Legs(with_listeners(Listener("udp", "127.0.0.1", 5060), Listener("tcp", "::1", 5061),
                               Listener("tls", "127.0.0.1", 5062)),
                sip=None, engine=FakeEngine(), clock=FakeClock())  # type: ignore[arg-type]
    assert legs.contact(("10.0.0.1", 5070, "udp")) == "<sip:mediasrv@127.0.0.1:5060>"
    assert legs.contact(("::2", 5070, "tcp")) == "<sip:mediasrv@[::1]:5061;transport=tcp>"
    assert legs.contact(("10.0.0.1", 5070, "tcp")) == "<sip:mediasrv@[::1]:5061;transport=tcp>"
    assert legs.contact(("10.0.0.1", 5070, "tls")) == "<sip:mediasrv@127.0.0.1:5062;transport=tls>"
    assert legs.sip_host("udp") == "127.0.0.1:5060"
    assert legs.sip_host("sctp") == "127.0.0.1:5060"  # no such listener: the first one
    legs.config = with_listeners(Listener("udp", "127.0.0.2", 5080))  # a reload
    assert legs.contact(("10.0.0.1", 5070, "udp")) == "<sip:mediasrv@127.0.0.2:5080>"
    assert legs.sip_host("udp") == "127.0.0.2:5080"
