"""Logging: one stderr handler; call lines carry the call id.

How this works: `setup_logging()` installs a formatter that prints `call=<id>` when a record
carries one. Code that works for a call logs through `call_logger(logger, call_id)`, a
LoggerAdapter that adds the id, so every line of a call can be found with one grep.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any


class _CallFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        call = getattr(record, "call_id", None)
        record.call = f" call={call}" if call else ""
        return super().format(record)


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_CallFormatter(
        "%(asctime)s %(levelname)-7s %(name)s%(call)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


class CallLogger(logging.LoggerAdapter):
    """Adds `call_id` to every record it logs."""

    def process(self, msg: str, kwargs: MutableMapping[str, Any]) -> tuple[str, Any]:
        extra = kwargs.get("extra")
        if not extra and self.extra:  # the usual line: our dict as it is (records copy it)
            kwargs["extra"] = self.extra
            return msg, kwargs
        extra = dict(extra or {})
        extra["call_id"] = self.extra["call_id"] if self.extra else None
        kwargs["extra"] = extra
        return msg, kwargs


def call_logger(logger: logging.Logger, call_id: str) -> CallLogger:
    return CallLogger(logger, {"call_id": call_id})
