"""/metrics in Prometheus text format while real calls run."""

from __future__ import annotations

import asyncio

from prometheus_client.parser import text_string_to_metric_families

from mediasrv.metrics import SAMPLE_INTERVAL
from tests.integration.conftest import wait_until
from tests.ops.conftest import OpsHarness
from tests.ops.test_api import talking
from tests.ops.test_transfer_ops import metrics, sample


async def test_names_follow_prometheus_conventions(ops: OpsHarness) -> None:
    text = await metrics(ops)
    families = list(text_string_to_metric_families(text))
    names = [f.name for f in families]
    assert len(names) == len(set(names))
    for family in families:
        assert family.name.startswith(("mediasrv_", "process_")), family.name
        assert family.documentation, family.name
        if family.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples)
    expected = {"mediasrv_calls", "mediasrv_calls_active", "mediasrv_registrations",
                "mediasrv_transfers", "mediasrv_rtp_packets", "mediasrv_rtp_packets_lost",
                "mediasrv_rtp_packets_late", "mediasrv_dtmf_digits",
                "mediasrv_media_thread_cpu_seconds", "mediasrv_event_loop_lag_seconds",
                "mediasrv_media_busy_seconds", "mediasrv_media_rounds_behind",
                "process_cpu_seconds"}
    assert expected <= set(names)


async def test_calls_registrations_and_rtp_while_calls_run(ops: OpsHarness) -> None:
    ended: list[dict] = []
    ops.server.b2bua.observers.append(
        lambda e: ended.append(e) if e["kind"] == "leg.ended" else None)
    assert sample(await metrics(ops), "mediasrv_registrations") == 0
    a, b, a_call, b_call = await talking(ops)
    text = await metrics(ops)
    assert sample(text, "mediasrv_registrations") == 2
    assert sample(text, "mediasrv_calls_active") == 1
    assert sample(text, "mediasrv_legs_active") == 2
    assert sample(text, "mediasrv_media_streams_open") == 2
    assert sample(text, "mediasrv_calls_started_total") == 1
    first = sample(text, "mediasrv_rtp_packets_total", direction="in")
    await asyncio.sleep(0.3)
    text = await metrics(ops)
    during = sample(text, "mediasrv_rtp_packets_total", direction="in")
    assert during - first >= 2 * 10  # two phones, 50 packets/s each, 0.3 s
    assert sample(text, "mediasrv_rtp_packets_total", direction="out") > 0
    assert sample(text, "mediasrv_rtp_bytes_total", direction="in") == 172 * during
    assert sample(text, "mediasrv_rtp_packets_lost_total", direction="in") == 0
    assert "\nmediasrv_media_thread_cpu_seconds_total " in text  # 10 ms ticks: may read 0
    cpu = sample(text, "mediasrv_media_thread_cpu_seconds_total")
    assert 0 <= cpu < sample(text, "process_cpu_seconds_total")
    assert sample(text, "mediasrv_media_busy_seconds_total") > 0   # it handled packets
    assert sample(text, "mediasrv_media_rounds_behind_total") == 0  # two phones never fill it
    await a_call.hangup()
    await ops.settle()
    text = await metrics(ops)
    assert sample(text, "mediasrv_calls_active") == 0
    assert sample(text, "mediasrv_calls_total", result="answered") == 1
    total_in = sample(text, "mediasrv_rtp_packets_total", direction="in")
    assert total_in >= during  # kept
    assert total_in == sum(e["rtp"]["packets_in"] for e in ended)  # up to the last packet


async def test_results_of_unanswered_calls(ops: OpsHarness) -> None:
    a = await ops.phone("A", "101")
    await ops.phone("B", "102", answer=486)
    await ops.phone("C", "103", answer=None)
    busy = await a.call(ops.uri("102"))
    assert await busy.wait_final() == 486
    gone = await a.call(ops.uri("104"))
    assert await gone.wait_final() == 480
    ringing = await a.call(ops.uri("103"), wait=False)
    await wait_until(lambda: 180 in ringing.provisional, 3, "ringing")
    await ringing.hangup()
    await ops.settle()
    text = await metrics(ops)
    results = {r: sample(text, "mediasrv_calls_total", result=r)
               for r in ("answered", "busy", "not_registered", "cancelled", "no_answer")}
    assert results == {"answered": 0, "busy": 1, "not_registered": 1, "cancelled": 1,
                       "no_answer": 0}
    assert sample(text, "mediasrv_calls_started_total") == 3


async def test_dtmf_digits_by_source(ops: OpsHarness) -> None:
    a, b, a_call, b_call = await talking(ops)
    await a_call.send_dtmf("12", mode="rfc4733")
    await a_call.send_dtmf("5", mode="inband")
    for _ in range(60):  # the in-band digit is reported when its tone ends
        text = await metrics(ops)
        if sample(text, "mediasrv_dtmf_digits_total", source="inband"):
            break
        await asyncio.sleep(0.05)
    assert sample(text, "mediasrv_dtmf_digits_total", source="rfc4733") == 2
    assert sample(text, "mediasrv_dtmf_digits_total", source="inband") == 1
    await a_call.hangup()


async def test_live_counters_are_read_at_scrape_time_only(ops: OpsHarness,
                                                          monkeypatch) -> None:
    a, b, a_call, b_call = await talking(ops)
    engine = ops.server.b2bua.engine
    reads: list[int] = []
    def stats(sid: int, real=engine.stats) -> dict[str, int]:
        reads.append(sid)
        return real(sid)
    monkeypatch.setattr(engine, "stats", stats)
    lag = ops.server.metrics.loop_lag
    lag.set(-1.0)
    await asyncio.sleep(SAMPLE_INTERVAL * 1.5)     # the loop-lag measurement ran, no reads
    assert reads == [] and lag._value.get() >= 0
    text = await metrics(ops)
    assert sorted(reads) == sorted(leg.stream for leg in ops.server.b2bua.legs)
    assert sample(text, "mediasrv_rtp_packets_total", direction="in") > 0
    await a_call.hangup()
