"""Shared fixtures for the SIP core tests: sample messages from tests/sip/data
(`tests.sip.samples` reads them)."""

from __future__ import annotations

import pytest

from tests.sip.samples import load_sample


@pytest.fixture
def invite_bytes() -> bytes:
    """A typical INVITE with an SDP offer."""
    return load_sample("invite_sdp.sip")
