"""Session-wide checks: the compiled media core must be importable (never a silent fallback);
the Hypothesis profile of every property test."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

# Property tests judge what they generate, not how fast: under `make test` they share two
# cores with the other xdist workers, so no per-example deadline and no "too slow" check.
settings.register_profile("mediasrv", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("mediasrv")


def pytest_sessionstart(session: pytest.Session) -> None:
    try:
        import mediasrv._media  # noqa: F401
    except ImportError as exc:
        msg = f"the compiled extension mediasrv._media is missing ({exc}); run `make setup`"
        if os.environ.get("CI") == "true":
            raise pytest.UsageError(msg) from exc
        session.config.issue_config_time_warning(pytest.PytestConfigWarning(msg), stacklevel=2)
