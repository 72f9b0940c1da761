"""Service classes by name: the built-ins, and plugins that register themselves.

How this works: `register_service(name, cls)` records a class under the `[service] name` of
its plugin file. `service_class(name, module)` finds it: when the plugin file gives
`[service] module`, that module is imported first: it registers its class (and, for a plugin
outside the package, its plugin-file schema with `register_service_schema`). The built-in
services are imported lazily, so importing this module pulls in no service code. An unknown
name raises `ConfigError` naming the plugin file, the key and the names that are known.
"""

from __future__ import annotations

import difflib
import importlib

from mediasrv.config import ConfigError, Problem
from mediasrv.services.base import Service

_REGISTRY: dict[str, type[Service]] = {}

BUILTIN_MODULES = {
    "attended_transfer": "mediasrv.services.attended_transfer",
    "blind_transfer": "mediasrv.services.blind_transfer",
}


def register_service(name: str, cls: type[Service]) -> None:
    """Makes `cls` the class of the service called `name` in plugin files."""
    if not (isinstance(cls, type) and issubclass(cls, Service)):
        raise TypeError(f"service {name!r}: {cls!r} is not a Service subclass")
    _REGISTRY[name] = cls


def service_class(name: str, module: str = "", file: str = "<plugin>") -> type[Service]:
    """The class for a plugin file's `[service] name` (and optional `module`)."""
    if module:
        return _from_module(name, module, file)
    if name not in _REGISTRY and name in BUILTIN_MODULES:
        importlib.import_module(BUILTIN_MODULES[name])
    if name in _REGISTRY:
        return _REGISTRY[name]
    known = sorted(set(_REGISTRY) | set(BUILTIN_MODULES))
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConfigError([Problem(file, "service.name",
                               f"unknown service {name!r}{hint}; known: {', '.join(known)}")])


def _from_module(name: str, module: str, file: str) -> type[Service]:
    try:
        importlib.import_module(module)
    except Exception as exc:  # any failure of a plugin module is the plugin file's problem
        raise ConfigError([Problem(file, "service.module",
                                   f"cannot import {module!r}: {exc}")]) from exc
    if name not in _REGISTRY:
        raise ConfigError([Problem(file, "service.module",
                                   f"{module!r} registers no service named {name!r}")])
    return _REGISTRY[name]
