"""`mediasrv init DIR`: a commented starter configuration an operator edits.

How this works: `init_site` runs `STEPS` in order, one small function per file (or group of
files) it writes, each taking the `Starter` (the secrets and choices made once: a fresh random
API token, a random password per extension, the state directory) and returning the paths it
wrote. The result is a self-contained site directory:

    DIR/conf.d/00-server.toml      listeners (loopback until the operator opens them), RTP, API,
                                   [tls] (the pair below) and the [security] limits
    DIR/tls/cert.pem, key.pem      a self-signed pair for SIP over TLS (`mediasrv.tlscert`)
    DIR/conf.d/10-extensions.toml  extensions 100-102, each with its own random password
    DIR/conf.d/20-moh.toml         the default hold-music class, reading DIR/sounds/moh/
    DIR/plugins/*.toml             the shipped service plugin files
    DIR/sounds/moh/default.wav     the shipped hold music (replace it freely)

`mediasrv run -c DIR/conf.d` then reads it (`plugins/` beside `conf.d/` is the default plugin
directory). No demo password is written, so the site may listen beyond loopback once edited.
Nothing is overwritten: an existing `DIR/conf.d` with files in it is refused.
"""

from __future__ import annotations

import secrets
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mediasrv.paths import SHIPPED_PLUGIN_DIR, SOUNDS_DIR
from mediasrv.tlscert import CertError, make_self_signed

EXTENSIONS = ("100", "101", "102")


class InitError(Exception):
    """The site cannot be written: the message says why."""


@dataclass(frozen=True)
class Starter:
    """What the starter files share: made once per `init`."""

    api_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    passwords: dict[str, str] = field(
        default_factory=lambda: {n: secrets.token_urlsafe(12) for n in EXTENSIONS})
    state_dir: Path | None = None  # None: DIR/var, written relative to conf.d

    def storage_path(self) -> str:
        if self.state_dir is None:
            return "../var/mediasrv.sqlite3"
        return str(self.state_dir.resolve() / "mediasrv.sqlite3")


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def write_server(site: Path, s: Starter) -> list[Path]:
    return [_write(site / "conf.d" / "00-server.toml", f'''\
# mediasrv server settings (written by `mediasrv init`; every key is in the README).
# Relative paths are relative to this file's directory. Check with:
#   mediasrv check-config -c {site / "conf.d"}

[sip]
# transport:host:port, IPv6 as "udp:[::1]:5060". To serve phones on the network, put this
# machine's address (or 0.0.0.0) here; mediasrv refuses a demo password on such a listener.
listen = ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060", "tls:127.0.0.1:5061"]
realm = "mediasrv"
trusted = []                    # CIDRs whose requests need no digest auth (trunks, a front proxy)
digest_algorithms = ["MD5"]     # or ["SHA-256", "MD5"] (RFC 8760); many phones give up on SHA-256
digest_uri_check = false        # true: a digest uri other than the Request-URI gets 400

[rtp]
address = "127.0.0.1"           # the address put in SDP and bound for RTP: this machine's address
ports = [20000, 29999]          # inclusive range; even ports carry RTP, odd ones RTCP
codecs = ["G722", "PCMU", "PCMA"]   # order; add "opus" for softphones (README: HD voice)
ptime = 20
timeout = 30                    # seconds without RTP on an answered call before hang-up (0 = never)

[storage]
path = "{s.storage_path()}"   # registrations, voicemail index, call records

[api]
listen = "127.0.0.1:8088"       # HTTP state/control API and /metrics; "" turns it off
token = "{s.api_token}"   # fresh and random: send it as "Authorization: Bearer ..."

[tls]                           # SIP over TLS (the tls: listener); TLS 1.2+ only
cert = "../tls/cert.pem"        # self-signed by `mediasrv init`: replace with your CA's pair
key = "../tls/key.pem"
ca = ""                         # CA file for phones' certificates and outbound TLS peers
verify_client = false           # true: phones must show a certificate signed by `ca`
min_version = "1.2"             # or "1.3"
# More pairs chosen by the name a client asks for (SNI); names default to the
# certificate's subjectAltName; clients sending no name or another one get cert/key above:
# [[tls.certificates]]
# names = ["sip.example.com", "*.pbx.example.com"]
# cert = "../tls/example.pem"
# key = "../tls/example.key"

[security]                      # limits at the SIP edge, per source address (0 = off)
rate_limit = 200                # requests a second
ban_threshold = 50              # invalid (or over-limit) requests within ban_window that ban
ban_window = 10                 # seconds
ban_time = 600                  # seconds a ban lasts (GET /v1/bans; DELETE lifts one)
max_message_size = 16384        # bytes
max_connections_per_source = 32 # TCP/TLS connections
header_timeout = 10             # seconds to complete a started message (and a TLS handshake)
idle_timeout = 900              # seconds a TCP/TLS connection may stay silent
''')]


def write_extensions(site: Path, s: Starter) -> list[Path]:
    blocks = [f'[extensions.{n}]\npassword = "{pw}"\nname = "Extension {n}"\n'
              for n, pw in s.passwords.items()]
    return [_write(site / "conf.d" / "10-extensions.toml", '''\
# Extensions: a phone registers as NUMBER with its password (digest auth).
# The passwords below are fresh and random; give each phone its own.
# Each extension may also set: ha1 (instead of password), language (en, it), ring_timeout,
# dtmf (rfc4733 | inband | auto), direct_media, moh_class, services, voicemail_max_seconds,
# srtp (off | optional | required | dtls: SDES or DTLS-SRTP; optional, the default,
# encrypts when the phone offers keys),
# and [extensions.NNN.failover] busy / no_answer / not_registered actions, for example:
#   [extensions.100.failover]
#   not_registered = { action = "announce", prompt = "unavailable" }

''' + "\n".join(blocks))]


def write_moh(site: Path, s: Starter) -> list[Path]:
    music = site / "sounds" / "moh" / "default.wav"
    music.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SOUNDS_DIR / "moh" / "default.wav", music)
    return [_write(site / "conf.d" / "20-moh.toml", '''\
# Music on hold classes: files are loaded once, resampled to 8 kHz and looped.
# Drop your own WAV/FLAC files into ../sounds/moh/ (or add classes and set moh_class).
[moh.default]
files = ["../sounds/moh/*.wav"]
'''), music]


def write_plugins(site: Path, s: Starter) -> list[Path]:
    written = []
    for plugin in sorted(SHIPPED_PLUGIN_DIR.glob("*.toml")):
        target = site / "plugins" / plugin.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(plugin, target)
        written.append(target)
    return written


def write_tls(site: Path, s: Starter) -> list[Path]:
    cert, key = site / "tls" / "cert.pem", site / "tls" / "key.pem"
    try:
        make_self_signed(cert, key, ["localhost", "127.0.0.1", socket.gethostname()])
    except CertError as exc:
        raise InitError(f"cannot make the TLS certificate: {exc}") from exc
    return [cert, key]


Step = Callable[[Path, Starter], list[Path]]
STEPS: list[Step] = [write_server, write_extensions, write_moh, write_plugins, write_tls]


def init_site(site: Path, starter: Starter | None = None) -> list[Path]:
    """Writes the starter site into `site`; returns the files written."""
    conf = site / "conf.d"
    if conf.is_dir() and any(conf.iterdir()):
        raise InitError(f"{conf} already holds files: not overwriting them")
    starter = starter or Starter()
    try:
        return [p for step in STEPS for p in step(site, starter)]
    except OSError as exc:
        raise InitError(f"{exc.filename or site}: {exc.strerror or exc}") from exc
