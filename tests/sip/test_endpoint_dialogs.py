"""Dialog bookkeeping inside SipEndpoint: re-INVITE, forking, BYE failures, stray ACKs."""

from __future__ import annotations

from endpoints import A_ADDR, B_ADDR, Pair, new_request
from test_endpoint import UDP_B, answer, call_up, statuses

from mediasrv.sip.dialog import CONFIRMED, EARLY
from mediasrv.sip.endpoint import SipEndpoint
from mediasrv.sip.events import (
    AckReceived,
    DialogTerminated,
    RequestReceived,
    ResponseReceived,
    TransactionTimedOut,
)
from mediasrv.sip.message import make_response, parse_message


def test_reinvite_refreshes_the_target_on_both_sides_and_is_acked():
    pair = Pair()
    a_dialog, b_dialog = call_up(pair)
    b_dialog.local_contact = "<sip:bob@10.0.0.2:5060>"
    reinvite = b_dialog.create_request("INVITE")
    reinvite.headers.set("Contact", "<sip:bob@10.0.0.2:6000>")
    pair.b.send_request(reinvite, (*A_ADDR, "udp"), pair.now)
    pair.pump()
    (event,) = pair.take("a", RequestReceived)
    assert event.dialog is a_dialog and a_dialog.remote_target == "sip:bob@10.0.0.2:6000"
    pair.a.send_response(event.txn, make_response(event.request, 200, headers=[
        ("Contact", "<sip:alice@10.0.0.1:7000>")]), pair.now)
    pair.pump()
    (ok,) = pair.take("b", ResponseReceived)
    assert ok.dialog is b_dialog and b_dialog.remote_target == "sip:alice@10.0.0.1:7000"
    assert ok.response.to_tag == "alice1"  # in-dialog: no new tag
    ack = b_dialog.create_request("ACK")
    assert ack.cseq == (1, "ACK")  # b's own CSeq space starts at 1
    pair.b.send_ack_2xx(ack, (*A_ADDR, "udp"), pair.now)
    pair.pump()
    assert [e.dialog for e in pair.take("a", AckReceived)] == [a_dialog]
    pair.advance(pair.now + 40.0)
    assert pair.a.transaction_count() == pair.b.transaction_count() == 0
    assert pair.a.get_timer() is None and len(pair.a.dialogs) == 1


def test_forked_invite_keeps_one_dialog_and_ends_the_other_fork():
    a = SipEndpoint({"udp": A_ADDR})
    txn = a.send_request(new_request("INVITE"), UDP_B, 0.0)
    invite = parse_message(a.datagrams_to_send()[0].data)
    for tag in ("fork1", "fork2"):
        a.receive(make_response(invite, 180, to_tag=tag).to_bytes(), B_ADDR, "udp", None,
                  A_ADDR, 0.1)
    assert {d.remote_tag: d.state for d in a.dialogs} == {"fork1": EARLY, "fork2": EARLY}
    a.receive(make_response(invite, 200, to_tag="fork2").to_bytes(), B_ADDR, "udp", None,
              A_ADDR, 0.2)
    events = a.next_events()
    confirmed = [e.dialog for e in events if isinstance(e, ResponseReceived)][-1]
    assert confirmed.remote_tag == "fork2" and confirmed.state is CONFIRMED
    a.handle_timer(0.2 + 32.0)  # Timer M: the fork that never answered is over
    ended = [e.dialog.remote_tag for e in a.next_events() if isinstance(e, DialogTerminated)]
    assert ended == ["fork1"] and txn.terminated
    assert [d.remote_tag for d in a.dialogs] == ["fork2"]


def test_bye_timeout_ends_the_dialog():
    pair = Pair()
    a_dialog, _ = call_up(pair)
    pair.drop = lambda sender, message: sender == "a"
    pair.a.send_request(a_dialog.create_request("BYE"), UDP_B, pair.now)
    pair.advance(pair.now + 33.0)
    assert len(pair.take("a", TransactionTimedOut)) == 1
    assert [e.dialog for e in pair.take("a", DialogTerminated)] == [a_dialog]
    assert len(pair.a.dialogs) == 0


def test_481_to_an_in_dialog_request_ends_our_dialog():
    pair = Pair()
    a_dialog, b_dialog = call_up(pair)
    pair.b.dialogs.remove(b_dialog)  # b forgot the call (e.g. restarted)
    pair.a.send_request(a_dialog.create_request("INFO"), UDP_B, pair.now)
    pair.pump()
    assert statuses(pair) == [481]
    assert [e.dialog for e in pair.take("a", DialogTerminated)] == [a_dialog]


def test_uas_non2xx_final_ends_the_early_dialog():
    pair = Pair()
    pair.a.send_request(new_request("INVITE"), UDP_B, 0.0)
    pair.pump()
    event, early = answer(pair, 183)
    assert early.state is EARLY and pair.a.dialogs
    pair.b.send_response(event.txn, make_response(event.request, 486), pair.now)
    pair.pump()
    assert statuses(pair) == [183, 486]
    assert len(pair.take("b", DialogTerminated)) == 1 and len(pair.take("a", DialogTerminated)) == 1
    pair.advance(100.0)
    pair.assert_clean()


def test_stray_ack_is_counted_not_reported():
    b = SipEndpoint({"udp": B_ADDR})
    raw = (b"ACK sip:bob@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKs\r\n"
           b"From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\nCall-ID: s\r\nCSeq: 1 ACK\r\n\r\n")
    b.receive(raw, A_ADDR, "udp", None, B_ADDR, 0.0)
    assert b.next_events() == [] and b.datagrams_to_send() == []
    assert b.stats["stray_acks"] == 1
