"""Configuration loading: layering, defaults, and every kind of error with its exact message."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from mediasrv.config import DEFAULT_CONFIG_DIR, DEFAULT_PLUGIN_DIR, ConfigError, load_config

PLUGIN = """
[service]
name = "attended_transfer"
enabled = true
[codes]
start = "#4"
cancel = "*0"
swap = "*9"
three_way = "*3"
"""


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def plugins(tmp_path: Path) -> Path:
    write(tmp_path / "plugins", "attended_transfer.toml", PLUGIN)
    return tmp_path / "plugins"


def problems_of(dirs: list[Path], plugin_dir: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(dirs, plugin_dir)
    return [str(p) for p in info.value.problems]


def rel(path: Path) -> str:
    import os
    return os.path.relpath(path)


def test_shipped_configuration_loads() -> None:
    cfg = load_config([DEFAULT_CONFIG_DIR], DEFAULT_PLUGIN_DIR)
    assert [str(x) for x in cfg.sip.listen] == ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"]
    assert (cfg.rtp.port_min, cfg.rtp.port_max) == (20000, 29999)
    assert sorted(cfg.extensions) == [str(n) for n in range(100, 110)]
    at = cfg.services["attended_transfer"]
    assert at.enabled and dict(at.codes) == {"start": "#4", "cancel": "*0", "swap": "*9",
                                              "three_way": "*3"}
    assert at.settings["timers"]["digit_timeout"] == 2.0
    assert at.settings["behaviour"]["blond"] == "complete"
    assert "default" in cfg.moh
    assert cfg.sip.udp_receive_buffer == 4 * 1024 * 1024


def test_later_directories_override_key_by_key(tmp_path: Path, plugins: Path) -> None:
    base = write(tmp_path / "base", "00.toml", """
        [rtp]
        ports = [30000, 30999]
        ptime = 20
        [extensions.100]
        password = "a"
        name = "Base"
    """).parent
    site = write(tmp_path / "site", "00.toml", """
        [rtp]
        ptime = 30
        [extensions.100]
        name = "Site"
    """).parent
    cfg = load_config([base, site], plugins)
    assert (cfg.rtp.port_min, cfg.rtp.ptime) == (30000, 30)
    assert cfg.extensions["100"].name == "Site" and cfg.extensions["100"].password == "a"


def test_relative_paths_are_relative_to_their_file(tmp_path: Path, plugins: Path) -> None:
    d = write(tmp_path / "conf", "00.toml", """
        [storage]
        path = "db/x.sqlite3"
        [moh.jazz]
        files = ["music/*.wav"]
    """).parent
    cfg = load_config([d], plugins)
    assert cfg.storage.path == (d / "db" / "x.sqlite3").resolve()
    assert cfg.moh["jazz"].patterns == (str(d / "music" / "*.wav"),)


def test_environment_variable_is_a_path_list(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    from mediasrv.config import config_dirs_from_env
    monkeypatch.setenv("MEDIASRV_CONFIG", f"{tmp_path / 'a'}:{tmp_path / 'b'}")
    assert config_dirs_from_env(None) == [tmp_path / "a", tmp_path / "b"]
    assert config_dirs_from_env(["x"]) == [Path("x")]


ERROR_CASES = [
    ("unknown key with a hint", "[rtp]\nptimes = 20\n",
     "{f}: rtp.ptimes: unknown key (did you mean 'ptime'?)"),
    ("unknown section", "[rpt]\nptime = 20\n",
     "{f}: rpt: unknown section (did you mean 'rtp'?)"),
    ("wrong type", "[rtp]\nptime = \"20\"\n",
     "{f}: rtp.ptime: must be an integer, not a string"),
    ("boolean for a number", "[extensions.100]\npassword = \"x\"\nring_timeout = true\n",
     "{f}: extensions.100.ring_timeout: must be a number, not a boolean"),
    ("port out of range", "[sip]\nlisten = [\"udp:127.0.0.1:70000\"]\n",
     "{f}: sip.listen[0]: port 70000 is out of range 1-65535"),
    ("bad listen", "[sip]\nlisten = [\"sctp:127.0.0.1:5060\"]\n",
     "{f}: sip.listen[0]: 'sctp:127.0.0.1:5060' is not transport:host:port with transport "
     "udp, tcp or tls"),
    ("rtp range out of range", "[rtp]\nports = [80, 90000]\n",
     "{f}: rtp.ports: ports must be between 1024 and 65535, not [80, 90000]"),
    ("value out of range", "[rtp]\nptime = 500\n",
     "{f}: rtp.ptime: must be between 10 and 60, not 500"),
    ("choice", "[extensions.100]\npassword = \"x\"\ndtmf = \"sip-info\"\n",
     "{f}: extensions.100.dtmf: must be one of rfc4733, inband, auto, not 'sip-info'"),
    ("srtp policy", "[extensions.100]\npassword = \"x\"\nsrtp = \"yes\"\n",
     "{f}: extensions.100.srtp: must be one of off, optional, required, dtls, not 'yes'"),
    ("missing password", "[extensions.100]\nname = \"x\"\n",
     "{f}: extensions.100.password: is required (or give ha1)"),
    ("failover target missing",
     "[extensions.101]\npassword = \"x\"\n[extensions.101.failover]\n"
     "busy = { action = \"forward\", to = \"999\" }\n",
     "{f}: extensions.101.failover.busy.to: extension 999 is not defined"),
    ("failover action unknown",
     "[extensions.101]\npassword = \"x\"\n[extensions.101.failover]\n"
     "busy = { action = \"explode\" }\n",
     "{f}: extensions.101.failover.busy.action: must be one of return, announce, forward, "
     "hangup, voicemail, not 'explode'"),
    ("digest algorithm", "[sip]\ndigest_algorithms = [\"SHA-1\"]\n",
     "{f}: sip.digest_algorithms[0]: unknown algorithm 'SHA-1' (supported: SHA-256, MD5)"),
    ("bad trusted", "[sip]\ntrusted = [\"10.0.0.0/33\"]\n",
     "{f}: sip.trusted[0]: '10.0.0.0/33' is not an address or CIDR network"),
    ("udp receive buffer", "[sip]\nudp_receive_buffer = -1\n",
     "{f}: sip.udp_receive_buffer: must be between 0 and 1073741824, not -1"),
    ("not toml", "[rtp\n", None),
]


@pytest.mark.parametrize("case,text,expected", ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_each_error_names_file_key_reason(tmp_path: Path, plugins: Path, case: str, text: str,
                                          expected: str | None) -> None:
    f = write(tmp_path / "conf", "00.toml", text)
    found = problems_of([f.parent], plugins)
    if expected is None:
        assert len(found) == 1 and found[0].startswith(f"{rel(f)}: -: not valid TOML: ")
    else:
        assert expected.format(f=rel(f)) in found, found


def test_duplicate_extension_in_one_directory(tmp_path: Path, plugins: Path) -> None:
    write(tmp_path / "conf", "00.toml", "[extensions.100]\npassword = \"a\"\n")
    f = write(tmp_path / "conf", "10.toml", "[extensions.100]\npassword = \"b\"\n")
    assert problems_of([tmp_path / "conf"], plugins) == [
        f"{rel(f)}: extensions.100: duplicate extension (also defined in "
        f"{rel(tmp_path / 'conf' / '00.toml')})"]


def test_every_problem_is_reported_at_once(tmp_path: Path, plugins: Path) -> None:
    write(tmp_path / "conf", "00.toml", "[rtp]\nptime = 500\ncodecs = [\"G729\"]\n"
          "[extensions.100]\nlanguage = \"fr\"\n")
    found = problems_of([tmp_path / "conf"], plugins)
    assert len(found) == 4, found
    assert any("rtp.codecs[0]: unknown codec 'G729'" in p for p in found)
    assert any("extensions.100.language: must be one of en, it, not 'fr'" in p for p in found)


def test_error_points_at_the_file_that_set_the_key(tmp_path: Path, plugins: Path) -> None:
    write(tmp_path / "a", "00.toml", "[rtp]\nptime = 20\n")
    f = write(tmp_path / "b", "00.toml", "[rtp]\nptime = 7\n")
    assert problems_of([tmp_path / "a", tmp_path / "b"], plugins) == [
        f"{rel(f)}: rtp.ptime: must be between 10 and 60, not 7"]


PLUGIN_CASES = [
    ("empty code", {"cancel": ""}, "codes.cancel: a code must not be empty"),
    ("bad characters", {"swap": "*9x"}, "codes.swap: code '*9x' may only use 0-9 * # A B C D"),
    ("terminator as code", {"swap": "#"},
     "codes.swap: code '#' is the number terminator, not a whole code"),
    ("prefix collision", {"three_way": "*9"}, None),
]


@pytest.mark.parametrize("case,codes,expected", PLUGIN_CASES, ids=[c[0] for c in PLUGIN_CASES])
def test_plugin_code_errors(tmp_path: Path, case: str, codes: dict[str, str],
                            expected: str | None) -> None:
    body = {"start": "#4", "cancel": "*0", "swap": "*9", "three_way": "*3"} | codes
    text = "[service]\nname = \"attended_transfer\"\n[codes]\n" + "".join(
        f"{k} = \"{v}\"\n" for k, v in body.items())
    f = write(tmp_path / "plugins", "attended_transfer.toml", text)
    conf = write(tmp_path / "conf", "00.toml", "").parent
    found = problems_of([conf], tmp_path / "plugins")
    if expected is None:
        expected = ("codes.three_way: code '*9' is the same as '*9' "
                    f"({rel(f)}: codes.swap): one is a prefix of the other")
    assert found == [f"{rel(f)}: {expected}"]


def test_start_codes_of_two_services_collide(tmp_path: Path, plugins: Path) -> None:
    f = write(plugins, "blind_transfer.toml", "[service]\nname = \"blind_transfer\"\n"
          "[codes]\nstart = \"#42\"\n")
    conf = write(tmp_path / "conf", "00.toml", "").parent
    assert problems_of([conf], plugins) == [
        f"{rel(f)}: codes.start: code '#42' collides with '#4' "
        f"({rel(plugins / 'attended_transfer.toml')}: codes.start): one is a prefix of the other"]


def test_disabled_service_codes_are_not_checked_for_collisions(tmp_path: Path,
                                                               plugins: Path) -> None:
    write(plugins, "blind_transfer.toml", "[service]\nname = \"blind_transfer\"\n"
          "enabled = false\n[codes]\nstart = \"#4\"\n")
    conf = write(tmp_path / "conf", "00.toml", "").parent
    cfg = load_config([conf], plugins)
    assert [s.name for s in cfg.enabled_services()] == ["attended_transfer"]


def test_unknown_service_and_plugin_keys(tmp_path: Path, plugins: Path) -> None:
    f = write(plugins, "zz.toml", "[service]\nname = \"attended_transfr\"\n")
    g = write(plugins, "attended_transfer.toml", PLUGIN + "[timers]\ndigit_timout = 3\n")
    conf = write(tmp_path / "conf", "00.toml", "").parent
    found = problems_of([conf], plugins)
    assert f"{rel(g)}: timers.digit_timout: unknown key (did you mean 'digit_timeout'?)" in found
    assert any(p.startswith(f"{rel(f)}: service.name: unknown service 'attended_transfr' "
                            "(did you mean 'attended_transfer'?)") for p in found), found
