"""The keys the endpoint hands its transactions (from the Via it parsed or wrote once) are
the keys §17.1.3 / §17.2.3 matching computes from the messages themselves."""

from __future__ import annotations

from endpoints import B_ADDR, Pair, new_request

from mediasrv.sip.events import CancelReceived, RequestReceived
from mediasrv.sip.message import make_response
from mediasrv.sip.transaction import client_key_of_request, server_key


def test_server_transactions_are_filed_under_the_stamped_requests_key() -> None:
    pair = Pair(nat=("198.51.100.7", 40123))  # received and rport get stamped
    pair.a.send_request(new_request("INVITE"), (*B_ADDR, "udp"), pair.now)
    pair.pump()
    (event,) = pair.take("b", RequestReceived)
    assert event.txn.key == server_key(event.request)
    assert event.request.top_via.received == "198.51.100.7"
    assert event.txn.peer == ("198.51.100.7", 40123)  # §18.2.2 from the stamped Via
    pair.b.send_response(event.txn, make_response(event.request, 180, to_tag="b1"), pair.now)
    pair.pump()  # Proceeding: the CANCEL goes out at once (§9.1)
    cancel = pair.a.cancel(next(iter(pair.a._clients.values())), pair.now)
    pair.pump()
    assert cancel is not None and cancel.key == client_key_of_request(cancel.request)
    (cancelled,) = pair.take("b", CancelReceived)
    assert pair.b._servers[server_key(cancelled.cancel)].method == "CANCEL"


def test_client_transactions_are_filed_under_the_branch_they_wrote() -> None:
    pair = Pair()
    for method in ("INVITE", "OPTIONS"):
        txn = pair.a.send_request(new_request(method, call_id=method), (*B_ADDR, "udp"),
                                  pair.now)
        assert txn.key == client_key_of_request(txn.request)
        assert txn.key[0] == txn.request.via_branch and txn.key[1] == method
    pair.pump()
    for event in pair.take("b", RequestReceived):
        pair.b.send_response(event.txn, make_response(event.request, 200), pair.now)
    pair.pump()
    assert not pair.a._pending_cancel
    assert {e.response.status for e in pair.events["a"] if hasattr(e, "response")} == {200}
