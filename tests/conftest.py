"""Session-wide checks: the compiled media core must be importable (never a silent fallback)."""

from __future__ import annotations

import os

import pytest


def pytest_sessionstart(session: pytest.Session) -> None:
    try:
        import mediasrv._media  # noqa: F401
    except ImportError as exc:
        msg = f"the compiled extension mediasrv._media is missing ({exc}); run `make setup`"
        if os.environ.get("CI") == "true":
            raise pytest.UsageError(msg) from exc
        session.config.issue_config_time_warning(pytest.PytestConfigWarning(msg), stacklevel=2)
