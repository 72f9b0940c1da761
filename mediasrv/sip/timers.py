"""Timer values of RFC 3261 §17 (Table 4) and RFC 6026 §8.

How this works: every transaction reads its durations from one frozen `TimerConfig`.
T1 (RTT estimate), T2 (cap on non-INVITE retransmit interval) and T4 (time a message stays
in the network) are configurable; the lettered timers derive from them exactly as Table 4
says. Durations that RFC 3261 sets to zero on reliable transports (D, I, J, K) are returned
as 0.0 so the transaction leaves its wait state on the same call that entered it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TimerConfig:
    """T1/T2/T4 in seconds and the derived lettered timers (RFC 3261 Table 4)."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    min_d: float = 32.0  # RFC 3261's floor for Timer D on UDP; lowered only on test loopbacks

    def __post_init__(self) -> None:
        if not 0 < self.t1 <= self.t2:
            raise ValueError(f"timers need 0 < T1 <= T2, got T1={self.t1} T2={self.t2}")
        if self.t4 <= 0:
            raise ValueError(f"T4 must be positive, got {self.t4}")

    @property
    def timeout(self) -> float:
        """64*T1: Timers B, F, H, J (unreliable), L and M."""
        return 64 * self.t1

    def timer_d(self, reliable: bool) -> float:
        """Wait for response retransmissions in ICT Completed (§17.1.1.2: > 32 s on UDP)."""
        return 0.0 if reliable else max(self.min_d, self.timeout)

    def timer_i(self, reliable: bool) -> float:
        """Wait for ACK retransmissions in IST Confirmed (§17.2.1)."""
        return 0.0 if reliable else self.t4

    def timer_j(self, reliable: bool) -> float:
        """Wait for request retransmissions in NIST Completed (§17.2.2)."""
        return 0.0 if reliable else self.timeout

    def timer_k(self, reliable: bool) -> float:
        """Wait for response retransmissions in NICT Completed (§17.1.2.2)."""
        return 0.0 if reliable else self.t4


#: §17.2.1: an INVITE server transaction sends 100 Trying itself if the TU has not answered
#: within 200 ms.
TRYING_DELAY = 0.2
