"""Behind a proxy: P-Asserted-Identity trust, the outbound proxy binding, the drain refusals,
and the config keys that turn them on."""

from __future__ import annotations

import dataclasses
import ipaddress
from pathlib import Path

import pytest

from mediasrv.call.gatekeeper import Gatekeeper
from mediasrv.call.proxy_mode import Drain, asserted_extension, via_proxy
from mediasrv.config import DEFAULT_CONFIG_DIR, DEFAULT_PLUGIN_DIR, ConfigError, load_config
from mediasrv.sip.message import parse_message

SHIPPED = load_config([DEFAULT_CONFIG_DIR], DEFAULT_PLUGIN_DIR)
BEHIND = dataclasses.replace(SHIPPED, sip=dataclasses.replace(
    SHIPPED.sip, trusted=(ipaddress.ip_network("127.0.0.5/32"),),
    outbound_proxy="sip:127.0.0.5:5070"))


def request(method: str = "INVITE", source: str = "127.0.0.5", pai: str | None = None,
            extra: str = ""):
    lines = [f"{method} sip:102@127.0.0.1 SIP/2.0",
             f"Via: SIP/2.0/UDP {source}:5070;branch=z9hG4bKpai",
             "From: <sip:101@127.0.0.1>;tag=a", "To: <sip:102@127.0.0.1>",
             "Call-ID: pm", f"CSeq: 1 {method}"]
    if pai is not None:
        lines.append(f"P-Asserted-Identity: {pai}")
    if extra:
        lines.append(extra)
    return parse_message(("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode())


def test_trusted_proxy_asserting_an_extension_makes_the_caller_that_extension() -> None:
    verdict = Gatekeeper(BEHIND).check(request(pai='"Bob" <sip:101@proxy.example>'), 0.0)
    assert verdict.response is None and verdict.extension.number == "101"


def test_a_tel_or_unknown_identity_first_is_skipped_for_a_known_one() -> None:
    pai = "<tel:+3912345>, <sip:999@proxy>, <sip:103@proxy>"
    assert asserted_extension(request(pai=pai), BEHIND).number == "103"


def test_trusted_source_without_identity_is_an_external_party() -> None:
    verdict = Gatekeeper(BEHIND).check(request(), 0.0)
    assert verdict.response is None and verdict.extension is None


def test_identity_from_an_untrusted_source_is_ignored_and_challenged() -> None:
    verdict = Gatekeeper(BEHIND).check(request(source="127.0.0.9", pai="<sip:101@x>"), 0.0)
    assert verdict.response is not None and verdict.response.status == 401


def test_a_register_never_takes_an_asserted_identity() -> None:
    assert asserted_extension(request("REGISTER", pai="<sip:101@x>"), BEHIND) is None


def test_a_malformed_identity_is_ignored() -> None:
    assert asserted_extension(request(pai="<sip:10 1@x"), BEHIND) is None


def test_via_proxy_sends_the_extension_to_the_proxy() -> None:
    [binding] = via_proxy("104", BEHIND)
    assert binding.contact == "sip:104@127.0.0.5:5070"
    assert (binding.source_host, binding.source_port, binding.transport) == \
        ("127.0.0.5", 5070, "udp")
    assert via_proxy("104", SHIPPED) == []


def test_via_proxy_over_tcp() -> None:
    config = dataclasses.replace(BEHIND, sip=dataclasses.replace(
        BEHIND.sip, outbound_proxy="sip:[::1]:5080;transport=tcp"))
    [binding] = via_proxy("104", config)
    assert binding.contact == "sip:104@[::1]:5080;transport=tcp"
    assert (binding.source_host, binding.source_port, binding.transport) == ("::1", 5080, "tcp")


def test_drain_refuses_new_invites_and_options_only() -> None:
    drain = Drain()
    assert drain.refusal(request()) is None
    drain.draining = True
    for method in ("INVITE", "OPTIONS"):
        response = drain.refusal(request(method))
        assert response.status == 503 and response.headers.get("Retry-After") == "5"
    assert drain.refusal(request(extra="Replaces: abc;to-tag=1;from-tag=2")) is None
    assert drain.refusal(request("REGISTER")) is None


def site(tmp_path: Path, text: str) -> list[Path]:
    (tmp_path / "99.toml").write_text(text)
    return [DEFAULT_CONFIG_DIR, tmp_path]


def test_config_keys_are_read(tmp_path: Path) -> None:
    cfg = load_config(site(tmp_path, '[sip]\noutbound_proxy = "sip:127.0.0.1:5070"\n'
                                     'node_id = "node-2"\ndrain_timeout = 30\n'),
                      DEFAULT_PLUGIN_DIR)
    assert (cfg.sip.outbound_proxy, cfg.sip.node_id, cfg.sip.drain_timeout) == \
        ("sip:127.0.0.1:5070", "node-2", 30.0)
    assert SHIPPED.sip.outbound_proxy == "" and SHIPPED.sip.node_id  # host name by default


@pytest.mark.parametrize("text, key", [
    ('outbound_proxy = "127.0.0.1:5070"', "sip.outbound_proxy: '127.0.0.1:5070' is not a sip:"),
    ('outbound_proxy = "sip:h:99999"', "sip.outbound_proxy"),
    ('node_id = "a b"', "sip.node_id: 'a b' must be"),
    ("drain_timeout = -1", "sip.drain_timeout"),
])
def test_bad_keys_name_file_and_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(site(tmp_path, f"[sip]\n{text}\n"), DEFAULT_PLUGIN_DIR)
    assert "99.toml: " + key in str(err.value)
