"""require_binary: found, skipped when missing, failed when missing under CI=true."""

import pytest

from tests.peers.require import require_binary

MISSING = "no-such-program-h5-peers"


def test_found_binary_returns_its_path():
    assert require_binary("sh").endswith("/sh")


def test_missing_binary_skips_outside_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=MISSING):
        require_binary(MISSING)


def test_missing_binary_fails_under_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=MISSING):
        require_binary(MISSING)
