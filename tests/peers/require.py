"""Find the external programs the peer tests need (SIPp, baresip).

A missing program skips the test with a clear message on a developer machine, but fails it
under ``CI=true``: in CI a silently skipped end-to-end suite would look like a green one.
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest


def in_ci() -> bool:
    """True when the environment says we run in CI (``CI=true``)."""
    return os.environ.get("CI", "").lower() == "true"


def missing(message: str) -> NoReturn:
    """Something a test needs is not on this machine: skip the test, or fail it under CI=true."""
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def require_binary(name: str) -> str:
    """Return the path of program ``name``; skip the test (fail it under CI=true) if missing."""
    path = shutil.which(name)
    if path is None:
        missing(f"{name!r} is not installed (run scripts/setup.sh: Debian sip-tester/baresip)")
    return path
