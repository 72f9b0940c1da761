"""Two SipEndpoints talking in memory with scripted loss: RFC 3261 flows end to end."""

from __future__ import annotations

import pytest
from endpoints import A_ADDR, B_ADDR, Pair, new_request

from mediasrv.sip.dialog import CONFIRMED, EARLY
from mediasrv.sip.endpoint import SipEndpoint
from mediasrv.sip.events import (
    AckReceived,
    AckTimedOut,
    CancelReceived,
    DialogTerminated,
    MalformedDropped,
    RequestReceived,
    ResponseReceived,
    TransactionTerminated,
    TransactionTimedOut,
    TransportFailed,
)
from mediasrv.sip.message import Request, Response, make_response, parse_message

UDP_B = (*B_ADDR, "udp")
TCP_B = (*B_ADDR, "tcp")


def answer(pair: Pair, status: int, *, to_tag: str = "bob1", contact: bool = True):
    """b answers its one pending request; returns the dialog the endpoint reports."""
    (event,) = pair.take("b", RequestReceived)
    extra = [("Contact", "<sip:bob@10.0.0.2:5060>")] if contact and status < 300 else []
    dialog = pair.b.send_response(event.txn, make_response(event.request, status,
                                                           to_tag=to_tag, headers=extra),
                                  pair.now)
    pair.pump()
    return event, dialog


def statuses(pair: Pair, side: str = "a") -> list[int]:
    return [e.response.status for e in pair.take(side, ResponseReceived)]


def call_up(pair: Pair, transport: str = "udp"):
    """INVITE -> 180 -> 200 -> ACK; returns (a's dialog, b's dialog)."""
    dest = UDP_B if transport == "udp" else TCP_B
    pair.a.send_request(new_request("INVITE"), dest, pair.now)
    pair.pump()
    event, _ = answer(pair, 180)
    pair.b.send_response(event.txn, make_response(event.request, 200, to_tag="bob1", headers=[
        ("Contact", "<sip:bob@10.0.0.2:5060>")]), pair.now)
    pair.pump()
    responses = pair.take("a", ResponseReceived)
    assert [r.response.status for r in responses] == [180, 200]
    a_dialog = responses[-1].dialog
    pair.a.send_ack_2xx(a_dialog.create_request("ACK"), dest, pair.now)
    pair.pump()
    (ack,) = pair.take("b", AckReceived)
    return a_dialog, ack.dialog


# -- the basic flows ----------------------------------------------------------------------------
def test_register_200_and_everything_terminates():
    pair = Pair()
    txn = pair.a.send_request(new_request("REGISTER"), UDP_B, 0.0)
    pair.pump()
    event, dialog = answer(pair, 200)
    assert dialog is None and event.request.method == "REGISTER"
    assert statuses(pair) == [200]
    assert pair.log == ["a>b REGISTER", "b>a 200"]
    pair.advance(40.0)
    assert txn.terminated and pair.take("a", TransactionTerminated)[0].txn is txn
    pair.assert_clean()


def test_invite_180_200_ack_bye_200_with_dialogs_on_both_sides():
    pair = Pair()
    a_dialog, b_dialog = call_up(pair)
    assert a_dialog.state is CONFIRMED and b_dialog.state is CONFIRMED
    assert a_dialog.id == ("c1@10.0.0.1", "alice1", "bob1")
    assert b_dialog.id == ("c1@10.0.0.1", "bob1", "alice1")
    assert a_dialog.remote_target == "sip:bob@10.0.0.2:5060"
    assert b_dialog.remote_target == "sip:alice@10.0.0.1:5060"
    bye = a_dialog.create_request("BYE")
    assert bye.cseq == (2, "BYE")
    pair.a.send_request(bye, a_dialog.next_hop(), pair.now)
    pair.pump()
    (event,) = pair.take("b", RequestReceived)
    assert event.dialog is b_dialog
    pair.b.send_response(event.txn, make_response(event.request, 200), pair.now)
    pair.pump()
    assert statuses(pair) == [200]
    assert [e.dialog for e in pair.take("a", DialogTerminated)] == [a_dialog]
    assert [e.dialog for e in pair.take("b", DialogTerminated)] == [b_dialog]
    assert len(pair.a.dialogs) == len(pair.b.dialogs) == 0
    pair.advance(60.0)
    assert pair.take("b", AckTimedOut) == []
    pair.assert_clean()
    assert "b>a 200" in pair.log and pair.log.count("a>b INVITE") == 1


def test_ist_sends_100_trying_by_itself_after_200ms():
    pair = Pair()
    pair.a.send_request(new_request("INVITE"), UDP_B, 0.0)
    pair.advance(0.1)
    assert pair.log == ["a>b INVITE"]
    pair.advance(0.25)
    assert pair.log == ["a>b INVITE", "b>a 100"]
    assert statuses(pair) == [100]


# -- loss and duplication -----------------------------------------------------------------------
def test_lost_provisional_means_retransmitted_invite_absorbed_and_180_resent():
    pair = Pair()
    pair.drop = lambda sender, m: isinstance(m, Response) and m.status == 180 and \
        pair.log.count("b>a 180 lost") == 0
    pair.a.send_request(new_request("INVITE"), UDP_B, 0.0)
    pair.pump()
    answer(pair, 180)
    pair.advance(0.6)  # Timer A fired at 0.5: the INVITE went again
    assert pair.log == ["a>b INVITE", "b>a 180 lost", "a>b INVITE", "b>a 180"]
    assert pair.take("b", RequestReceived) == []  # the retransmission was absorbed
    assert statuses(pair) == [180]
    assert pair.b.stats["retransmissions_absorbed"] == 1


def test_lost_200_to_invite_is_retransmitted_by_the_uas_core():
    pair = Pair()
    pair.drop = lambda sender, m: isinstance(m, Response) and m.status == 200 and \
        "b>a 200 lost" not in pair.log
    pair.a.send_request(new_request("INVITE"), UDP_B, 0.0)
    pair.pump()
    answer(pair, 200)
    assert statuses(pair) == []
    pair.advance(0.6)
    (ok,) = pair.take("a", ResponseReceived)
    pair.a.send_ack_2xx(ok.dialog.create_request("ACK"), UDP_B, pair.now)
    pair.advance(40.0)
    assert pair.log.count("b>a 200") == 1 and len(pair.take("b", AckReceived)) == 1
    assert pair.take("b", AckTimedOut) == []


def test_lost_ack_the_retransmitted_200_is_reacked_by_the_endpoint():
    pair = Pair()
    pair.drop = lambda sender, m: isinstance(m, Request) and m.method == "ACK" and \
        "a>b ACK lost" not in pair.log
    pair.a.send_request(new_request("INVITE"), UDP_B, 0.0)
    pair.pump()
    answer(pair, 200)
    (ok,) = pair.take("a", ResponseReceived)
    pair.a.send_ack_2xx(ok.dialog.create_request("ACK"), UDP_B, pair.now)
    pair.advance(1.0)
    assert pair.log[-3:] == ["a>b ACK lost", "b>a 200", "a>b ACK"]
    assert pair.take("a", ResponseReceived) == []  # the TU hears about the 200 once
    assert len(pair.take("b", AckReceived)) == 1


def test_no_ack_at_all_reports_ack_timed_out_after_64_t1():
    pair = Pair()
    pair.a.send_request(new_request("INVITE"), UDP_B, 0.0)
    pair.pump()
    _, dialog = answer(pair, 200)
    pair.advance(31.9)
    assert pair.take("b", AckTimedOut) == []
    pair.advance(32.1)
    (timed_out,) = pair.take("b", AckTimedOut)
    # sent at 0, 0.5, 1.5, 3.5, 7.5 then every T2 up to 31.5 (§13.3.1.4)
    assert timed_out.dialog is dialog and pair.log.count("b>a 200") == 11
    assert timed_out.request.method == "INVITE"  # its transaction no longer holds it


def test_a_2xx_sent_again_through_the_compacted_transaction_finds_its_dialog():
    pair = Pair()
    pair.a.send_request(new_request("INVITE"), UDP_B, 0.0)
    pair.pump()
    event, dialog = answer(pair, 200)
    assert event.txn.compacted  # Accepted: it waits out Timer L with its ids only
    again = make_response(event.request, 200, to_tag="bob1",
                          headers=[("Contact", "<sip:bob@10.0.0.2:5060>")])
    assert pair.b.send_response(event.txn, again, pair.now) is dialog
    assert len(pair.b.dialogs) == 1


def test_lost_200_to_bye_means_the_bye_is_retransmitted():
    pair = Pair()
    a_dialog, _ = call_up(pair)
    pair.drop = lambda sender, m: isinstance(m, Response) and m.status == 200 and \
        m.cseq[1] == "BYE" and "b>a 200 lost" not in pair.log
    pair.a.send_request(a_dialog.create_request("BYE"), UDP_B, pair.now)
    pair.pump()
    answer(pair, 200)
    assert statuses(pair) == []
    pair.advance(pair.now + 0.6)
    assert pair.log[-4:] == ["a>b BYE", "b>a 200 lost", "a>b BYE", "b>a 200"]
    assert statuses(pair) == [200] and pair.take("b", RequestReceived) == []
    pair.advance(100.0)
    pair.assert_clean()


def test_timer_b_when_nobody_answers_the_invite():
    pair = Pair()
    pair.drop = lambda sender, m: sender == "a"
    txn = pair.a.send_request(new_request("INVITE"), UDP_B, 0.0)
    pair.advance(31.9)
    assert pair.log.count("a>b INVITE lost") == 7 and pair.take("a", TransactionTimedOut) == []
    pair.advance(32.0)
    assert [e.txn for e in pair.take("a", TransactionTimedOut)] == [txn]
    pair.assert_clean()


def test_timer_f_for_an_unanswered_options():
    pair = Pair()
    pair.drop = lambda sender, m: True
    txn = pair.a.send_request(new_request("OPTIONS"), UDP_B, 0.0)
    pair.advance(40.0)
    assert [e.txn for e in pair.take("a", TransactionTimedOut)] == [txn]
    assert pair.log.count("a>b OPTIONS lost") == 11  # 0 .5 1.5 3.5 7.5 11.5 ... 31.5
    pair.assert_clean()


def test_rejected_invite_ack_absorbed_and_ict_re_acks_retransmitted_486():
    pair = Pair()
    pair.drop = lambda sender, m: isinstance(m, Request) and m.method == "ACK" and \
        "a>b ACK lost" not in pair.log
    pair.a.send_request(new_request("INVITE"), UDP_B, 0.0)
    pair.pump()
    answer(pair, 486)
    assert statuses(pair) == [486]
    pair.advance(1.0)  # Timer G resent the 486, the ICT ACKed it again
    assert pair.log == ["a>b INVITE", "b>a 486", "a>b ACK lost", "b>a 486", "a>b ACK"]
    assert pair.take("b", AckReceived) == []  # the non-2xx ACK stays in the transaction
    assert statuses(pair) == []
    pair.advance(100.0)
    pair.assert_clean()


# -- CANCEL -------------------------------------------------------------------------------------
def test_cancel_gets_200_and_the_invite_487():
    pair = Pair()
    invite = pair.a.send_request(new_request("INVITE"), UDP_B, 0.0)
    pair.pump()
    event, b_dialog = answer(pair, 180)
    assert b_dialog.state is EARLY
    assert statuses(pair) == [180]
    cancel = pair.a.cancel(invite, pair.now)
    pair.pump()
    (cancelled,) = pair.take("b", CancelReceived)
    assert cancelled.invite_txn is event.txn
    responses = pair.take("a", ResponseReceived)
    assert sorted((r.txn is cancel, r.response.status) for r in responses) == [
        (False, 487), (True, 200)]
    assert all(r.response.to_tag == "bob1" for r in responses)
    assert "a>b ACK" in pair.log
    assert len(pair.take("a", DialogTerminated)) == 1 and len(pair.take("b", DialogTerminated)) == 1
    pair.advance(100.0)
    pair.assert_clean()


def test_cancel_before_any_provisional_waits_for_one():
    pair = Pair()
    pair.drop = lambda sender, m: sender == "b" and "b>a 100 lost" not in pair.log
    invite = pair.a.send_request(new_request("INVITE"), UDP_B, 0.0)
    pair.advance(0.3)  # the automatic 100 is lost
    assert pair.a.cancel(invite, pair.now) is None
    pair.pump()
    assert "a>b CANCEL" not in pair.log  # §9.1: no CANCEL before a provisional
    pair.advance(0.6)  # retransmitted INVITE -> 100 resent -> CANCEL goes
    assert "a>b CANCEL" in pair.log
    assert sorted(statuses(pair)) == [100, 200, 487]
    pair.advance(100.0)
    pair.assert_clean()


def test_cancel_for_unknown_invite_gets_481():
    pair = Pair()
    b = pair.b
    raw = (b"CANCEL sip:bob@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx1\r\n"
           b"From: <sip:alice@example.com>;tag=f\r\nTo: <sip:bob@example.com>\r\n"
           b"Call-ID: nope\r\nCSeq: 1 CANCEL\r\nMax-Forwards: 70\r\n\r\n")
    b.receive(raw, A_ADDR, "udp", None, B_ADDR, 0.0)
    (out,) = b.datagrams_to_send()
    assert parse_message(out.data).status == 481 and out.destination == A_ADDR


# -- bad input ----------------------------------------------------------------------------------
def raw_invite(*, via="SIP/2.0/UDP 10.0.0.9:5062;branch=z9hG4bKraw1;rport", extra="",
               cseq="1 INVITE", call_id="raw@10.0.0.9", from_tag="f9") -> bytes:
    return (f"INVITE sip:bob@10.0.0.2 SIP/2.0\r\nVia: {via}\r\n"
            f"From: <sip:alice@example.com>;tag={from_tag}\r\nTo: <sip:bob@example.com>\r\n"
            f"Call-ID: {call_id}\r\nCSeq: {cseq}\r\nContent-Length: 0\r\n{extra}\r\n").encode()


def test_malformed_request_gets_400_with_the_reason_as_phrase():
    b = SipEndpoint({"udp": B_ADDR})
    b.receive(raw_invite(cseq="1 OPTIONS"), ("192.0.2.9", 7000), "udp", None, B_ADDR, 0.0)
    (out,) = b.datagrams_to_send()
    reply = parse_message(out.data)
    assert reply.status == 400 and "CSeq method" in reply.reason
    assert out.destination == ("192.0.2.9", 7000)  # received + rport
    assert b.transaction_count() == 0 and b.stats["malformed_answered"] == 1


def test_unanswerable_garbage_is_dropped_and_reported():
    b = SipEndpoint({"udp": B_ADDR})
    b.receive(b"\x00\x01 hello", A_ADDR, "udp", None, B_ADDR, 0.0)
    b.receive(b"\r\n\r\n", A_ADDR, "udp", None, B_ADDR, 0.0)  # keep-alive, not an error
    assert b.datagrams_to_send() == []
    (event,) = b.next_events()
    assert isinstance(event, MalformedDropped) and event.source == A_ADDR
    assert b.stats["malformed_dropped"] == 1


def test_max_forwards_zero_gets_483_and_the_ack_is_absorbed():
    pair = Pair()
    pair.a.send_request(new_request("INVITE", max_forwards=0), UDP_B, 0.0)
    pair.pump()
    assert pair.take("b", RequestReceived) == []
    assert statuses(pair) == [483]
    assert pair.log == ["a>b INVITE", "b>a 483", "a>b ACK"]
    pair.advance(100.0)
    pair.assert_clean()


def test_merged_request_gets_482():
    b = SipEndpoint({"udp": B_ADDR})
    b.receive(raw_invite(via="SIP/2.0/UDP 10.0.0.9:5062;branch=z9hG4bKp1"), ("10.0.0.9", 5062),
              "udp", None, B_ADDR, 0.0)
    (first,) = b.next_events()
    b.receive(raw_invite(via="SIP/2.0/UDP 10.0.0.8:5062;branch=z9hG4bKp2"), ("10.0.0.8", 5062),
              "udp", None, B_ADDR, 0.01)
    assert isinstance(first, RequestReceived) and b.next_events() == []
    (out,) = b.datagrams_to_send()
    assert parse_message(out.data).status == 482 and out.destination == ("10.0.0.8", 5062)
    assert b.transaction_count() == 2


def test_in_dialog_request_for_unknown_dialog_gets_481_and_old_cseq_500():
    pair = Pair()
    a_dialog, b_dialog = call_up(pair)
    pair.a.send_request(a_dialog.create_request("INFO"), UDP_B, pair.now)
    pair.pump()
    answer(pair, 200)
    assert b_dialog.remote_seq == 2
    a_dialog.local_seq = 0  # as if the phone rebooted and reused CSeq numbers
    pair.a.send_request(a_dialog.create_request("INFO"), UDP_B, pair.now)
    a_dialog.remote_tag = "gone"
    pair.a.send_request(a_dialog.create_request("INFO"), UDP_B, pair.now)
    pair.pump()
    assert statuses(pair) == [200, 500, 481]
    assert pair.take("b", RequestReceived) == []
    assert pair.b.stats["rejected_500"] == pair.b.stats["rejected_481"] == 1


def test_response_with_a_foreign_via_is_discarded():
    a = SipEndpoint({"udp": A_ADDR})
    raw = (b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.9.9.9:5060;branch=z9hG4bKq\r\n"
           b"From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\nCall-ID: q\r\nCSeq: 1 OPTIONS\r\n"
           b"\r\n")
    a.receive(raw, B_ADDR, "udp", None, A_ADDR, 0.0)
    assert a.next_events() == [] and a.stats["foreign_via_dropped"] == 1


# -- addressing and TCP -------------------------------------------------------------------------
def test_responses_go_to_received_and_rport_behind_nat():
    pair = Pair(nat=("198.51.100.7", 40123))
    pair.a.send_request(new_request("OPTIONS"), UDP_B, 0.0)
    pair.pump()
    (event,) = pair.take("b", RequestReceived)
    via = event.request.top_via
    assert via.received == "198.51.100.7" and via.rport == 40123
    pair.b.send_response(event.txn, make_response(event.request, 200), pair.now)
    pair.pump()  # Pair asserts b sent it to the NAT address
    assert statuses(pair) == [200]


def test_tcp_call_has_no_retransmissions_and_terminates_at_once():
    pair = Pair()
    a_dialog, _ = call_up(pair, "tcp")
    pair.a.send_request(a_dialog.create_request("BYE"), TCP_B, pair.now)
    pair.pump()
    answer(pair, 200)
    assert pair.b.transaction_count() == 1  # the INVITE in Accepted (Timer L)
    pair.advance(pair.now + 32.0)
    assert pair.log.count("b>a 200") == 2 and pair.log.count("a>b INVITE") == 1
    pair.assert_clean()


def test_tcp_connection_lost_cleans_up_both_sides():
    pair = Pair()
    invite = pair.a.send_request(new_request("INVITE"), TCP_B, 0.0)
    pair.pump()
    event, dialog = answer(pair, 180)
    assert dialog is not None and pair.a.dialogs and invite.conn_id == 1
    pair.b.connection_lost(1)
    pair.a.connection_lost(1)
    pair.pump()
    for side in ("a", "b"):
        assert len(pair.take(side, TransportFailed)) == 1
    assert event.txn.terminated and invite.terminated
    assert len(pair.take("a", DialogTerminated)) == 1
    assert len(pair.take("b", DialogTerminated)) == 1
    pair.assert_clean()


def test_tcp_stream_split_anywhere_is_framed():
    b = SipEndpoint({"tcp": B_ADDR})
    data = raw_invite(via="SIP/2.0/TCP 10.0.0.9:5062;branch=z9hG4bKt1") * 2
    data = data.replace(b"z9hG4bKt1", b"z9hG4bKt2", 1)
    for i in range(0, len(data), 7):
        b.receive(data[i:i + 7], ("10.0.0.9", 40000), "tcp", 3, B_ADDR, 0.0)
    events = [e for e in b.next_events() if isinstance(e, RequestReceived)]
    assert len(events) == 1  # the second INVITE (same From tag/Call-ID/CSeq) was merged: 482
    (out,) = b.datagrams_to_send()
    assert out.conn_id == 3 and parse_message(out.data).status == 482


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_endpoint_requires_its_own_api_use(transport):
    ep = SipEndpoint({transport: A_ADDR})
    with pytest.raises(ValueError):
        ep.send_request(new_request("ACK"), (*B_ADDR, transport), 0.0)


def test_a_200_crossing_a_cancel_is_dropped_not_raised():
    pair = Pair()
    invite = pair.a.send_request(new_request("INVITE"), UDP_B, 0.0)
    pair.pump()
    event, _ = answer(pair, 180)
    pair.a.cancel(invite, pair.now)
    pair.pump()
    assert pair.take("b", CancelReceived)
    late = make_response(event.request, 200, to_tag="bob1")
    assert pair.b.send_response(event.txn, late, pair.now) is None
    assert pair.b.stats["late_responses"] == 1 and pair.b.datagrams_to_send() == []


def test_tcp_connect_failure_fails_the_unbound_client_transaction():
    pair = Pair()
    txn = pair.a.send_request(new_request("OPTIONS"), TCP_B, 0.0)
    pair.a.datagrams_to_send()  # the adapter could not connect
    pair.a.connection_lost(None, remote=B_ADDR)
    assert [type(e).__name__ for e in pair.a.next_events()] == [
        "TransportFailed", "TransactionTerminated"]
    assert txn.terminated and pair.a.transaction_count() == 0


def test_ipv6_source_gets_received_and_the_reply_goes_back_there():
    b = SipEndpoint({"udp": ("2001:db8::2", 5060)})
    data = raw_invite(via="SIP/2.0/UDP [2001:db8::9]:5062;branch=z9hG4bKv6")
    data = data.replace(b"INVITE sip", b"OPTIONS sip").replace(b"1 INVITE", b"1 OPTIONS")
    b.receive(data, ("2001:db8::99", 5062), "udp", None, None, 0.0)
    (event,) = b.next_events()
    assert event.request.top_via.received == "2001:db8::99"
    b.send_response(event.txn, make_response(event.request, 200), 0.0)
    (out,) = b.datagrams_to_send()
    assert out.destination == ("2001:db8::99", 5062)
