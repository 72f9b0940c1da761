"""Dialogs of RFC 3261 §12: creation on both sides, in-dialog requests, CSeq, routing."""

from __future__ import annotations

import pytest
from sipfactory import request

from mediasrv.sip.dialog import (
    CONFIRMED,
    DIALOG_TABLE,
    EARLY,
    TERMINATED,
    Dialog,
    DialogSet,
)
from mediasrv.sip.message import make_response

RR = (("Record-Route", "<sip:p1.example.com;lr>"), ("Record-Route", "<sip:p2.example.com;lr>"))


def invite_and_answer(status: int = 200, *, record_route=RR, contact="<sip:bob@10.0.0.2:5070>"):
    inv = request(extra=record_route)
    headers = [("Contact", contact)]  # make_response copies Record-Route (§12.1.1)
    return inv, make_response(inv, status, to_tag="bt", headers=headers)


def test_uac_dialog_follows_12_1_2():
    inv, ok = invite_and_answer()
    d = Dialog.from_uac(inv, ok)
    assert d.state is CONFIRMED and d.is_uac
    assert d.id == (inv.call_id, "ft1", "bt")
    assert d.route_set == ["<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>"]  # reversed
    assert d.remote_target == "sip:bob@10.0.0.2:5070"
    assert d.local_seq == 1 and d.remote_seq is None
    assert d.local_uri == "<sip:alice@example.com>" and d.remote_uri == "<sip:bob@example.com>"


def test_uas_dialog_follows_12_1_1():
    inv, ringing = invite_and_answer(180)
    d = Dialog.from_uas(inv, ringing)
    assert d.state is EARLY and not d.is_uac
    assert d.id == (inv.call_id, "bt", "ft1")
    assert d.route_set == ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]  # as received
    assert d.remote_target == "sip:alice@10.0.0.1:5060"
    assert d.remote_seq == 1 and d.local_seq == 0


def test_dialog_needs_a_to_tag():
    inv = request()
    with pytest.raises(ValueError):
        Dialog.from_uac(inv, make_response(inv, 180))


def test_state_table_early_confirmed_terminated():
    inv, ringing = invite_and_answer(180)
    d = Dialog.from_uac(inv, ringing)
    assert d.handle("1xx") is EARLY and d.handle("2xx") is CONFIRMED
    assert d.handle("300-699") is CONFIRMED  # a failed re-INVITE does not end the dialog
    assert d.handle("BYE") is TERMINATED and d.terminated
    assert d.handle("2xx") is TERMINATED
    assert all(state is not TERMINATED for state, _ in DIALOG_TABLE)


def test_early_dialog_ends_on_non2xx_final():
    inv, ringing = invite_and_answer(180)
    d = Dialog.from_uac(inv, ringing)
    d.update_from_response(inv, make_response(inv, 486, to_tag="bt"))
    assert d.state is TERMINATED


def test_in_dialog_requests_loose_routing_cseq_and_ack():
    inv, ok = invite_and_answer()
    d = Dialog.from_uac(inv, ok)
    ack = d.create_request("ACK")
    bye = d.create_request("BYE")
    info = d.create_request("INFO", body=b"x", headers=(("Content-Type", "text/plain"),))
    assert ack.cseq == (1, "ACK") and bye.cseq == (2, "BYE") and info.cseq == (3, "INFO")
    assert bye.uri == "sip:bob@10.0.0.2:5070"
    assert bye.headers.get_all("Route") == d.route_set
    assert bye.from_tag == "ft1" and bye.to_tag == "bt" and bye.call_id == inv.call_id
    assert info.body == b"x" and info.headers.get("Content-Type") == "text/plain"
    assert d.next_hop() == ("p2.example.com", 5060, "udp")


def test_strict_router_becomes_the_request_uri():
    inv, ok = invite_and_answer(record_route=(("Record-Route", "<sip:strict.example.com>"),))
    d = Dialog.from_uac(inv, ok)
    bye = d.create_request("BYE")
    assert bye.uri == "sip:strict.example.com"
    assert bye.headers.get_all("Route") == ["<sip:bob@10.0.0.2:5070>"]


def test_no_route_set_goes_to_the_remote_target():
    inv, ok = invite_and_answer(record_route=())
    d = Dialog.from_uac(inv, ok)
    assert d.create_request("BYE").headers.get_all("Route") == []
    assert d.next_hop() == ("10.0.0.2", 5070, "udp")


def test_reinvite_updates_ack_cseq_and_target_refresh_on_2xx():
    inv, ok = invite_and_answer()
    d = Dialog.from_uac(inv, ok)
    d.local_contact = "<sip:alice@10.0.0.1:5060>"
    reinvite = d.create_request("INVITE")
    assert reinvite.cseq == (2, "INVITE") and reinvite.headers.get("Contact")
    assert d.create_request("ACK").cseq == (2, "ACK")
    answer = make_response(reinvite, 200, headers=[("Contact", "<sip:bob@192.0.2.5>")])
    d.update_from_response(reinvite, answer)
    assert d.remote_target == "sip:bob@192.0.2.5" and d.state is CONFIRMED


def test_481_or_408_to_an_in_dialog_request_ends_the_dialog():
    for status in (481, 408):
        inv, ok = invite_and_answer()
        d = Dialog.from_uac(inv, ok)
        info = d.create_request("INFO")
        d.update_from_response(info, make_response(info, status))
        assert d.terminated


def test_remote_cseq_check_12_2_2():
    inv, ok = invite_and_answer()
    d = Dialog.from_uas(inv, ok)
    assert d.check_request(request("INFO", cseq=5, to_tag="bt")) is None
    assert d.remote_seq == 5
    assert d.check_request(request("INFO", cseq=4, to_tag="bt")) == 500
    assert d.check_request(request("ACK", cseq=1, to_tag="bt")) is None  # ACK keeps its INVITE's
    reinvite = request("INVITE", cseq=6, to_tag="bt")
    reinvite.headers.set("Contact", "<sip:alice@192.0.2.1:5099>")
    assert d.check_request(reinvite) is None
    assert d.remote_target == "sip:alice@192.0.2.1:5099" and d.invite_seq == 6


def test_dialog_set_lookup_for_both_directions():
    inv, ok = invite_and_answer()
    uac = Dialog.from_uac(inv, ok)
    uas = Dialog.from_uas(inv, ok)
    dialogs = DialogSet()
    assert dialogs.add(uac) is uac and dialogs.add(uas) is uas
    assert dialogs.add(Dialog.from_uac(inv, ok)) is uac  # same ID: the first one stays
    assert len(dialogs) == 2
    assert dialogs.for_response(ok) is uac
    assert dialogs.for_request(request("BYE", to_tag="bt")) is uas
    assert dialogs.for_sent_request(uac.create_request("BYE")) is uac
    assert dialogs.for_request(request("BYE", to_tag="other")) is None
    dialogs.remove(uac)
    dialogs.remove(uac)
    assert list(dialogs) == [uas]


def test_forked_early_dialogs_are_found_together():
    inv = request()
    dialogs = DialogSet()
    for tag in ("f1", "f2"):
        dialogs.add(Dialog.from_uac(inv, make_response(inv, 180, to_tag=tag)))
    assert {d.remote_tag for d in dialogs.early_of(inv.call_id, "ft1")} == {"f1", "f2"}
