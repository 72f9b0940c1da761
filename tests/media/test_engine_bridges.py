"""Several two-party bridges at once: each forwards its own pair (a regression: a bridge
whose streams were not the first two opened was recorded on the wrong slots and forwarded
nothing, so a node's second call had no audio)."""

from __future__ import annotations

from rtp_peer import wire


async def test_three_bridges_each_forward_their_own_pair(engines, peers) -> None:
    eng = engines().engine
    rtp = peers(6)
    sids = [wire(eng, p) for p in rtp]
    for i in (4, 2, 0):                   # the later streams first
        eng.connect(sids[i], sids[i + 1])
    assert [eng.feed(s) for s in sids] == ["peer"] * 6
    for i in (0, 2, 4):
        for src, dst, s_src in ((i, i + 1, sids[i]), (i + 1, i, sids[i + 1])):
            rtp[src].send(eng.local_port(s_src), bytes([src]) * 160)
            got = rtp[dst].recv()
            assert got is not None and got.payload == bytes([src]) * 160, (src, dst)
    for sid in sids:
        eng.close_stream(sid)
