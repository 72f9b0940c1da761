"""Session-wide checks: the compiled media core must be importable (never a silent fallback),
no compiled signalling module may be older than its source; the Hypothesis profile of every
property test."""

from __future__ import annotations

import importlib.machinery
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from mediasrv.compiled import MODULES as COMPILED

ROOT = Path(__file__).resolve().parents[1]

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
    stale = [str(built.relative_to(ROOT)) for built in _compiled_builds()
             if built.stat().st_mtime < built.with_name(built.name.split(".")[0] + ".py")
             .stat().st_mtime]
    if stale:  # Python would import them, not the edited .py: the tests would test old code
        raise pytest.UsageError(f"stale compiled module (older than its .py): {', '.join(stale)}; "
                                "run `make setup` (or `python setup.py build_ext --inplace`)")


def _compiled_builds() -> list[Path]:
    """The checkout's in-place builds of mediasrv/compiled.py's modules (tests/test_compiled.py
    checks that they exist)."""
    found = []
    for name in COMPILED:
        path = ROOT / name.replace(".", "/")
        found += [path.parent / (path.name + suffix)
                  for suffix in importlib.machinery.EXTENSION_SUFFIXES
                  if (path.parent / (path.name + suffix)).is_file()]
    return found
