"""A whole REGISTER + call + hang-up over a wire that loses and duplicates packets at random.

Whatever the wire does, each side's call layer must see each request once and each final
response once, and both endpoints must end with no transaction, dialog or timer left.
"""

from __future__ import annotations

import random
from collections import Counter

from endpoints import Pair, new_request
from hypothesis import given, settings
from hypothesis import strategies as st
from test_endpoint import UDP_B

from mediasrv.sip.events import AckReceived, AckTimedOut, RequestReceived, ResponseReceived
from mediasrv.sip.message import make_response


def uas_bot(pair: Pair) -> None:
    """b: 200 to everything; an INVITE gets 180 first."""
    for event in pair.take("b", RequestReceived):
        contact = [("Contact", "<sip:bob@10.0.0.2:5060>")]
        if event.request.method == "INVITE":
            pair.b.send_response(event.txn, make_response(event.request, 180, to_tag="bob1"),
                                 pair.now)
        pair.b.send_response(event.txn, make_response(event.request, 200, to_tag="bob1",
                                                      headers=contact), pair.now)
        pair.seen["b"][event.request.method] += 1


def uac_bot(pair: Pair) -> None:
    """a: ACK a 2xx to INVITE and hang up at once."""
    for event in pair.take("a", ResponseReceived):
        method, status = event.txn.method, event.response.status
        if status >= 200:
            pair.seen["a"][f"{method} {status}"] += 1
        if method == "INVITE" and status == 200:
            pair.a.send_ack_2xx(event.dialog.create_request("ACK"), UDP_B, pair.now)
            pair.a.send_request(event.dialog.create_request("BYE"), UDP_B, pair.now)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**32 - 1), loss=st.sampled_from([0.0, 0.1, 0.2]),
       dup=st.sampled_from([0.0, 0.1, 0.3]))
def test_call_survives_loss_and_duplication(seed: int, loss: float, dup: float) -> None:
    rng = random.Random(seed)
    pair = Pair()
    pair.seen = {"a": Counter(), "b": Counter()}
    pair.drop = lambda sender, message: rng.random() < loss
    pair.duplicate = lambda sender, message: rng.random() < dup
    pair.bots = [uas_bot, uac_bot]
    pair.a.send_request(new_request("REGISTER", call_id="reg@a"), UDP_B, 0.0)
    pair.a.send_request(new_request("INVITE"), UDP_B, 0.0)
    pair.advance(300.0)
    assert pair.seen["b"] == {"REGISTER": 1, "INVITE": 1, "BYE": 1}, pair.log
    assert pair.seen["a"] == {"REGISTER 200": 1, "INVITE 200": 1, "BYE 200": 1}, pair.log
    assert len(pair.take("b", AckReceived)) == 1 and pair.take("b", AckTimedOut) == []
    pair.assert_clean()
