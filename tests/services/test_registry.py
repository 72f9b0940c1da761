"""Service classes by name or by module, and the plugin contract end to end from TOML files."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from mediasrv.config import (
    DEFAULT_CONFIG_DIR,
    DEFAULT_PLUGIN_DIR,
    SERVICE_SCHEMAS,
    ConfigError,
    load_config,
)
from mediasrv.services import registry
from mediasrv.services.attended_transfer import AttendedTransfer
from mediasrv.services.blind_transfer import BlindTransfer
from mediasrv.services.host import ServiceHost
from mediasrv.services.registry import register_service, service_class

from .conftest import EXTENSIONS
from .fake_call import FakeCall

ECHO_MODULE = '''
"""A third-party service: on its code it reads the caller's number back as DTMF."""
from mediasrv.config import Setting, register_service_schema
from mediasrv.services.base import Service
from mediasrv.services.registry import register_service


class EchoNumber(Service):
    name = "echo_number"

    def start(self, leg, peer):
        self.control.send_dtmf(leg, leg.number)
        return False  # nothing to own: the call goes on as it was


register_service_schema("echo_number", {
    "codes": {"start": Setting("code", "*77")},
    "timers": {"feature_digit_timeout": Setting("number", 1.0, 0.2, 10.0)},
})
register_service("echo_number", EchoNumber)
'''


@pytest.fixture(autouse=True)
def clean_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Plugins registered by a test vanish after it (registry, schemas, imported module)."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    schemas = dict(SERVICE_SCHEMAS)
    yield
    SERVICE_SCHEMAS.clear()
    SERVICE_SCHEMAS.update(schemas)
    sys.modules.pop("echo_plugin", None)


def test_builtins_by_name() -> None:
    assert service_class("attended_transfer") is AttendedTransfer
    assert service_class("blind_transfer") is BlindTransfer


def test_unknown_name_names_the_file_and_suggests() -> None:
    with pytest.raises(ConfigError) as info:
        service_class("atended_transfer", file="plugins/x.toml")
    assert str(info.value) == ("plugins/x.toml: service.name: unknown service "
                               "'atended_transfer' (did you mean 'attended_transfer'?); "
                               "known: attended_transfer, blind_transfer")


def test_register_rejects_what_is_not_a_service() -> None:
    with pytest.raises(TypeError):
        register_service("bad", object)  # type: ignore[arg-type]


def test_module_that_cannot_be_imported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        service_class("nothing", "no_such_module_here", file="plugins/n.toml")
    assert str(info.value).startswith(
        "plugins/n.toml: service.module: cannot import 'no_such_module_here'")


def test_module_that_registers_another_name(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "quiet_plugin.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError) as info:
        service_class("quiet", "quiet_plugin", file="plugins/q.toml")
    assert str(info.value) == ("plugins/q.toml: service.module: 'quiet_plugin' registers no "
                               "service named 'quiet'")


def test_shipped_plugins_make_a_working_host() -> None:
    cfg = load_config([DEFAULT_CONFIG_DIR], DEFAULT_PLUGIN_DIR)
    fake = FakeCall(cfg.extensions)
    host = ServiceHost(fake, cfg.enabled_services())
    assert sorted(host.services) == ["attended_transfer", "blind_transfer"]
    fake.host = host
    t, x = fake.new_leg("T", "100"), fake.new_leg("X", "101")
    fake.call(t, x)
    fake.press(t, "#4")
    assert fake.hears(x) == "moh:default" and fake.hears(t) == "prompt:transfer"


def test_third_party_plugin_from_its_module(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "echo_plugin.py").write_text(ECHO_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "echo.toml").write_text(textwrap.dedent("""
        [service]
        name = "echo_number"
        module = "echo_plugin"
        [codes]
        start = "*78"
    """))
    cfg = load_config([DEFAULT_CONFIG_DIR], plugins)
    fake = FakeCall(EXTENSIONS)
    fake.host = ServiceHost(fake, cfg.enabled_services())
    t, x = fake.new_leg("T", "100"), fake.new_leg("X", "101")
    fake.call(t, x)
    fake.press(t, "*77")  # the schema default is replaced by the file's code
    assert fake.sent_to("X") == "*77"
    fake.press(t, "*78")
    assert fake.sent_to("T") == "100"  # the service ran
    assert fake.sent_to("X") == "*77*78"  # it took no call: the host sent the code on


def test_the_readme_example_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    readme = Path(registry.__file__).with_name("README.md").read_text()
    example = readme.split("```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "intercom_example.py").write_text(example)
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "intercom.toml").write_text(
        '[service]\nname = "intercom"\nmodule = "intercom_example"\n')
    cfg = load_config([DEFAULT_CONFIG_DIR], plugins)
    fake = FakeCall(EXTENSIONS)
    fake.host = ServiceHost(fake, cfg.enabled_services())
    t, x = fake.new_leg("T", "100"), fake.new_leg("X", "101")
    fake.call(t, x)
    fake.press(t, "*8")
    assert fake.hears(x) == "tone:beep" and fake.sent == []
    fake.advance(0.5)
    assert fake.talking(t, x)
    fake.press(x, "*8")  # a one-shot service leaves the legs' codes in place
    assert fake.hears(t) == "tone:beep"
    sys.modules.pop("intercom_example", None)
