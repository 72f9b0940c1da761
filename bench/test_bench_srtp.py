"""SRTP relay against plain RTP relay: media-thread CPU per packet, as a ratio in one run.

bench/srtp_relay.py measures both: 100 two-party bridges, 200 packets per call, both legs
of every call SRTP (AES_CM_128_HMAC_SHA1_80, each leg its own keys: decrypt, then encrypt
again) or both plain. Calls per core go as the inverse of the cost per packet, so the ratio
plain cost / SRTP cost is "SRTP calls per core as a share of plain calls per core". Runs
alternate plain and SRTP four times each and take each side's best, the least noisy
estimate on a shared machine. libsrtp2's AES-ICM and HMAC-SHA1 come from OpenSSL
(ext/srtp_primitives.pyx); with Debian's NSS-backed ones the ratio was 17 %.
"""

from __future__ import annotations

import srtp_relay

GOAL = 0.60          # issue #12: an SRTP relay carries >= 60 % of the calls a plain one does
GATE = 0.50          # below the goal by the noise of a shared 2-core machine (58-73 % measured)


def test_srtp_relay_cost_vs_plain(benchmark, media) -> None:
    def run() -> tuple[srtp_relay.RelayCost, srtp_relay.RelayCost]:
        plain, secure = [], []
        for _ in range(4):
            plain.append(srtp_relay.relay(100, 200, srtp=False))
            secure.append(srtp_relay.relay(100, 200, srtp=True))
        key = srtp_relay.RelayCost.us_per_packet.fget
        return min(plain, key=key), min(secure, key=key)

    plain, secure = benchmark.pedantic(run, rounds=1, iterations=1)
    ratio = plain.us_per_packet / secure.us_per_packet
    benchmark.extra_info.update(plain_us=round(plain.us_per_packet, 3),
                                srtp_us=round(secure.us_per_packet, 3), ratio=round(ratio, 3))
    print(f"\nplain relay {plain.us_per_packet:.2f} us/packet, SRTP relay "
          f"{secure.us_per_packet:.2f} us/packet: SRTP calls per core = {ratio:.0%} of plain "
          f"(goal {GOAL:.0%})")
    for cost in (plain, secure):
        assert cost.packets_in == 100 * 200 and cost.packets_out == cost.packets_in
        assert cost.auth_fail == 0
    assert ratio >= GATE
