"""Registrar (RFC 3261 §10.3) on plain messages and a fake clock; persistence through SQLite."""

from __future__ import annotations

from pathlib import Path

from mediasrv.call.registrar import MAX_EXPIRES, MIN_EXPIRES, Registrar
from mediasrv.call.store import Store
from mediasrv.sip.message import parse_message

SRC = ("127.0.0.1", 40000, "udp")


def register(contact: str, *, expires: str | None = None, call_id: str = "c1",
             cseq: int = 1) -> bytes:
    lines = ["REGISTER sip:127.0.0.1 SIP/2.0",
             "Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK" + str(cseq) + call_id,
             "From: <sip:101@127.0.0.1>;tag=a", "To: <sip:101@127.0.0.1>",
             f"Call-ID: {call_id}", f"CSeq: {cseq} REGISTER", f"Contact: {contact}"]
    if expires is not None:
        lines.append(f"Expires: {expires}")
    return ("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode()


def reg(r: Registrar, data: bytes, now: float = 1000.0):
    return r.register("101", parse_message(data), SRC, now)


def test_bind_refresh_and_expire(tmp_path: Path) -> None:
    r = Registrar(Store(tmp_path / "db"))
    resp = reg(r, register("<sip:101@127.0.0.1:40000>", expires="120"))
    assert resp.status == 200
    assert resp.headers.get_all("Contact") == ["<sip:101@127.0.0.1:40000>;expires=120"]
    assert r.is_registered("101", 1119.0) and not r.is_registered("101", 1120.0)
    r.expire(1121.0)
    assert r.bindings["101"] == {}


def test_several_contacts_and_contact_expires_param(tmp_path: Path) -> None:
    r = Registrar(Store(tmp_path / "db"))
    reg(r, register("<sip:101@127.0.0.1:40000>;expires=200, <sip:101@127.0.0.1:40002>",
                    expires="100"))
    got = {b.contact: b.expires_at for b in r.contacts("101", 1000.0)}
    assert got == {"sip:101@127.0.0.1:40000": 1200.0, "sip:101@127.0.0.1:40002": 1100.0}


def test_too_brief_is_423_and_long_is_capped(tmp_path: Path) -> None:
    r = Registrar(Store(tmp_path / "db"))
    resp = reg(r, register("<sip:101@127.0.0.1:40000>", expires=str(MIN_EXPIRES - 1)))
    assert resp.status == 423 and resp.headers.get("Min-Expires") == str(MIN_EXPIRES)
    reg(r, register("<sip:101@127.0.0.1:40000>", expires="999999", cseq=2))
    assert r.contacts("101", 1000.0)[0].expires_at == 1000.0 + MAX_EXPIRES


def test_star_unregisters_everything_only_with_expires_zero(tmp_path: Path) -> None:
    r = Registrar(Store(tmp_path / "db"))
    reg(r, register("<sip:101@127.0.0.1:40000>"))
    assert reg(r, register("*", cseq=2)).status == 400
    resp = reg(r, register("*", expires="0", cseq=3))
    assert resp.status == 200 and not r.is_registered("101", 1000.0)


def test_out_of_order_cseq_is_refused(tmp_path: Path) -> None:
    r = Registrar(Store(tmp_path / "db"))
    reg(r, register("<sip:101@127.0.0.1:40000>", cseq=5))
    assert reg(r, register("<sip:101@127.0.0.1:40000>", cseq=4)).status == 500
    assert reg(r, register("<sip:101@127.0.0.1:40000>", cseq=6)).status == 200


def test_bindings_survive_a_restart(tmp_path: Path) -> None:
    r = Registrar(Store(tmp_path / "db"))
    reg(r, register("<sip:101@127.0.0.1:40000>", expires="300"))
    r.store.close()
    again = Registrar(Store(tmp_path / "db"))
    assert again.load(now=1100.0) == 1
    b = again.contacts("101", 1100.0)[0]
    assert (b.contact, b.source_host, b.source_port, b.transport) == \
        ("sip:101@127.0.0.1:40000", "127.0.0.1", 40000, "udp")
    assert Registrar(Store(tmp_path / "db")).load(now=1400.0) == 0
