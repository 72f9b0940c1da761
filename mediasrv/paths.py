"""Where mediasrv finds its files: the packaged data, and the default places on this machine.

How this works: everything the server needs at run time ships inside the package as package
data under `mediasrv/data/` (the shipped configuration `conf.d/`, the service plugin files
`plugins/`, the prompts and hold music `sounds/`), found with `importlib.resources`, so an
installed wheel runs without its source checkout. An operator's own configuration is looked
for in a platform place (`default_config_dirs`): under systemd (which sets
`$CONFIGURATION_DIRECTORY` from the unit's `ConfigurationDirectory=`) in that directory, else in
the current directory.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

DATA_DIR = Path(str(resources.files("mediasrv").joinpath("data")))
SHIPPED_CONFIG_DIR = DATA_DIR / "conf.d"
SHIPPED_PLUGIN_DIR = DATA_DIR / "plugins"
SOUNDS_DIR = DATA_DIR / "sounds"
