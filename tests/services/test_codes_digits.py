"""CodeMatcher and DigitCollector on their own, on the fake call model's clock."""

from __future__ import annotations

from mediasrv.services.codes import CodeMatcher
from mediasrv.services.digits import DigitCollector

from .conftest import EXTENSIONS
from .fake_call import FakeCall, FakeLeg


def setup() -> tuple[FakeCall, FakeLeg, list[str], list[str]]:
    fake = FakeCall(EXTENSIONS)
    return fake, fake.new_leg("T", "100"), [], []


def matcher(fake: FakeCall, leg: FakeLeg, found: list[str], sent: list[str]
            ) -> CodeMatcher[str]:
    return CodeMatcher(fake, leg, {"#4": "transfer", "*0": "cancel", "*9": "swap"},
                       on_code=found.append, forward=sent.append, timeout=1.0)


def test_codes_match_and_other_digits_go_on() -> None:
    fake, leg, found, sent = setup()
    m = matcher(fake, leg, found, sent)
    for d in "12*9#4*05":
        m.feed(d)
    assert found == ["swap", "transfer", "cancel"]
    assert sent == ["1", "2", "5"]


def test_dead_end_sends_leading_digits_and_keeps_a_new_prefix() -> None:
    fake, leg, found, sent = setup()
    m = matcher(fake, leg, found, sent)
    for d in "*#":
        m.feed(d)
    assert sent == ["*"] and m.held == "#"
    m.feed("4")
    assert found == ["transfer"]


def test_timeout_flushes_and_cancel_drops() -> None:
    fake, leg, found, sent = setup()
    m = matcher(fake, leg, found, sent)
    m.feed("*")
    fake.advance(1.0)
    assert sent == ["*"] and fake.pending_timers == 0
    m.feed("#")
    m.cancel()
    fake.advance(5.0)
    assert sent == ["*"] and found == []


def test_collector_terminator_max_length_and_prompt_interrupt() -> None:
    fake, leg, numbers, _ = setup()
    c = DigitCollector(fake, leg, timeout=2.0, on_done=numbers.append, max_length=3)
    c.start("transfer")
    assert fake.hears(leg) == "prompt:transfer"
    c.feed("4")
    assert fake.hears(leg) == "silence"
    c.feed("#")
    c.start("transfer")
    for d in "1234":
        c.feed(d)
    assert numbers == ["4", "123"]  # the 4th digit came after the number was done
    assert fake.pending_timers == 0


def test_collector_ignores_other_prompts() -> None:
    fake, leg, numbers, _ = setup()
    c = DigitCollector(fake, leg, timeout=2.0, on_done=numbers.append)
    c.start("transfer")
    assert not c.prompt_finished(999)
    fake.advance(10)
    assert numbers == []
