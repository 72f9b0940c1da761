"""The `mediasrv` command: a thin argparse layer over config and server.

How this works: each sub-command is one small function. `run` loads the configuration
(refusing to start on any problem), then hands it to `Server`; every start-up failure (no
configuration found, a configuration problem, a port it cannot bind, anything else before the
server is ready) is one line `mediasrv: not starting: CAUSE` and exit code 1. `check-config`
loads exactly what `run` would and prints every problem (exit 1) or a one-screen summary
(exit 0). `init` writes a starter site (mediasrv/init.py).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from mediasrv import __version__, subscribers
from mediasrv.api.commands import CommandError
from mediasrv.api.commands import add_parsers as add_ops_parsers
from mediasrv.api.commands import calls as ops_calls
from mediasrv.api.commands import show as ops_show
from mediasrv.api.commands import voicemail as ops_voicemail
from mediasrv.config import (
    Config,
    ConfigError,
    config_dirs_from_env,
    default_plugin_dir,
    load_config,
)
from mediasrv.init import InitError, Starter, init_site


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mediasrv", description="SIP media server and small PBX")
    p.add_argument("--version", action="version", version=f"mediasrv {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    for name, help_text in (("run", "run the server in the foreground"),
                            ("check-config", "check the configuration and print a summary")):
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("-c", "--config", action="append", metavar="DIR",
                         help="configuration directory (repeatable; later ones override)")
        cmd.add_argument("--plugins", metavar="DIR", help="plugin directory")
        if name == "run":
            cmd.add_argument("--log-level", default="INFO",
                             choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    init = sub.add_parser("init", help="write a commented starter configuration into DIR")
    init.add_argument("dir", metavar="DIR", help="site directory (conf.d/, plugins/, sounds/)")
    init.add_argument("--state-dir", metavar="DIR",
                      help="where the database goes (default: DIR/var), e.g. /var/lib/mediasrv")
    add_ops_parsers(sub, _config_options)
    subscribers.add_parser(sub, _config_options)
    return p


def _config_options(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("-c", "--config", action="append", metavar="DIR",
                     help="configuration directory (repeatable; later ones override)")
    cmd.add_argument("--plugins", metavar="DIR", help="plugin directory")


class NoConfigError(Exception):
    """No -c, no MEDIASRV_CONFIG, and nothing at the platform's default place."""


def _load(args: argparse.Namespace) -> Config:
    dirs = config_dirs_from_env(args.config)
    if not args.config and not os.environ.get("MEDIASRV_CONFIG") and not dirs[0].is_dir():
        raise NoConfigError(f"no configuration found: looked for {dirs[0].absolute()} "
                            "(no -c DIR, no MEDIASRV_CONFIG); write one with "
                            "`mediasrv init DIR`, then `mediasrv run -c DIR/conf.d`")
    plugins = Path(args.plugins) if args.plugins else default_plugin_dir(dirs)
    return load_config(dirs, plugins)


def _check_config(args: argparse.Namespace) -> int:
    try:
        cfg = _load(args)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    except NoConfigError as exc:
        print(f"mediasrv check-config: {exc}", file=sys.stderr)
        return 1
    print(summary(cfg))
    return 0


def summary(cfg: Config) -> str:
    """The one-screen view of what `run` would serve."""
    lines = ["configuration OK", f"files: {', '.join(cfg.files)}",
             f"SIP listeners: {', '.join(str(lst) for lst in cfg.sip.listen)}"
             f" (realm {cfg.sip.realm})",
             f"RTP: {cfg.rtp.address} ports {cfg.rtp.port_min}-{cfg.rtp.port_max}"
             f" codecs {'/'.join(cfg.rtp.codecs)} ptime {cfg.rtp.ptime}",
             f"extensions ({len(cfg.extensions)}): {', '.join(sorted(cfg.extensions))}",
             _edge_line(cfg)]
    if cfg.tls.cert:
        sni = "".join(f"; {', '.join(c.names)}: {c.cert}" for c in cfg.tls.certificates)
        lines.insert(3, f"TLS: {cfg.tls.cert}{sni} (TLS {cfg.tls.min_version}+, client "
                        f"certificates {'required' if cfg.tls.verify_client else 'not asked for'})")
    for svc in cfg.services.values():
        codes = " ".join(f"{k}={v}" for k, v in svc.codes.items())
        lines.append(f"service {svc.name}: {'enabled' if svc.enabled else 'disabled'}  {codes}")
    for moh in cfg.moh.values():
        lines.append(f"MoH class {moh.name}: {len(moh.files())} file(s)")
    for ext in cfg.extensions.values():
        if ext.direct_media and any(ext.may_use(s.name) for s in cfg.enabled_services()):
            lines.append(f"warning: extension {ext.number} has direct_media on: "
                         "its in-call DTMF services will not work")
    return "\n".join(lines)


def _edge_line(cfg: Config) -> str:
    sec = cfg.security
    ban = (f"ban after {sec.ban_threshold} invalid in {sec.ban_window:g} s for {sec.ban_time:g} s"
           if sec.ban_threshold else "no bans")
    rate = f"{sec.rate_limit} requests/s" if sec.rate_limit else "no rate limit"
    return (f"SIP edge: {rate} and {ban} per source; {sec.max_connections_per_source} "
            f"connections per source, header timeout {sec.header_timeout:g} s")


def _run(args: argparse.Namespace) -> int:
    from mediasrv.logs import setup_logging

    try:  # the compiled media core comes in with the server
        from mediasrv.server import Server, StartupError
    except ImportError as exc:
        print(f"mediasrv: not starting: cannot load {exc.name or 'a module'}: {exc}",
              file=sys.stderr)
        return 1
    setup_logging(args.log_level)
    try:
        cfg = _load(args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"mediasrv: not starting: {problem}", file=sys.stderr)
        return 1
    except NoConfigError as exc:
        print(f"mediasrv: not starting: {exc}", file=sys.stderr)
        return 1
    server = Server(cfg, reload=lambda: _load(args))
    try:
        return server.run()
    except StartupError as exc:
        print(f"mediasrv: not starting: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # start-up failed somewhere unforeseen: one line, not a traceback
        if server.ready:
            raise
        logging.getLogger("mediasrv").debug("start-up failed", exc_info=True)
        print(f"mediasrv: not starting: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def _init(args: argparse.Namespace) -> int:
    site = Path(args.dir)
    state = Path(args.state_dir) if args.state_dir else None
    try:
        written = init_site(site, Starter(state_dir=state))
    except InitError as exc:
        print(f"mediasrv init: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    print(f"edit {site / 'conf.d'} (random passwords and API token are in it), then:\n"
          f"  mediasrv run -c {site / 'conf.d'}")
    return 0


def _ops_command(args: argparse.Namespace) -> int:
    """`show`, `calls` and `voicemail` (mediasrv/api/commands.py): same configuration as `run`."""
    try:
        cfg = _load(args)
        command = {"show": ops_show, "calls": ops_calls, "voicemail": ops_voicemail}
        print(command[args.command](cfg, args))
    except (ConfigError, CommandError, NoConfigError) as exc:
        print(f"mediasrv {args.command}: {exc}", file=sys.stderr)
        return 1
    return 0


def _export_subscribers(args: argparse.Namespace) -> int:
    """Kamailio's subscriber table from the extensions (mediasrv/subscribers.py)."""
    try:
        print(subscribers.export(_load(args), args))
    except (ConfigError, NoConfigError, subscribers.ExportError) as exc:
        print(f"mediasrv export-subscribers: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return {"run": _run, "check-config": _check_config, "init": _init, "show": _ops_command,
            "calls": _ops_command, "voicemail": _ops_command,
            "export-subscribers": _export_subscribers}[args.command](args)
