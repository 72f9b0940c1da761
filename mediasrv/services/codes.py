"""Feature-code matching on one leg's DTMF (transfer spec, "Codes and the DTMF path").

How this works: a `CodeMatcher` watches the digits of one leg against a set of codes. A digit
that, with the digits held before it, is a prefix of some code is held back (not sent to the
other party) and a `feature_digit_timeout` timer is armed. When the held digits make a whole
code, `on_code` is called and nothing is sent on. When they stop being a prefix of any code,
the leading held digits are sent on (`forward`) one by one until what is left could still start
a code (so `##4` sends one `#` and still matches `#4`). When the timer fires, every held digit
is sent on. Digits that cannot start a code are sent on at once.

While a code is pending because of an in-band digit, the leg is muted (`CallControl.mute`)
so the other party does not hear the rest of the code as tones; it is unmuted as soon as the
code is resolved either way. RFC 4733 digits are never heard in-band, so they need no mute.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Generic, TypeVar

from mediasrv.call.api import CallControl, Leg, Timer

T = TypeVar("T")

DEFAULT_FEATURE_DIGIT_TIMEOUT = 1.0


class Codes(Generic[T]):
    """A set of codes (code -> value) and every prefix of them; one may serve many matchers
    (the service host keeps one per extension rather than building it for each leg)."""

    def __init__(self, codes: Mapping[str, T]) -> None:
        self.values = dict(codes)
        self.prefixes = frozenset(code[:n] for code in self.values
                                  for n in range(1, len(code) + 1))


class CodeMatcher(Generic[T]):
    """Holds back the digits of `leg` that may start one of `codes` (code -> value)."""

    def __init__(self, control: CallControl, leg: Leg, codes: Mapping[str, T] | Codes[T], *,
                 on_code: Callable[[T], None], forward: Callable[[str], None],
                 timeout: float = DEFAULT_FEATURE_DIGIT_TIMEOUT) -> None:
        known = codes if isinstance(codes, Codes) else Codes(codes)
        self.control, self.leg, self.codes = control, leg, known.values
        self.on_code, self.forward, self.timeout = on_code, forward, timeout
        self._prefixes = known.prefixes
        self.held = ""
        self._timer: Timer | None = None
        self._muted = False

    def feed(self, digit: str, source: str = "rfc4733") -> None:
        """One digit from the leg, by RFC 4733 or the in-band detector."""
        self.held += digit
        sent = ""
        while self.held and self.held not in self._prefixes:
            sent, self.held = sent + self.held[0], self.held[1:]
        if sent:
            self.forward(sent)
        if self.held in self.codes:
            value, self.held = self.codes[self.held], ""
            self._settle()
            self.on_code(value)
        elif self.held:
            self._pend(source)
        else:
            self._settle()

    def flush(self) -> None:
        """Sends every held digit on now (the timeout, or the leg's role changed)."""
        held, self.held = self.held, ""
        self._settle()
        if held:
            self.forward(held)

    def cancel(self) -> None:
        """Drops held digits without sending them (the leg ended)."""
        self.held = ""
        self._settle()

    def _pend(self, source: str) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.control.schedule(self.timeout, self._expired)
        if source == "inband" and not self._muted:
            self._muted = True
            self.control.mute(self.leg, True)

    def _expired(self) -> None:
        self._timer = None
        self.flush()

    def _settle(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._muted:
            self._muted = False
            self.control.mute(self.leg, False)
