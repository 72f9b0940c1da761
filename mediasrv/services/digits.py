"""Digit collection: a prompt, then a number ended by `#`, a pause, or the maximum length.

How this works (transfer spec, "The service, as the user sees it", step 3): `start(prompt)`
plays the prompt to the leg. A digit pressed while the prompt plays stops it (the leg hears
silence) and counts as the first digit. The inter-digit timer starts when the prompt ends or
at each digit; the number is done on the terminator (`#`, not part of the number), when the
timer fires, or at `max_length` digits. `on_done(number)` is called once per `start`; the
number may be empty (the caller decides whether that is valid).
"""

from __future__ import annotations

from collections.abc import Callable

from mediasrv.call.api import CallControl, Leg, Timer

TERMINATOR = "#"
MAX_NUMBER_LENGTH = 15  # extension numbers are 1 to 15 digits (config)


class DigitCollector:
    """Collects one number from `leg` at a time."""

    def __init__(self, control: CallControl, leg: Leg, *, timeout: float,
                 on_done: Callable[[str], None], max_length: int = MAX_NUMBER_LENGTH,
                 terminator: str = TERMINATOR) -> None:
        self.control, self.leg, self.timeout = control, leg, timeout
        self.on_done, self.max_length, self.terminator = on_done, max_length, terminator
        self.digits = ""
        self.active = False
        self._play_id: int | None = None
        self._timer: Timer | None = None

    def start(self, prompt: str) -> None:
        """Plays `prompt` and starts collecting a new number."""
        self.cancel()
        self.digits, self.active = "", True
        self._play_id = self.control.play_prompt(self.leg, prompt)

    def feed(self, digit: str) -> None:
        if not self.active:
            return
        if self._play_id is not None:
            self._play_id = None
            self.control.silence(self.leg)  # the first digit interrupts the prompt
        if digit == self.terminator:
            self._done()
            return
        self.digits += digit
        if len(self.digits) >= self.max_length:
            self._done()
        else:
            self._arm()

    def prompt_finished(self, play_id: int) -> bool:
        """True when `play_id` was this collector's prompt (the pause timer starts now)."""
        if not self.active or play_id != self._play_id:
            return False
        self._play_id = None
        self._arm()
        return True

    def cancel(self) -> None:
        """Stops collecting without calling `on_done`."""
        self.active = False
        self._play_id = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.control.schedule(self.timeout, self._expired)

    def _expired(self) -> None:
        self._timer = None
        self._done()

    def _done(self) -> None:
        number = self.digits
        self.cancel()
        self.on_done(number)
