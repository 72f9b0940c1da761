"""Configuration: TOML files in, one frozen `Config` out, or every problem at once.

How this works (shared/specs/config.md):

1. `load_config(dirs, plugin_dir)` reads every `*.toml` of each config directory in file-name
   order, then every `*.toml` of the plugin directory. Each file is parsed with `tomllib`.
2. The files of the config directories are merged into one tree. Within one directory a table
   defined by two files is a conflict for extensions (a "duplicate extension"); across
   directories, later ones override earlier ones table by table and key by key. Every leaf
   remembers the file it came from, so a problem names the file that set the key.
3. The tree is read section by section by a `_Reader`, which takes keys off a table as it
   converts them; what is left over is an unknown key ("did you mean ..."). Every problem is a
   `Problem(file, key, reason)`; `ConfigError` carries all of them, printed `FILE: KEY: REASON`.
4. Plugin files are one service each (`[service] name/enabled/module`, `[codes]`, `[timers]`,
   `[behaviour]`). Codes of all enabled services are checked together (`_check_codes`).

Relative paths inside a file are resolved against that file's directory.
"""

from __future__ import annotations

import difflib
import glob
import importlib
import ipaddress
import os
import re
import socket
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mediasrv import addresses
from mediasrv.config_edge import (
    TLS_PATH_KEYS,
    SecurityConfig,
    TlsConfig,
    read_security,
    read_tls,
)
from mediasrv.paths import (
    SHIPPED_CONFIG_DIR,
    SHIPPED_PLUGIN_DIR,
    default_config_dir,
    default_state_dir,
)

DEFAULT_CONFIG_DIR = SHIPPED_CONFIG_DIR  # the shipped configuration (package data)
DEFAULT_PLUGIN_DIR = SHIPPED_PLUGIN_DIR

TRANSPORTS = ("udp", "tcp", "tls")
CODECS = ("PCMU", "PCMA", "G722", "OPUS")   # names as in SDP, any case ("opus" is OPUS)
DEFAULT_CODECS = ("G722", "PCMU", "PCMA")   # HD desk phones get G.722; Opus is opt-in
DIGEST_ALGORITHMS = ("SHA-256", "MD5")
UDP_RECEIVE_BUFFER = 4 * 1024 * 1024  # a ~1 s pause of the loop at 500 calls/s (transport/udp.py)
LANGUAGES = ("en", "it")
DTMF_MODES = ("rfc4733", "inband", "auto")
SRTP_POLICIES = ("off", "optional", "required", "dtls")
FAILOVER_CONDITIONS = ("busy", "no_answer", "not_registered")
FAILOVER_ACTIONS = ("return", "announce", "forward", "hangup", "voicemail")
BLOND_MODES = ("complete", "recall", "cancel")
CODE_ALPHABET = re.compile(r"^[0-9*#ABCD]+$")
CODE_TERMINATOR = "#"


# --------------------------------------------------------------------------- problems


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the configuration, located by file and dotted key."""

    file: str
    key: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.key}: {self.reason}"


class ConfigError(Exception):
    """Raised with every problem found; `str()` prints one `FILE: KEY: REASON` per line."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


# --------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class Listener:
    transport: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}:{host}:{self.port}"


@dataclass(frozen=True)
class SipConfig:
    listen: tuple[Listener, ...]
    realm: str
    trusted: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    timer_t1: float = 0.5
    digest_algorithms: tuple[str, ...] = ("MD5",)
    outbound_proxy: str = ""        # SIP URI of the front proxy for extensions not registered here
    node_id: str = ""               # this node's name in call records, voicemail and the API
    drain_timeout: float = 600.0    # SIGTERM: seconds existing calls may take before they are cut
    digest_uri_check: bool = False  # True: a digest uri other than the Request-URI gets 400
    udp_receive_buffer: int = UDP_RECEIVE_BUFFER  # bytes asked for each UDP listener (0 = kernel's)

    # host -> is_trusted(host): every SIP message asks (the edge guard, the gatekeeper)
    _trusted_memo: dict[str, bool] = field(default_factory=dict, init=False, repr=False,
                                           compare=False, hash=False)

    def is_trusted(self, host: str) -> bool:
        memo = self._trusted_memo
        known = memo.get(host)
        if known is None:
            if len(memo) >= 4096:  # many distinct sources: start over rather than grow
                memo.clear()
            try:
                addr = ipaddress.ip_address(host)
            except ValueError:
                known = False
            else:
                known = any(addr in net for net in self.trusted)
            memo[host] = known
        return known


@dataclass(frozen=True)
class RtpConfig:
    address: str
    port_min: int
    port_max: int
    codecs: tuple[str, ...]
    ptime: int
    timeout: float
    threads: int = 1
    max_busy: float = 0.75


@dataclass(frozen=True)
class StorageConfig:
    path: Path


@dataclass(frozen=True)
class ApiConfig:
    listen: str
    token: str


@dataclass(frozen=True)
class ConsoleConfig:
    extension: str
    input_device: str
    output_device: str


@dataclass(frozen=True)
class FailoverAction:
    action: str
    to: str = ""
    prompt: str = ""


@dataclass(frozen=True)
class Extension:
    number: str
    password: str
    ha1: str
    name: str
    language: str
    ring_timeout: float
    dtmf: str
    direct_media: bool
    moh_class: str
    services: tuple[str, ...]
    failover: Mapping[str, FailoverAction]
    voicemail_max_seconds: float
    codecs: tuple[str, ...] = ()     # offer/answer order for this phone; () = rtp.codecs
    srtp: str = "optional"          # SRTP_POLICIES; see mediasrv.call.srtp_policy

    def may_use(self, service: str) -> bool:
        return "*" in self.services or service in self.services


@dataclass(frozen=True)
class MohClass:
    name: str
    patterns: tuple[str, ...]  # absolute glob patterns

    def files(self) -> list[str]:
        return sorted(f for p in self.patterns for f in glob.glob(p))


@dataclass(frozen=True)
class ServiceConfig:
    """One plugin file: the service's name, switch, codes and its own settings tables."""

    name: str
    enabled: bool
    module: str
    file: str
    codes: Mapping[str, str]
    settings: Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True)
class Config:
    sip: SipConfig
    rtp: RtpConfig
    storage: StorageConfig
    api: ApiConfig
    console: ConsoleConfig
    extensions: Mapping[str, Extension]
    moh: Mapping[str, MohClass]
    services: Mapping[str, ServiceConfig]
    files: tuple[str, ...] = field(default=())
    tls: TlsConfig = field(default=TlsConfig())
    security: SecurityConfig = field(default=SecurityConfig())

    def enabled_services(self) -> list[ServiceConfig]:
        return [s for s in self.services.values() if s.enabled]


# --------------------------------------------------------------------------- reading files


@dataclass
class _Tree:
    """Merged TOML data with the file that set each key (dotted key -> file)."""

    data: dict[str, Any] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)

    def file_of(self, key: str) -> str:
        key = re.sub(r"\[\d+\]", "", key)  # "sip.listen[0]" was set with "sip.listen"
        while key:
            if key in self.origin:
                return self.origin[key]
            key = key.rpartition(".")[0]
        return self.origin.get("", "<config>")


def _display(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


def _read_toml(path: Path, problems: list[Problem]) -> dict[str, Any] | None:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        problems.append(Problem(_display(path), "-", f"not valid TOML: {exc}"))
    except OSError as exc:
        problems.append(Problem(_display(path), "-", f"cannot read: {exc.strerror}"))
    return None


def _resolve_paths(node: Any, base: Path, key: str) -> Any:
    """Turns the relative paths of known path keys into absolute ones, file by file."""
    if (key == "storage.path" or key in TLS_PATH_KEYS and node) and isinstance(node, str):
        return str((base / node).resolve())
    if key.startswith("moh.") and key.endswith(".files") and isinstance(node, list):
        return [str(base / p) if isinstance(p, str) else p for p in node]
    if key == "tls.certificates" and isinstance(node, list):
        return [{k: str((base / v).resolve()) if k in ("cert", "key") and isinstance(v, str)
                 and v else v for k, v in e.items()} if isinstance(e, dict) else e
                for e in node]
    if isinstance(node, dict):
        return {k: _resolve_paths(v, base, f"{key}.{k}" if key else k) for k, v in node.items()}
    return node


def _merge(tree: _Tree, target: dict[str, Any], data: dict[str, Any], file: str,
           prefix: str = "") -> None:
    """Lays `data` over `target` table by table and key by key, recording each key's file."""
    for k, v in data.items():
        key = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict):
            if not isinstance(target.get(k), dict):
                target[k] = {}
                tree.origin[key] = file
            _merge(tree, target[k], v, file, key)
            continue
        target[k] = v
        for stale in [o for o in tree.origin if o.startswith(key + ".")]:
            del tree.origin[stale]
        tree.origin[key] = file


def _toml_files(directory: Path, problems: list[Problem]) -> list[Path]:
    if not directory.is_dir():
        problems.append(Problem(_display(directory), "-", "not a directory"))
        return []
    return sorted(directory.glob("*.toml"))


def _load_dir(directory: Path, tree: _Tree, problems: list[Problem]) -> list[str]:
    files: list[str] = []
    seen_ext: dict[str, str] = {}
    for path in _toml_files(directory, problems):
        data = _read_toml(path, problems)
        if data is None:
            continue
        name = _display(path)
        files.append(name)
        extensions = data.get("extensions")
        for number in extensions if isinstance(extensions, dict) else {}:
            if number in seen_ext:
                problems.append(Problem(name, f"extensions.{number}", "duplicate extension "
                                        f"(also defined in {seen_ext[number]})"))
            seen_ext[number] = name
        _merge(tree, tree.data, _resolve_paths(data, path.parent, ""), name)
    return files


# --------------------------------------------------------------------------- typed reading


_MISSING = object()


class _Reader:
    """Takes typed values off one table; whatever is left at `finish()` is an unknown key."""

    def __init__(self, table: Any, key: str, tree: _Tree, problems: list[Problem]) -> None:
        self.key, self.tree, self.problems = key, tree, problems
        if not isinstance(table, dict):
            self.error("", "must be a table")
            table = {}
        self.table = dict(table)
        self.known: list[str] = []

    def full(self, name: str) -> str:
        return f"{self.key}.{name}" if name and self.key else (name or self.key)

    def error(self, name: str, reason: str) -> None:
        key = self.full(name)
        self.problems.append(Problem(self.tree.file_of(key), key, reason))

    def take(self, name: str, types: type | tuple[type, ...], default: Any, what: str) -> Any:
        self.known.append(name)
        value = self.table.pop(name, _MISSING)
        if value is _MISSING:
            if default is _MISSING:
                self.error(name, "is required")
            return None if default is _MISSING else default
        allowed = types if isinstance(types, tuple) else (types,)
        if isinstance(value, bool) and bool not in allowed:
            self.error(name, f"must be {what}, not a boolean")
            return default if default is not _MISSING else None
        if not isinstance(value, types):
            self.error(name, f"must be {what}, not {_type_name(value)}")
            return default if default is not _MISSING else None
        return value

    def str(self, name: str, default: Any = _MISSING, choices: Iterable[str] = ()) -> Any:
        value = self.take(name, str, default, "a string")
        choices = tuple(choices)
        if isinstance(value, str) and choices and value not in choices:
            self.error(name, f"must be one of {', '.join(choices)}, not {value!r}")
            return default if default is not _MISSING else None
        return value

    def bool(self, name: str, default: Any = _MISSING) -> Any:
        return self.take(name, bool, default, "true or false")

    def number(self, name: str, default: Any, lo: float, hi: float, integer: bool = False) -> Any:
        value = self.take(name, int if integer else (int, float), default,
                          "an integer" if integer else "a number")
        if isinstance(value, int | float) and not lo <= value <= hi:
            shown = "d" if integer else "g"  # integers in full: 1073741824, not 1.07374e+09
            self.error(name, f"must be between {lo:{shown}} and {hi:{shown}}, not {value:{shown}}")
            return default
        return value

    def strings(self, name: str, default: Any = _MISSING) -> Any:
        value = self.take(name, list, default, "a list of strings")
        if isinstance(value, list) and not all(isinstance(v, str) for v in value):
            self.error(name, "must be a list of strings")
            return default if default is not _MISSING else []
        return value

    def table_of(self, name: str) -> Any:
        return self.take(name, dict, {}, "a table")

    def finish(self) -> None:
        for name in self.table:
            close = difflib.get_close_matches(name, self.known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            self.error(name, f"unknown key{hint}")


def _type_name(value: Any) -> str:
    return {str: "a string", int: "an integer", float: "a number", list: "a list",
            dict: "a table", bool: "a boolean"}.get(type(value), type(value).__name__)


# --------------------------------------------------------------------------- sections


def _parse_listen(r: _Reader, entries: list[str]) -> tuple[Listener, ...]:
    listeners = []
    for i, text in enumerate(entries):
        parsed = addresses.parse_listener(text, TRANSPORTS)
        if isinstance(parsed, str):
            r.error(f"listen[{i}]", parsed)
            continue
        listeners.append(Listener(*parsed))
    return tuple(listeners)


def _read_sip(tree: _Tree, problems: list[Problem]) -> SipConfig:
    r = _Reader(tree.data.get("sip", {}), "sip", tree, problems)
    listen = _parse_listen(r, r.strings("listen", ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"]))
    realm = r.str("realm", "mediasrv")
    trusted = []
    for i, cidr in enumerate(r.strings("trusted", [])):
        try:
            trusted.append(ipaddress.ip_network(cidr, strict=False))
        except ValueError:
            r.error(f"trusted[{i}]", f"{cidr!r} is not an address or CIDR network")
    t1 = float(r.number("timer_t1", 0.5, 0.01, 5.0))
    algorithms = r.strings("digest_algorithms", ["MD5"]) or []
    for i, alg in enumerate(algorithms):
        if alg not in DIGEST_ALGORITHMS:
            r.error(f"digest_algorithms[{i}]",
                    f"unknown algorithm {alg!r} (supported: {', '.join(DIGEST_ALGORITHMS)})")
    if algorithms == []:
        r.error("digest_algorithms", "must name at least one algorithm")
    outbound_proxy = r.str("outbound_proxy", "")
    if outbound_proxy and not _is_proxy_uri(outbound_proxy):
        r.error("outbound_proxy", f"{outbound_proxy!r} is not a sip: URI with a host "
                "(e.g. \"sip:127.0.0.1:5060\", \";transport=tcp\" for TCP, \";transport=tls\" "
                "or sips: for TLS)")
    node_id = r.str("node_id", "") or socket.gethostname()
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", node_id):
        r.error("node_id", f"{node_id!r} must be 1-64 letters, digits, '.', '_' or '-'")
    drain = float(r.number("drain_timeout", 600.0, 0.0, 86400.0))
    uri_check = r.bool("digest_uri_check", False)
    receive_buffer = int(r.number("udp_receive_buffer", UDP_RECEIVE_BUFFER, 0, 1 << 30,
                                  integer=True))
    r.finish()
    valid = tuple(a for a in algorithms if a in DIGEST_ALGORITHMS) or ("MD5",)
    return SipConfig(listen, realm, tuple(trusted), t1, valid, outbound_proxy, node_id, drain,
                     digest_uri_check=bool(uri_check), udp_receive_buffer=receive_buffer)


def _is_proxy_uri(text: str) -> bool:
    m = re.fullmatch(r"sips?:(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?"
                     r"(;transport=(udp|tcp|tls))?", text)
    return m is not None and (not m.group(2) or 1 <= int(m.group(2)[1:]) <= 65535)


def _read_rtp(tree: _Tree, problems: list[Problem]) -> RtpConfig:
    r = _Reader(tree.data.get("rtp", {}), "rtp", tree, problems)
    address = r.str("address", "127.0.0.1")
    _check_address(r, "address", address)
    ports = r.take("ports", list, [20000, 29999], "a list of two port numbers")
    lo, hi = 20000, 29999
    if not (isinstance(ports, list) and len(ports) == 2 and all(type(p) is int for p in ports)):
        r.error("ports", "must be a list of two port numbers [first, last]")
    elif not all(1024 <= p <= 65535 for p in ports):
        r.error("ports", f"ports must be between 1024 and 65535, not {ports}")
    elif ports[1] - ports[0] < 3:
        r.error("ports", f"range {ports[0]}-{ports[1]} holds no RTP/RTCP pair (first < last - 2)")
    else:
        lo, hi = ports
    codecs = _read_codecs(r, list(DEFAULT_CODECS))
    ptime = r.number("ptime", 20, 10, 60, integer=True)
    if ptime % 10:
        r.error("ptime", f"must be a multiple of 10 ms, not {ptime}")
    timeout = r.number("timeout", 30, 0, 3600)
    threads = r.number("threads", max(1, (os.cpu_count() or 1) - 1), 1, 256, integer=True)
    if (hi - lo + 1) // 2 < threads:
        r.error("threads", f"{threads} media threads need at least {threads} port pairs in "
                f"ports {lo}-{hi}")
    max_busy = r.number("max_busy", 0.75, 0, 1)
    r.finish()
    return RtpConfig(address, lo, hi, codecs or DEFAULT_CODECS, ptime, float(timeout),
                     int(threads), float(max_busy))


def _read_codecs(r: _Reader, default: list[str] | None) -> tuple[str, ...]:
    """`codecs`: an ordered list of known codec names, any case, no repeats; () if absent."""
    codecs = r.strings("codecs", default)
    if codecs is None:
        return ()
    out: list[str] = []
    for i, c in enumerate(codecs):
        if c.upper() not in CODECS:
            r.error(f"codecs[{i}]", f"unknown codec {c!r} (supported: {', '.join(CODECS)})")
        elif c.upper() in out:
            r.error(f"codecs[{i}]", f"codec {c!r} is listed twice")
        else:
            out.append(c.upper())
    if codecs == []:
        r.error("codecs", "must name at least one codec")
    return tuple(out)


def _check_address(r: _Reader, name: str, address: Any) -> None:
    if isinstance(address, str):
        try:
            ipaddress.ip_address(address)
        except ValueError:
            r.error(name, f"{address!r} is not an IP address")


def _read_storage(tree: _Tree, problems: list[Problem]) -> StorageConfig:
    r = _Reader(tree.data.get("storage", {}), "storage", tree, problems)
    path = r.str("path", str(default_state_dir() / "mediasrv.sqlite3"))
    r.finish()
    return StorageConfig(Path(path))


def _read_api(tree: _Tree, problems: list[Problem]) -> ApiConfig:
    r = _Reader(tree.data.get("api", {}), "api", tree, problems)
    listen = r.str("listen", "127.0.0.1:8088")
    parsed = addresses.parse_host_port(listen) if listen else None
    if isinstance(parsed, str):
        r.error("listen", f"{parsed} (or \"\" for off)")
    token = r.str("token", "change-me")
    r.finish()
    return ApiConfig(listen, token)


def _read_tls(tree: _Tree, problems: list[Problem]) -> TlsConfig:
    r = _Reader(tree.data.get("tls", {}), "tls", tree, problems)
    sip = tree.data.get("sip")
    listen = sip.get("listen", []) if isinstance(sip, dict) else []
    needs = isinstance(listen, list) and any(str(x).startswith("tls:") for x in listen)
    tls = read_tls(r, needs)
    r.finish()
    return tls


def _read_security(tree: _Tree, problems: list[Problem]) -> SecurityConfig:
    r = _Reader(tree.data.get("security", {}), "security", tree, problems)
    security = read_security(r)
    r.finish()
    return security


def _read_console(tree: _Tree, problems: list[Problem]) -> ConsoleConfig:
    r = _Reader(tree.data.get("console", {}), "console", tree, problems)
    console = ConsoleConfig(r.str("extension", ""), r.str("input_device", ""),
                            r.str("output_device", ""))
    r.finish()
    return console


def _read_failover(r: _Reader) -> dict[str, FailoverAction]:
    table = r.table_of("failover")
    fr = _Reader(table, r.full("failover"), r.tree, r.problems)
    result = {}
    for cond in FAILOVER_CONDITIONS:
        entry = fr.take(cond, dict, {"action": "return"}, "a table like { action = \"return\" }")
        ar = _Reader(entry, fr.full(cond), r.tree, r.problems)
        action = ar.str("action", "return", FAILOVER_ACTIONS)
        to = ar.str("to", "")
        prompt = ar.str("prompt", "unavailable" if action == "announce" else "")
        if action == "forward" and not to:
            ar.error("to", "is required for action \"forward\"")
        ar.finish()
        result[cond] = FailoverAction(action or "return", to, prompt)
    fr.finish()
    return result


def _read_extension(number: str, table: Any, tree: _Tree, problems: list[Problem]) -> Extension:
    r = _Reader(table, f"extensions.{number}", tree, problems)
    if not re.fullmatch(r"[0-9]{1,15}", number):
        r.error("", "extension numbers must be 1 to 15 digits")
    password, ha1 = r.str("password", ""), r.str("ha1", "")
    if not password and not ha1:
        r.error("password", "is required (or give ha1)")
    ext = Extension(
        number=number, password=password, ha1=ha1,
        name=r.str("name", number),
        language=r.str("language", "en", LANGUAGES),
        ring_timeout=float(r.number("ring_timeout", 20, 1, 600)),
        dtmf=r.str("dtmf", "auto", DTMF_MODES),
        direct_media=r.bool("direct_media", False),
        moh_class=r.str("moh_class", "default"),
        services=tuple(r.strings("services", ["*"])),
        failover=_read_failover(r),
        voicemail_max_seconds=float(r.number("voicemail_max_seconds", 120, 5, 3600)),
        codecs=_read_codecs(r, None),
        srtp=r.str("srtp", "optional", SRTP_POLICIES),
    )
    r.finish()
    return ext


def _read_extensions(tree: _Tree, problems: list[Problem]) -> dict[str, Extension]:
    table = tree.data.get("extensions", {})
    if not isinstance(table, dict):
        problems.append(Problem(tree.file_of("extensions"), "extensions", "must be a table"))
        return {}
    return {str(n): _read_extension(str(n), t, tree, problems) for n, t in table.items()}


def _read_moh(tree: _Tree, problems: list[Problem]) -> dict[str, MohClass]:
    table = tree.data.get("moh", {})
    classes = {}
    for name, entry in (table.items() if isinstance(table, dict) else []):
        r = _Reader(entry, f"moh.{name}", tree, problems)
        classes[name] = MohClass(name, tuple(r.strings("files", [])))
        r.finish()
    if "default" not in classes:
        classes["default"] = MohClass("default", ())
    return classes


# --------------------------------------------------------------------------- cross-checks


def _check_references(cfg_ext: Mapping[str, Extension], moh: Mapping[str, MohClass],
                      tree: _Tree, problems: list[Problem]) -> None:
    for ext in cfg_ext.values():
        key = f"extensions.{ext.number}"
        for cond, action in ext.failover.items():
            if action.action == "forward" and action.to and action.to not in cfg_ext:
                k = f"{key}.failover.{cond}.to"
                problems.append(Problem(tree.file_of(k), k,
                                        f"extension {action.to} is not defined"))
        if ext.moh_class and ext.moh_class not in moh:
            k = f"{key}.moh_class"
            problems.append(Problem(tree.file_of(k), k,
                                    f"MoH class {ext.moh_class!r} is not defined"))


def _check_reach(sections: Mapping[str, Any], tree: _Tree, problems: list[Problem]) -> None:
    """Demo secrets beyond loopback, SIP ports inside the RTP range (mediasrv/addresses.py)."""
    found = addresses.exposure_problems(sections["sip"].listen, sections["api"],
                                        sections["extensions"].values())
    found += addresses.port_problems(sections["sip"].listen, sections["rtp"])
    problems += [Problem(tree.file_of(key), key, reason) for key, reason in found]


# --------------------------------------------------------------------------- plugins


@dataclass(frozen=True)
class Setting:
    """One key of a service's plugin file: its kind, default and bounds."""

    kind: str  # "code" | "number" | "int" | "choice" | "text" | "bool"
    default: Any
    lo: float = 0.0
    hi: float = 0.0
    choices: tuple[str, ...] = ()


ServiceSchema = Mapping[str, Mapping[str, Setting]]  # table -> key -> Setting

_TIMERS = {
    "digit_timeout": Setting("number", 2.0, 0.5, 30.0),
    "feature_digit_timeout": Setting("number", 1.0, 0.2, 10.0),
    "dial_attempts": Setting("int", 3, 1, 10),
}

SERVICE_SCHEMAS: dict[str, ServiceSchema] = {
    "attended_transfer": {
        "codes": {"start": Setting("code", "#4"), "cancel": Setting("code", "*0"),
                  "swap": Setting("code", "*9"), "three_way": Setting("code", "*3")},
        "timers": _TIMERS,
        "behaviour": {"blond": Setting("choice", "complete", choices=BLOND_MODES),
                      "moh_class": Setting("text", "")},
    },
    "blind_transfer": {
        "codes": {"start": Setting("code", "#1")},
        "timers": _TIMERS,
    },
}


def register_service_schema(name: str, schema: ServiceSchema) -> None:
    """Lets a plugin module outside the package declare the keys of its plugin file."""
    SERVICE_SCHEMAS[name] = schema


def _read_setting(r: _Reader, key: str, spec: Setting) -> Any:
    if spec.kind in ("code", "text"):
        return r.str(key, spec.default)
    if spec.kind == "choice":
        return r.str(key, spec.default, spec.choices)
    if spec.kind == "bool":
        return r.bool(key, spec.default)
    return r.number(key, spec.default, spec.lo, spec.hi, integer=spec.kind == "int")


def _schema_for(name: str, module: str, head: _Reader) -> ServiceSchema | None:
    if module:
        try:
            importlib.import_module(module)
        except Exception as exc:  # any failure of a plugin module is a config problem
            head.error("module", f"cannot import {module!r}: {exc}")
            return None
    if name in SERVICE_SCHEMAS:
        return SERVICE_SCHEMAS[name]
    close = difflib.get_close_matches(name, SERVICE_SCHEMAS, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    known = ", ".join(sorted(SERVICE_SCHEMAS))
    head.error("name", f"unknown service {name!r}{hint}; known: {known}")
    return None


def _read_service(path: Path, problems: list[Problem]) -> ServiceConfig | None:
    data = _read_toml(path, problems)
    if data is None:
        return None
    name = _display(path)
    tree = _Tree(data, {"": name})
    r = _Reader(data, "", tree, problems)
    head = _Reader(r.table_of("service"), "service", tree, problems)
    svc_name = head.str("name")
    enabled, module = head.bool("enabled", True), head.str("module", "")
    schema = _schema_for(svc_name, module, head) if svc_name else None
    head.finish()
    if schema is None:
        return None
    tables: dict[str, dict[str, Any]] = {}
    for table, keys in schema.items():
        tr = _Reader(r.table_of(table), table, tree, problems)
        tables[table] = {key: _read_setting(tr, key, spec) for key, spec in keys.items()}
        tr.finish()
    r.finish()
    codes = tables.pop("codes", {})
    return ServiceConfig(svc_name, bool(enabled), module, name, codes, tables)


def _check_code(svc: ServiceConfig, key: str, code: str, problems: list[Problem]) -> bool:
    where = f"codes.{key}"
    if not code:
        problems.append(Problem(svc.file, where, "a code must not be empty"))
    elif not CODE_ALPHABET.match(code):
        problems.append(Problem(svc.file, where, f"code {code!r} may only use 0-9 * # A B C D"))
    elif code == CODE_TERMINATOR:
        problems.append(Problem(svc.file, where,
                                f"code {code!r} is the number terminator, not a whole code"))
    else:
        return True
    return False


def _code_states(services: Iterable[ServiceConfig]) -> Iterator[tuple[str, list]]:
    """Groups codes by the state in which they are dialled.

    `start` codes are dialled during an ordinary call, so all services share that state; the
    other codes are dialled inside that service's own session.
    """
    idle: list[tuple[ServiceConfig, str, str]] = []
    for svc in services:
        own = [(svc, k, c) for k, c in svc.codes.items() if k != "start"]
        idle += [(svc, k, c) for k, c in svc.codes.items() if k == "start"]
        yield f"{svc.name} session", own
    yield "call", idle


def _check_codes(services: Iterable[ServiceConfig], problems: list[Problem]) -> None:
    enabled = [s for s in services if s.enabled]
    valid = {(s.name, k) for s in enabled for k, c in s.codes.items()
             if _check_code(s, k, c, problems)}
    for _state, codes in _code_states(enabled):
        codes = [(s, k, c) for s, k, c in codes if (s.name, k) in valid]
        for i, (s1, k1, c1) in enumerate(codes):
            for s2, k2, c2 in codes[i + 1:]:
                if c1.startswith(c2) or c2.startswith(c1):
                    what = "is the same as" if c1 == c2 else "collides with"
                    problems.append(Problem(
                        s2.file, f"codes.{k2}",
                        f"code {c2!r} {what} {c1!r} ({_display(Path(s1.file))}: codes.{k1}): "
                        "one is a prefix of the other"))


def _read_plugins(plugin_dir: Path, problems: list[Problem]) -> dict[str, ServiceConfig]:
    services: dict[str, ServiceConfig] = {}
    for path in _toml_files(plugin_dir, problems):
        svc = _read_service(path, problems)
        if svc is None:
            continue
        if svc.name in services:
            problems.append(Problem(svc.file, "service.name",
                                    f"service {svc.name!r} is already defined in "
                                    f"{services[svc.name].file}"))
            continue
        services[svc.name] = svc
    _check_codes(services.values(), problems)
    return services


# --------------------------------------------------------------------------- entry points


def config_dirs_from_env(cli_dirs: list[str] | None) -> list[Path]:
    """`-c` directories win; else `MEDIASRV_CONFIG` (a PATH-like list); else the platform's
    place (mediasrv/paths.py: /etc/mediasrv/conf.d as a system service, else ./conf.d)."""
    if cli_dirs:
        return [Path(d) for d in cli_dirs]
    env = os.environ.get("MEDIASRV_CONFIG", "")
    if env:
        return [Path(d) for d in env.split(os.pathsep) if d]
    return [default_config_dir()]


def default_plugin_dir(config_dirs: list[Path]) -> Path:
    """`plugins/` beside the first config directory, else the packaged one."""
    beside = config_dirs[0].resolve().parent / "plugins"
    return beside if beside.is_dir() else DEFAULT_PLUGIN_DIR


def load_config(config_dirs: list[Path], plugin_dir: Path | None = None) -> Config:
    """Loads and checks everything; raises ConfigError with every problem found."""
    problems: list[Problem] = []
    tree = _Tree()
    files: list[str] = []
    for directory in config_dirs:
        files += _load_dir(Path(directory), tree, problems)
    for section in tree.data:
        if section not in _SECTIONS:
            close = difflib.get_close_matches(section, _SECTIONS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(Problem(tree.file_of(section), section, f"unknown section{hint}"))
    sections = {name: read(tree, problems) for name, read in _SECTIONS.items()}
    _check_references(sections["extensions"], sections["moh"], tree, problems)
    _check_reach(sections, tree, problems)
    plugin_dir = plugin_dir or default_plugin_dir(list(config_dirs))
    services = _read_plugins(Path(plugin_dir), problems)
    if problems:
        raise ConfigError(problems)
    return Config(**sections, services=services, files=tuple(files))


_SECTIONS = {
    "sip": _read_sip,
    "rtp": _read_rtp,
    "storage": _read_storage,
    "api": _read_api,
    "console": _read_console,
    "tls": _read_tls,
    "security": _read_security,
    "extensions": _read_extensions,
    "moh": _read_moh,
}
