"""G.711 μ-law / A-law: bit-exact over every input, for the kernel and the Python reference.

Oracles: golden vectors under tests/data (always), and CPython's audioop when it still exists.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pytest
from reference import G711Reference, load_media

_media = load_media()
DATA = Path(__file__).parent.parent / "data"
ALL_PCM = np.arange(-32768, 32768, dtype=np.int16)
ALL_CODES = bytes(range(256))
HAVE_AUDIOOP = importlib.util.find_spec("audioop") is not None


@pytest.fixture(params=["kernel", "reference"])
def codec(request: pytest.FixtureRequest):
    return _media if request.param == "kernel" else G711Reference


def _golden_codes(name: str) -> bytes:
    return (DATA / f"g711_{name}.bin").read_bytes()


def _golden_pcm(name: str) -> np.ndarray:
    return np.frombuffer((DATA / f"g711_{name}.bin").read_bytes(), dtype="<i2")


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_encode_matches_golden_for_every_int16(codec, law: str) -> None:
    out = getattr(codec, f"{law}_encode")(ALL_PCM)
    assert out == _golden_codes(f"{law}_encode")


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_decode_matches_golden_for_every_code(codec, law: str) -> None:
    out = getattr(codec, f"{law}_decode")(ALL_CODES)
    assert out.dtype == np.int16
    np.testing.assert_array_equal(out, _golden_pcm(f"{law}_decode"))


@pytest.mark.parametrize(("src", "dst"), [("ulaw", "alaw"), ("alaw", "ulaw")])
def test_transcode_is_decode_then_encode(codec, src: str, dst: str) -> None:
    via_linear = getattr(codec, f"{dst}_encode")(getattr(codec, f"{src}_decode")(ALL_CODES))
    assert getattr(codec, f"{src}_to_{dst}")(ALL_CODES) == via_linear


@pytest.mark.skipif(not HAVE_AUDIOOP, reason="audioop removed (Python >= 3.13)")
@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_kernel_matches_audioop(law: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop
    lin2 = getattr(audioop, f"lin2{law}")
    to_lin = getattr(audioop, f"{law}2lin")
    assert getattr(_media, f"{law}_encode")(ALL_PCM) == lin2(ALL_PCM.tobytes(), 2)
    assert getattr(_media, f"{law}_decode")(ALL_CODES).tobytes() == to_lin(ALL_CODES, 2)


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_roundtrip_is_idempotent_on_codes(codec, law: str) -> None:
    # Decoding gives an interval's centre, which must encode back to the same code,
    # except μ-law 0x7F (negative zero), which encodes to 0xFF (positive zero).
    decoded = getattr(codec, f"{law}_decode")(ALL_CODES)
    again = getattr(codec, f"{law}_encode")(decoded)
    expected = bytearray(ALL_CODES)
    if law == "ulaw":
        expected[0x7F] = 0xFF
    assert again == bytes(expected)


def test_known_values() -> None:
    # Silence codes and the extremes named by the standard.
    assert _media.ulaw_encode(np.array([0, 32767, -32768], np.int16)) == b"\xff\x80\x00"
    assert _media.alaw_encode(np.array([0, 32767, -32768], np.int16)) == b"\xd5\xaa\x2a"
    assert _media.ulaw_decode(b"\xff\x80\x00").tolist() == [0, 32124, -32124]
    assert _media.alaw_decode(b"\xd5\xaa\x2a").tolist() == [8, 32256, -32256]


def test_accepts_uint8_array_and_empty_input() -> None:
    codes = np.frombuffer(b"\x00\x7f\x80\xff", dtype=np.uint8)
    np.testing.assert_array_equal(_media.ulaw_decode(codes), _media.ulaw_decode(codes.tobytes()))
    assert _media.ulaw_encode(np.zeros(0, np.int16)) == b""
    assert len(_media.alaw_decode(b"")) == 0
    assert _media.ulaw_to_alaw(b"") == b""


def test_rejects_wrong_dtype() -> None:
    with pytest.raises(ValueError):
        _media.ulaw_encode(np.zeros(4, np.float32))
