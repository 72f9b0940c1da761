"""Transaction tables of RFC 3261 §17 / RFC 6026, driven with a fake clock (no I/O)."""

from __future__ import annotations

import pytest
from sipfactory import request, response

from mediasrv.sip.message import parse_message
from mediasrv.sip.timers import TimerConfig
from mediasrv.sip.transaction import (
    ACCEPTED,
    CALLING,
    COMPLETED,
    CONFIRMED,
    ICT_TABLE,
    IST_TABLE,
    NICT_TABLE,
    NIST_TABLE,
    PROCEEDING,
    TERMINATED,
    TRYING,
    InviteClientTransaction,
    InviteServerTransaction,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    State,
    build_non2xx_ack,
    client_key,
    server_key,
)

TIMERS = TimerConfig()


def drain(txn):
    """What the transaction sent (bytes: parsed back) and the kinds of its notices."""
    out, notices = txn.drain()
    return [parse_message(data) for data in out], [n.kind for n in notices]


def run_until(txn, end: float) -> list[float]:
    """Fire timers up to `end`; return the times the request went out again."""
    sent = []
    while (deadline := txn.next_deadline()) is not None and deadline <= end:
        txn.handle_timer(deadline)
        out, _ = drain(txn)
        sent += [deadline] * len(out)
    return sent


@pytest.mark.parametrize("table", [ICT_TABLE, NICT_TABLE, IST_TABLE, NIST_TABLE])
def test_tables_only_use_rfc_states_and_never_leave_terminated(table):
    for (state, _event), transition in table.items():
        assert state is not TERMINATED
        assert isinstance(transition.to, State)


_STATUS = {"1xx": 180, "2xx": 200, "300-699": 486}


@pytest.mark.parametrize("kind", [InviteClientTransaction, NonInviteClientTransaction,
                                  InviteServerTransaction, NonInviteServerTransaction])
@pytest.mark.parametrize("reliable", [False, True])
def test_every_row_leaves_only_timers_live_in_its_next_state(kind, reliable):
    """The compiled rows cancel only the timers live in the row's state and dead in the next
    one: exact as long as every action starts only timers live in the state it leads to."""
    method = "INVITE" if kind.KIND in ("ICT", "IST") else "OPTIONS"
    never = {"A", "E", "G"} if reliable else set()  # no retransmissions on a stream
    for (state, event), transition in kind.TABLE.items():
        if event.removeprefix("timer_") in never:
            continue
        req = request(method)
        txn = kind(req, reliable=reliable, timers=TIMERS, now=0.0)
        txn.state = state
        txn._deadlines.clear()
        txn._interval = TIMERS.t1  # as if its retransmission timer had run
        txn._deadlines.update({name: 100.0 for name in kind.STATE_TIMERS.get(state, ())
                               if name not in never})
        message = response(req, _STATUS[event]) if event in _STATUS else \
            request("ACK") if event == "ACK" else req if event in ("INVITE", "request") else None
        assert txn._handle(event, message, 1.0), (state, event)
        # on a stream, zero-length timers may have moved it on already
        assert txn.state is transition.to or reliable
        live = kind.STATE_TIMERS.get(txn.state, frozenset())
        assert set(txn._deadlines) <= live, (kind.KIND, state, event, txn._deadlines)


# -- ICT --------------------------------------------------------------------------------------
def test_ict_timer_a_doubles_and_timer_b_times_out_over_udp():
    txn = InviteClientTransaction(request(), reliable=False, timers=TIMERS, now=0.0)
    assert txn.state is CALLING and len(drain(txn)[0]) == 1
    sent = run_until(txn, 31.0)
    assert sent == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5][:len(sent)] and sent[-1] == 15.5
    txn.handle_timer(32.0)
    out, notices = drain(txn)
    assert txn.state is TERMINATED and notices == ["timeout", "terminated"]
    assert txn.next_deadline() is None


def test_ict_no_retransmission_over_tcp_but_timer_b_still_runs():
    txn = InviteClientTransaction(request(), reliable=True, timers=TIMERS, now=0.0)
    drain(txn)
    assert txn.next_deadline() == 32.0
    txn.handle_timer(32.0)
    assert drain(txn) == ([], ["timeout", "terminated"])


def test_ict_provisional_stops_retransmissions_and_timer_b():
    inv = request()
    txn = InviteClientTransaction(inv, reliable=False, timers=TIMERS, now=0.0)
    drain(txn)
    assert txn.receive_response(response(inv, 180), 0.1)
    assert txn.state is PROCEEDING and drain(txn)[1] == ["response"]
    assert txn.next_deadline() is None  # rings forever; the TU owns Timer C


def test_ict_non2xx_gets_ack_from_the_transaction_and_retransmits_are_reacked():
    inv = request()
    txn = InviteClientTransaction(inv, reliable=False, timers=TIMERS, now=0.0)
    drain(txn)
    busy = response(inv, 486)
    txn.receive_response(busy, 0.2)
    out, notices = drain(txn)
    assert txn.state is COMPLETED and notices == ["response"]
    (ack,) = out
    assert ack.method == "ACK" and ack.cseq == (1, "ACK")
    assert ack.via_branch == inv.via_branch and ack.to_tag == "tt1"
    assert ack.uri == inv.uri and ack.from_tag == inv.from_tag
    # a retransmitted 486 (our ACK was lost): ACK again, do not tell the TU twice
    txn.receive_response(busy, 1.0)
    out, notices = drain(txn)
    assert [m.method for m in out] == ["ACK"] and notices == []
    assert txn.next_deadline() == pytest.approx(32.2)
    txn.handle_timer(32.2)
    assert txn.state is TERMINATED and drain(txn)[1] == ["terminated"]


def test_ict_non2xx_over_tcp_terminates_at_once():
    inv = request(transport="TCP")
    txn = InviteClientTransaction(inv, reliable=True, timers=TIMERS, now=0.0)
    txn.receive_response(response(inv, 603), 0.2)
    out, notices = drain(txn)
    assert [m.method for m in out] == ["INVITE", "ACK"]
    assert txn.state is TERMINATED and notices == ["response", "terminated"]


def test_ict_2xx_goes_to_accepted_and_retransmitted_2xx_reach_the_tu():
    inv = request()
    txn = InviteClientTransaction(inv, reliable=False, timers=TIMERS, now=0.0)
    drain(txn)
    ok = response(inv, 200)
    txn.receive_response(ok, 0.3)
    out, notices = drain(txn)
    assert txn.state is ACCEPTED and out == [] and notices == ["response"]  # no ACK: §13.2.2.4
    txn.receive_response(ok, 0.8)
    assert drain(txn) == ([], ["response"])  # the TU re-sends its own ACK (RFC 6026 §7.2)
    txn.handle_timer(0.3 + 32)
    assert txn.state is TERMINATED


def test_ict_transport_error_is_reported():
    txn = InviteClientTransaction(request(), reliable=True, timers=TIMERS, now=0.0)
    txn.transport_error(1.0)
    assert txn.terminated and drain(txn)[1] == ["transport_error", "terminated"]


# -- NICT -------------------------------------------------------------------------------------
def test_nict_timer_e_caps_at_t2_and_timer_f_times_out():
    txn = NonInviteClientTransaction(request("REGISTER"), reliable=False, timers=TIMERS,
                                     now=0.0)
    drain(txn)
    sent = run_until(txn, 31.9)
    gaps = [round(b - a, 3) for a, b in zip([0.0] + sent, sent, strict=False)]
    assert gaps[:5] == [0.5, 1.0, 2.0, 4.0, 4.0] and max(gaps) == 4.0
    txn.handle_timer(32.0)
    assert txn.state is TERMINATED and drain(txn)[1] == ["timeout", "terminated"]


def test_nict_proceeding_retransmits_every_t2():
    req = request("BYE", to_tag="tt1")
    txn = NonInviteClientTransaction(req, reliable=False, timers=TIMERS, now=0.0)
    drain(txn)
    txn.receive_response(response(req, 100), 0.1)
    assert txn.state is PROCEEDING
    sent = run_until(txn, 13.0)
    assert sent == [0.5, 4.5, 8.5, 12.5]


def test_nict_final_then_timer_k_and_retransmitted_final_absorbed():
    req = request("BYE", to_tag="tt1")
    txn = NonInviteClientTransaction(req, reliable=False, timers=TIMERS, now=0.0)
    drain(txn)
    ok = response(req, 200)
    assert txn.receive_response(ok, 0.1)
    assert txn.state is COMPLETED and drain(txn) == ([], ["response"])
    assert not txn.receive_response(ok, 0.2)  # absorbed
    assert drain(txn) == ([], [])
    txn.handle_timer(5.1)
    assert txn.state is TERMINATED


def test_nict_lost_200_means_request_is_retransmitted():
    req = request("BYE", to_tag="tt1")
    txn = NonInviteClientTransaction(req, reliable=False, timers=TIMERS, now=0.0)
    drain(txn)
    txn.handle_timer(0.5)  # the 200 was lost: the BYE goes again
    assert [m.method for m in drain(txn)[0]] == ["BYE"]
    txn.receive_response(response(req, 200), 0.6)
    assert txn.state is COMPLETED


# -- IST --------------------------------------------------------------------------------------
def test_ist_sends_100_trying_after_200ms_if_the_tu_is_silent():
    inv = request()
    txn = InviteServerTransaction(inv, reliable=False, timers=TIMERS, now=0.0)
    txn.handle_timer(0.1)
    assert drain(txn) == ([], [])
    assert txn.next_deadline() == pytest.approx(0.2)
    txn.handle_timer(0.2)
    (trying,) = drain(txn)[0]
    assert trying.status == 100 and trying.to_tag is None and trying.via_branch == inv.via_branch


def test_ist_no_automatic_100_when_the_tu_answers_quickly():
    inv = request()
    txn = InviteServerTransaction(inv, reliable=False, timers=TIMERS, now=0.0)
    txn.send_response(response(inv, 180), 0.05)
    assert txn.next_deadline() is None
    txn.handle_timer(1.0)
    assert [m.status for m in drain(txn)[0]] == [180]


def test_ist_retransmitted_invite_is_absorbed_and_last_response_resent():
    inv = request()
    txn = InviteServerTransaction(inv, reliable=False, timers=TIMERS, now=0.0)
    assert txn.receive_request(inv, 0.05)  # nothing sent yet: nothing to resend
    assert drain(txn) == ([], [])
    txn.send_response(response(inv, 180), 0.1)
    drain(txn)
    txn.receive_request(inv, 0.5)
    out, notices = drain(txn)
    assert [m.status for m in out] == [180] and notices == []


def test_ist_non2xx_timer_g_retransmits_until_ack_then_confirmed():
    inv = request()
    txn = InviteServerTransaction(inv, reliable=False, timers=TIMERS, now=0.0)
    txn.send_response(response(inv, 486), 0.0)
    drain(txn)
    sent = run_until(txn, 12.0)
    assert sent == [0.5, 1.5, 3.5, 7.5, 11.5]  # T1 doubling, capped at T2
    ack = build_non2xx_ack(inv, response(inv, 486))
    assert server_key(ack) == txn.key
    txn.receive_request(ack, 12.1)
    assert txn.state is CONFIRMED and txn.next_deadline() == pytest.approx(17.1)
    txn.receive_request(ack, 12.2)  # retransmitted ACK absorbed
    assert drain(txn) == ([], [])
    txn.handle_timer(17.1)
    assert txn.state is TERMINATED


def test_ist_timer_h_fires_when_the_ack_never_comes():
    inv = request()
    txn = InviteServerTransaction(inv, reliable=False, timers=TIMERS, now=0.0)
    txn.send_response(response(inv, 404), 0.0)
    run_until(txn, 31.9)
    assert txn.state is COMPLETED
    txn.handle_timer(32.0)
    assert txn.state is TERMINATED and drain(txn)[1] == ["timeout", "terminated"]


def test_ist_over_tcp_no_timer_g_and_ack_terminates_at_once():
    inv = request(transport="TCP")
    txn = InviteServerTransaction(inv, reliable=True, timers=TIMERS, now=0.0)
    txn.send_response(response(inv, 486), 0.0)
    assert txn.next_deadline() == 32.0  # only H
    txn.receive_request(build_non2xx_ack(inv, response(inv, 486)), 0.1)
    assert txn.state is TERMINATED


def test_ist_accepted_absorbs_invite_passes_ack_and_sends_2xx_retransmits():
    inv = request()
    txn = InviteServerTransaction(inv, reliable=False, timers=TIMERS, now=0.0)
    ok = response(inv, 200)
    txn.send_response(ok, 0.1)
    assert txn.state is ACCEPTED and drain(txn)[0] == [ok]
    txn.receive_request(inv, 0.2)
    assert drain(txn) == ([], [])  # RFC 6026 §7.1: absorbed, the TU resends 2xx itself
    txn.send_response(ok, 0.6)
    assert drain(txn)[0] == [ok]
    ack = request("ACK", branch=inv.via_branch)
    txn.receive_request(ack, 0.7)
    assert drain(txn)[1] == ["ack"]
    txn.handle_timer(32.1)
    assert txn.state is TERMINATED


def test_ist_rejects_a_second_final_response():
    inv = request()
    txn = InviteServerTransaction(inv, reliable=False, timers=TIMERS, now=0.0)
    txn.send_response(response(inv, 486), 0.0)
    with pytest.raises(RuntimeError):
        txn.send_response(response(inv, 200), 0.1)


# -- NIST -------------------------------------------------------------------------------------
def test_nist_absorbs_retransmits_in_trying_and_resends_final_in_completed():
    req = request("OPTIONS")
    txn = NonInviteServerTransaction(req, reliable=False, timers=TIMERS, now=0.0)
    assert txn.state is TRYING
    assert not txn.receive_request(req, 0.1)
    txn.send_response(response(req, 200), 0.2)
    assert txn.state is COMPLETED and len(drain(txn)[0]) == 1
    txn.receive_request(req, 0.3)
    assert [m.status for m in drain(txn)[0]] == [200]
    txn.handle_timer(32.1)
    assert txn.state is COMPLETED  # Timer J = 64*T1 from the final response at 0.2
    txn.handle_timer(32.2)
    assert txn.state is TERMINATED and drain(txn)[1] == ["terminated"]


def test_nist_provisional_then_final_and_tcp_terminates_at_once():
    req = request("REGISTER", transport="TCP")
    txn = NonInviteServerTransaction(req, reliable=True, timers=TIMERS, now=0.0)
    txn.send_response(response(req, 100), 0.0)
    assert txn.state is PROCEEDING
    txn.receive_request(req, 0.1)
    assert [m.status for m in drain(txn)[0]] == [100, 100]
    txn.send_response(response(req, 200), 0.2)
    assert txn.state is TERMINATED


# -- matching ---------------------------------------------------------------------------------
def test_server_key_follows_17_2_3():
    inv = request()
    ack = build_non2xx_ack(inv, response(inv, 486))
    cancel = request("CANCEL", branch=inv.via_branch)
    other_host = request(branch=inv.via_branch, via_host="10.9.9.9")
    assert server_key(ack) == server_key(inv)
    assert server_key(cancel) != server_key(inv)
    assert server_key(cancel)[:2] == server_key(inv)[:2]
    assert server_key(other_host) != server_key(inv)


def test_server_key_rfc2543_fallback_without_magic_cookie():
    a = request(branch="old1")
    b = request(branch="old1", cseq=2)
    assert server_key(a)[0] == "2543" and server_key(a) != server_key(b)


def test_client_key_matches_branch_and_cseq_method():
    inv = request()
    txn = InviteClientTransaction(inv, reliable=False, timers=TIMERS, now=0.0)
    assert client_key(response(inv, 180)) == txn.key
    cancel = request("CANCEL", branch=inv.via_branch)
    assert client_key(response(cancel, 200)) != txn.key


def test_accepts_says_which_responses_the_tu_may_still_send():
    inv = request()
    txn = InviteServerTransaction(inv, reliable=False, timers=TIMERS, now=0.0)
    assert txn.accepts(180) and txn.accepts(200) and txn.accepts(486)
    txn.send_response(response(inv, 200), 0.0)
    assert txn.accepts(200) and not txn.accepts(180) and not txn.accepts(486)
    nist = NonInviteServerTransaction(request("BYE"), reliable=False, timers=TIMERS, now=0.0)
    nist.send_response(response(nist.request, 200), 0.0)
    assert not nist.accepts(200)


# -- compaction: a transaction waiting out its last timer keeps bytes, not messages -----------
def test_compacted_server_transaction_resends_the_same_bytes_and_drops_its_messages():
    bye = request("BYE", to_tag="tt1")
    txn = NonInviteServerTransaction(bye, reliable=False, timers=TIMERS, now=0.0)
    txn.send_response(response(bye, 200), 0.0)
    (first,), _ = txn.drain()
    txn.compact()
    assert txn.last_response is None and txn.to_tag == "tt1"
    with pytest.raises(RuntimeError, match="compacted"):
        txn.request  # noqa: B018
    txn.receive_request(bye, 1.0)
    (again,), _ = txn.drain()
    assert again == first and parse_message(again).status == 200
    assert (txn.method, txn.dialog_ids, txn.in_dialog) == ("BYE", ("call-1@10.0.0.1", "ft1", 1),
                                                           True)


def test_compacted_client_transaction_parses_its_request_again_when_asked():
    inv = request()
    txn = InviteClientTransaction(inv, reliable=False, timers=TIMERS, now=0.0)
    (sent,), _ = txn.drain()
    txn.receive_response(response(inv, 200), 0.1)
    assert txn.state is ACCEPTED
    txn.compact()
    again = txn.request  # a 2xx of another fork makes a dialog of it
    assert again is not inv and again.to_bytes() == sent
    assert again.call_id == inv.call_id and again.headers.get("Via") == inv.headers.get("Via")


def test_compact_keeps_everything_before_the_final_response():
    inv = request()
    txn = InviteServerTransaction(inv, reliable=False, timers=TIMERS, now=0.0)
    txn.send_response(response(inv, 180), 0.0)
    txn.compact()  # Proceeding: the TU still answers through it
    assert txn.request is inv and txn.last_response is not None
    txn.send_response(response(inv, 200), 0.1)
    txn.drain()
    txn.compact()  # Accepted: a 2xx sent again goes out with the ids the transaction kept
    assert txn.compacted and txn.last_response is None and txn.to_tag == "tt1"
    txn.send_response(response(inv, 200), 0.2)
    (again,), _ = txn.drain()
    assert parse_message(again).status == 200
