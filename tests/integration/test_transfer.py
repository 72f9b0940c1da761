"""Attended transfer end to end over SIP and RTP, proved by who hears whom at each step.

A (101) calls B (102) and B answers; B is the transferer: it dials #4, hears the prompt, dials
the addressee C (103), and so on. Every phone sends its own identity tone; the default MoH class
is a pure 2200 Hz tone (`moh_tone`), so "hears MoH" and "hears X" are both measured by audio.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from tests.integration.conftest import MOH_HZ, Harness, wait_until
from tests.peers import audio

pytestmark = [pytest.mark.asyncio, pytest.mark.moh_tone]

RINGBACK_HZ = [440, 480]


class Scene:
    def __init__(self, harness: Harness, a, b, c, a_call, b_call) -> None:
        self.h, self.a, self.b, self.c = harness, a, b, c
        self.a_call, self.b_call = a_call, b_call
        self.c_call = None

    async def start_transfer(self) -> None:
        await self.b_call.send_dtmf("#4")
        await self.on_moh(self.a)
        await wait_until(lambda: self.b_call.hearing.has_audio() and not self.b.hears(), 3,
                         "B to hear the prompt")

    async def dial(self, number: str, end: str = "#") -> None:
        await self.b_call.send_dtmf(number + end)

    async def addressee_rings(self):
        self.c_call = await self.c.next_incoming()
        await wait_until(lambda: self.b.hears_freqs(RINGBACK_HZ), 3, "B to hear ringback")
        return self.c_call

    async def addressee_answers(self) -> None:
        call = self.c_call or await self.addressee_rings()
        await call.answer()
        await self.talking(self.b, self.c)

    async def on_moh(self, phone) -> None:
        await wait_until(lambda: phone.hears_freqs(MOH_HZ) and not phone.hears(), 3,
                         f"{phone.name} to hear only MoH")

    async def talking(self, *phones, timeout: float = 3.0) -> None:
        for phone in phones:
            others = {p.name for p in phones if p is not phone}
            await phone.wait_hearing(others, timeout)


async def scene(harness: Harness, c_answer=None, **c_kw) -> Scene:
    a = await harness.phone("A", "101")
    b = await harness.phone("B", "102")
    c = await harness.phone("C", "103", answer=c_answer, **c_kw)
    a_call = await a.call(harness.uri("102"))
    assert await a_call.wait_final() == 200
    s = Scene(harness, a, b, c, a_call, b.active_calls()[0])
    await s.talking(a, b)
    return s


async def consulting(harness: Harness) -> Scene:
    """A talks to B; B dialled #4 and 103; C answered: B and C talk, A hears MoH."""
    s = await scene(harness)
    await s.start_transfer()
    await s.dial("103")
    await s.addressee_answers()
    return s


async def hang_up_all(*calls) -> None:
    for call in calls:
        if call is not None and call.state in ("early", "confirmed"):
            await call.hangup()


def onset_recorder(call, name: str) -> list[float]:
    """Records the time of the first 20 ms frame in which `call` hears identity tone `name`."""
    seen: list[float] = []
    feed = call.hearing.feed

    def spy(pcm: np.ndarray, now: float | None = None) -> None:
        if not seen and name in audio.tones_in(pcm):
            seen.append(time.monotonic())
        feed(pcm, now)

    call.hearing.feed = spy
    return seen


# ---------------------------------------------------------------------------- complete


async def test_complete_by_hanging_up_after_answer_with_latencies(harness: Harness) -> None:
    s = await scene(harness)
    await s.start_transfer()
    await s.dial("103", end="")
    t_hash = time.monotonic()
    await s.b_call.send_dtmf("#", duration=0.06, gap=0)
    c_call = await s.addressee_rings()
    invite_latency = s.c.event_times("INVITE")[0] - t_hash  # includes the 60 ms digit
    await s.on_moh(s.a)
    await s.addressee_answers()
    a_onset, c_onset = onset_recorder(s.a_call, "C"), onset_recorder(c_call, "A")
    t_bye = time.monotonic()
    await s.b_call.hangup()
    await s.talking(s.a, s.c)
    join_latency = max(a_onset[0], c_onset[0]) - t_bye
    print(f"\n# pressed -> addressee INVITE: {invite_latency * 1000:.1f} ms; "
          f"transferer BYE -> both hear each other: {join_latency * 1000:.1f} ms")
    assert invite_latency < 0.1
    assert join_latency < 0.1
    await hang_up_all(s.a_call)
    await c_call.wait_state("terminated")


async def test_number_ends_by_timeout_without_hash(harness: Harness) -> None:
    s = await scene(harness)
    await s.start_transfer()
    await s.dial("103", end="")
    t0 = time.monotonic()
    c_call = await s.addressee_rings()
    assert s.c.event_times("INVITE")[0] - t0 > 1.5  # the 2 s inter-digit timeout ended it
    await c_call.answer()
    await s.talking(s.b, s.c)
    await s.b_call.hangup()
    await s.talking(s.a, s.c)
    await hang_up_all(s.a_call)


# ---------------------------------------------------------------------------- cancel


async def test_cancel_while_ringing(harness: Harness) -> None:
    s = await scene(harness)
    await s.start_transfer()
    await s.dial("103")
    c_call = await s.addressee_rings()
    await s.b_call.send_dtmf("*0")
    await c_call.wait_state("terminated")
    await s.talking(s.a, s.b)
    await hang_up_all(s.a_call)


async def test_cancel_after_answer(harness: Harness) -> None:
    s = await consulting(harness)
    await s.b_call.send_dtmf("*0")
    await s.c_call.wait_state("terminated")
    await s.talking(s.a, s.b)
    await hang_up_all(s.a_call)


@pytest.mark.site('[extensions.103.failover]\nbusy = { action = "voicemail" }\n')
async def test_cancel_during_failover_voicemail(harness: Harness) -> None:
    s = await scene(harness, c_answer=486)
    await s.start_transfer()
    await s.dial("103")
    await wait_until(lambda: s.b_call.hearing.has_audio() and not s.b.hears(), 5,
                     "B to hear the voicemail greeting")
    await s.b_call.send_dtmf("*0")
    await s.talking(s.a, s.b)
    await hang_up_all(s.a_call)


# ---------------------------------------------------------------------------- swap, three-way


async def test_swap_while_ringing_and_back(harness: Harness) -> None:
    s = await scene(harness)
    await s.start_transfer()
    await s.dial("103")
    c_call = await s.addressee_rings()
    await s.b_call.send_dtmf("*9")  # HESITANT: back to the transferred party
    await s.talking(s.a, s.b)
    await s.b_call.send_dtmf("*9")
    await wait_until(lambda: s.b.hears_freqs(RINGBACK_HZ), 3, "ringback again")
    await s.on_moh(s.a)
    await c_call.answer()
    await s.talking(s.b, s.c)
    await hang_up_all(s.b_call)
    await s.talking(s.a, s.c)
    await hang_up_all(s.a_call)


async def test_swap_after_answer(harness: Harness) -> None:
    s = await consulting(harness)
    await s.b_call.send_dtmf("*9")  # DOUBLECHECKING: C is held
    await s.talking(s.a, s.b)
    await s.on_moh(s.c)
    await s.b_call.send_dtmf("*9")
    await s.talking(s.b, s.c)
    await s.on_moh(s.a)
    await hang_up_all(s.b_call)
    await s.talking(s.a, s.c)
    await hang_up_all(s.c_call)
    await s.a_call.wait_state("terminated")


@pytest.mark.parametrize("leaver", ["A", "B", "C"])
async def test_three_way_then_one_leaves(harness: Harness, leaver: str) -> None:
    s = await consulting(harness)
    await s.b_call.send_dtmf("*3")
    await s.talking(s.a, s.b, s.c)
    calls = {"A": s.a_call, "B": s.b_call, "C": s.c_call}
    phones = {"A": s.a, "B": s.b, "C": s.c}
    await calls[leaver].hangup()
    rest = [p for n, p in phones.items() if n != leaver]
    await s.talking(*rest)
    await hang_up_all(*(c for n, c in calls.items() if n != leaver))


async def test_cancel_in_three_way_drops_the_addressee(harness: Harness) -> None:
    s = await consulting(harness)
    await s.b_call.send_dtmf("*3")
    await s.talking(s.a, s.b, s.c)
    await s.b_call.send_dtmf("*0")
    await s.c_call.wait_state("terminated")
    await s.talking(s.a, s.b)
    await hang_up_all(s.a_call)


# ---------------------------------------------------------------------------- hang-ups


async def test_addressee_hangs_up_restores_the_call(harness: Harness) -> None:
    s = await consulting(harness)
    await s.c_call.hangup()
    await s.talking(s.a, s.b)
    await hang_up_all(s.a_call)


async def test_transferred_hangs_up_during_consultation(harness: Harness) -> None:
    s = await consulting(harness)
    await s.a_call.hangup()
    await asyncio.sleep(0.5)
    await s.talking(s.b, s.c)
    await hang_up_all(s.b_call)
    await s.c_call.wait_state("terminated")


async def test_blond_transfer_completes_when_the_addressee_answers(harness: Harness) -> None:
    s = await scene(harness)
    await s.start_transfer()
    await s.dial("103")
    c_call = await s.addressee_rings()
    await s.b_call.hangup()
    await wait_until(lambda: s.a.hears_freqs(RINGBACK_HZ), 3, "A to hear ringback")
    await c_call.answer()
    await s.talking(s.a, s.c)
    await hang_up_all(s.a_call)
    await c_call.wait_state("terminated")


# ---------------------------------------------------------------------------- numbers


async def test_invalid_number_then_retry_succeeds(harness: Harness) -> None:
    s = await scene(harness)
    await s.start_transfer()
    await s.dial("999")
    await asyncio.sleep(0.3)
    assert s.a.hears_freqs(MOH_HZ) and s.c.calls == []
    await s.dial("103")
    await s.addressee_answers()
    await hang_up_all(s.b_call)
    await s.talking(s.a, s.c)
    await hang_up_all(s.a_call)


async def test_three_invalid_numbers_reconnect(harness: Harness) -> None:
    s = await scene(harness)
    await s.start_transfer()
    for wrong in ("999", "", "102"):  # unknown, empty, the transferer itself
        await s.dial(wrong)
        await asyncio.sleep(0.4)
    await s.talking(s.a, s.b)
    await hang_up_all(s.a_call)


# ---------------------------------------------------------------------------- failover


@pytest.mark.parametrize("condition,c_kw", [
    ("busy", {"c_answer": 486}),
    ("no_answer", {}),
    ("not_registered", {"register": False}),
])
@pytest.mark.parametrize("action", ["return", "hangup", "announce"])
async def test_failover_actions_reconnect(harness: Harness, condition: str, c_kw: dict,
                                          action: str) -> None:
    await _reload_failover(harness, condition, action)
    s = await scene(harness, **c_kw)
    await s.start_transfer()
    await s.dial("103")
    if action == "announce":
        await wait_until(lambda: s.b_call.hearing.has_audio() and not s.b.hears()
                         and not s.b.hears_freqs(RINGBACK_HZ), 5, "B to hear the announcement")
    await s.talking(s.a, s.b, timeout=1 + 3.0)  # 103 may ring out its 1 s first
    await hang_up_all(s.a_call)


async def _reload_failover(harness: Harness, condition: str, action: str) -> None:
    from mediasrv.config import DEFAULT_CONFIG_DIR, DEFAULT_PLUGIN_DIR, load_config
    site = harness.tmp_path / "site"
    extra = f'action = "{action}"' + (', prompt = "busy"' if action == "announce" else "")
    (site / "99-zz-failover.toml").write_text(
        f"[extensions.103]\nring_timeout = 1\n"
        f"[extensions.103.failover]\n{condition} = {{ {extra} }}\n")
    config = load_config([DEFAULT_CONFIG_DIR, site], DEFAULT_PLUGIN_DIR)
    harness.server._reload_config = lambda: config
    harness.server.reload()


@pytest.mark.site('[extensions.103]\nring_timeout = 1\n[extensions.103.failover]\n'
                  'no_answer = { action = "forward", to = "104" }\n')
async def test_no_answer_forwards_to_another_extension(harness: Harness) -> None:
    s = await scene(harness)
    d = await harness.phone("D", "104", answer=None)
    await s.start_transfer()
    await s.dial("103")
    await s.addressee_rings()
    d_call = await d.next_incoming(timeout=5)
    await d_call.answer()
    await s.talking(s.b, d)
    await hang_up_all(s.b_call)
    await s.talking(s.a, d)
    await hang_up_all(s.a_call)


# ---------------------------------------------------------------------------- who may use it


async def test_external_leg_digits_pass_through(harness: Harness) -> None:
    from tests.peers.phone import TestPhone
    b = await harness.phone("B", "102")
    trunk = TestPhone("A", "5551234", None, server=harness.sip_addr)
    await trunk.start()
    harness.phones.append(trunk)
    harness.server.b2bua.config = _trusting(harness)
    harness.server.b2bua.gatekeeper.config = harness.server.b2bua.config
    call = await trunk.call(harness.uri("102"))
    assert await call.wait_final() == 200
    await trunk.wait_hearing({"B"})
    await call.send_dtmf("#4")
    await wait_until(lambda: b.active_calls()[0].dtmf_received == ["#", "4"], 4,
                     "B to receive #4 as DTMF")
    await b.wait_hearing({"A"})
    await hang_up_all(call)


def _trusting(harness: Harness):
    import dataclasses
    import ipaddress
    cfg = harness.server.config
    sip = dataclasses.replace(cfg.sip, trusted=(ipaddress.ip_network("127.0.0.1/32"),))
    return dataclasses.replace(cfg, sip=sip)


@pytest.mark.site('[extensions.102]\nservices = []\n')
async def test_extension_not_permitted_digits_pass_through(harness: Harness) -> None:
    s = await scene(harness)
    await s.b_call.send_dtmf("#4")
    await wait_until(lambda: s.a_call.dtmf_received == ["#", "4"], 4, "A to receive #4")
    await s.talking(s.a, s.b)
    await hang_up_all(s.a_call)


async def test_disabled_service_and_changed_codes_through_toml(harness: Harness) -> None:
    from mediasrv.config import DEFAULT_CONFIG_DIR, load_config
    plugins = harness.tmp_path / "plugins"
    plugins.mkdir()
    text = (DEFAULT_CONFIG_DIR.parent / "plugins" / "attended_transfer.toml").read_text()
    (plugins / "attended_transfer.toml").write_text(text.replace("enabled = true",
                                                                 "enabled = false"))
    site = harness.tmp_path / "site"
    harness.server._reload_config = lambda: load_config([DEFAULT_CONFIG_DIR, site], plugins)
    harness.server.reload()
    s = await scene(harness)
    await s.b_call.send_dtmf("#4")
    await wait_until(lambda: s.a_call.dtmf_received == ["#", "4"], 4, "A to receive #4")
    await hang_up_all(s.a_call)
    (plugins / "attended_transfer.toml").write_text(text.replace('start = "#4"',
                                                                 'start = "*7"'))
    harness.server.reload()
    a_call = await s.a.call(harness.uri("102"))
    assert await a_call.wait_final() == 200
    b_call = s.b.active_calls()[0]
    await b_call.send_dtmf("*7")
    await s.on_moh(s.a)
    await b_call.send_dtmf("*0")  # invalid while dialling: counts as a wrong number
    await hang_up_all(a_call)


@pytest.mark.site('[extensions.103.failover]\nbusy = { action = "voicemail" }\n')
async def test_ordinary_call_to_busy_extension_leaves_voicemail(harness: Harness) -> None:
    import soundfile as sf

    from mediasrv.paths import SOUNDS_DIR
    greeting = sf.info(str(SOUNDS_DIR / "en" / "vm-greeting.wav")).duration
    a = await harness.phone("A", "101")
    await harness.phone("C", "103", answer=486)
    call = await a.call(harness.uri("103"))
    assert await call.wait_final() == 200
    await asyncio.sleep(greeting + 0.25 + 1.2)  # greeting, beep, then about 1 s of message
    await call.hangup()
    store = harness.server.store
    await wait_until(lambda: store.voicemails("103"), 3, "the voicemail index row")
    caller, path, seconds, _ = store.voicemails("103")[0]
    assert caller == "101" and 0.5 < seconds < 3
    pcm, rate = sf.read(path, dtype="int16")
    assert rate == 8000 and "A" in audio.tones_in(pcm[-4000:])


async def test_inband_dtmf_starts_and_completes_a_transfer(harness: Harness) -> None:
    s = await scene(harness)
    await s.b_call.send_dtmf("#4", mode="inband")
    await s.on_moh(s.a)
    await s.b_call.send_dtmf("103#", mode="inband")
    await s.addressee_answers()
    await hang_up_all(s.b_call)
    await s.talking(s.a, s.c)
    await hang_up_all(s.a_call)


@pytest.mark.site('[extensions.102]\nlanguage = "it"\n')
async def test_prompts_follow_the_extension_language(harness: Harness) -> None:
    engine = harness.server.engine
    played: list[str] = []
    original = engine.play_prompt

    def spy(sid: int, name: str) -> int:
        played.append(name)
        return original(sid, name)

    engine.play_prompt = spy
    s = await scene(harness)
    await s.start_transfer()
    assert played == ["it/transfer"]
    await s.b_call.send_dtmf("*0")  # an invalid number while dialling
    await wait_until(lambda: "it/invalid" in played, 4, "the Italian 'invalid' prompt")
    await hang_up_all(s.a_call)
