"""The built wheel and its clean venv are shared by every test of this directory."""

from tests.package.test_wheel import venv, wheel  # noqa: F401  (session fixtures)
