"""Sample SIP messages from tests/sip/data, as sent on the wire.

Samples are stored with LF line endings for readability; `load_sample` turns every LF into
CRLF and replaces the `@@` placeholder of Content-Length by the real body length. (A module of
its own, not conftest.py: `from conftest import` finds whichever conftest was loaded last.)
"""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).parent / "data"


def load_sample(relpath: str) -> bytes:
    """The bytes of sample `relpath` (e.g. "valid/wsinv.sip") as sent on the wire."""
    raw = (DATA / relpath).read_bytes().replace(b"\n", b"\r\n")
    head, sep, body = raw.partition(b"\r\n\r\n")
    return head.replace(b"@@", str(len(body)).encode()) + sep + body


def sample_names(kind: str) -> list[str]:
    """Names of the samples in data/<kind>/ (kind is "valid" or "invalid")."""
    return sorted(p.name for p in (DATA / kind).glob("*.sip"))
