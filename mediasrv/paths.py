"""Where mediasrv finds its files: the packaged data, and the default places on this machine.

How this works: everything the server needs at run time ships inside the package as package
data under `mediasrv/data/` (the shipped configuration `conf.d/`, the service plugin files
`plugins/`, the prompts and hold music `sounds/`), found with `importlib.resources`, so an
installed wheel runs without its source checkout. An operator's own configuration is looked
for in a platform place (`default_config_dir`): as a system service (systemd sets
`$CONFIGURATION_DIRECTORY` and `$STATE_DIRECTORY` from the unit's `ConfigurationDirectory=` and
`StateDirectory=`, see packaging/mediasrv.service) `/etc/mediasrv/conf.d`, else `./conf.d`.
The database, when `storage.path` is not set, goes to `/var/lib/mediasrv` ($STATE_DIRECTORY)
as a system service, else to `./var`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

DATA_DIR = Path(str(resources.files("mediasrv").joinpath("data")))
SHIPPED_CONFIG_DIR = DATA_DIR / "conf.d"
SHIPPED_PLUGIN_DIR = DATA_DIR / "plugins"
SOUNDS_DIR = DATA_DIR / "sounds"

SYSTEM_CONFIG_DIR = Path("/etc/mediasrv")
SYSTEM_STATE_DIR = Path("/var/lib/mediasrv")


def _first(env_value: str) -> Path:
    """systemd passes `ConfigurationDirectory=`/`StateDirectory=` as a ':'-separated list."""
    return Path(env_value.split(":")[0])


def as_system_service(env: Mapping[str, str] = os.environ) -> bool:
    """True when systemd started us with the unit's ConfigurationDirectory=/StateDirectory=.

    ($INVOCATION_ID alone is no sign: a desktop terminal's shell inherits it.)"""
    return bool(env.get("CONFIGURATION_DIRECTORY") or env.get("STATE_DIRECTORY"))


def default_config_dir(env: Mapping[str, str] = os.environ) -> Path:
    """`conf.d` of the site: /etc/mediasrv (or the unit's ConfigurationDirectory) under
    systemd, else the current directory."""
    if not as_system_service(env):
        return Path("conf.d")
    site = env.get("CONFIGURATION_DIRECTORY")
    return (_first(site) if site else SYSTEM_CONFIG_DIR) / "conf.d"


def default_state_dir(env: Mapping[str, str] = os.environ) -> Path:
    """Where the database goes when `storage.path` is not set: /var/lib/mediasrv (or the
    unit's StateDirectory) under systemd, else `var/` in the current directory."""
    if not as_system_service(env):
        return Path("var").resolve()
    state = env.get("STATE_DIRECTORY")
    return _first(state) if state else SYSTEM_STATE_DIR
