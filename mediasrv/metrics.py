"""Prometheus metrics for the running server, served as `GET /metrics` by the API.

How this works: one `CollectorRegistry` per `Metrics` (so several servers in one process, as in
the tests, never share counters). Two kinds of metric:
- event counters (calls by result, transfers by result, DTMF digits by source) are
  prometheus-client `Counter`s bumped by `observe` (a B2BUA observer), by the call records'
  `on_finished` hook and by `count_digits` (a wrapper around the B2BUA's event listener);
- live values (active calls and legs, registrations, open streams, RTP counters) are read at
  scrape time by a custom collector. The engine's per-stream RTP counters vanish with the
  stream: a leg's final counters come with its `leg.ended` event (read just before its stream
  closes) and are folded into the totals; `sample()` reads the live legs' counters at each
  scrape and keeps them, which stand in for the final ones only if those could not be read.
  Nothing reads them between scrapes: once a second for every live leg cost ~5 us per leg,
  ~10 us per call at 500 calls/s with 1,100 legs up, for no value a scrape would show.
Naming follows the Prometheus conventions: `mediasrv_` prefix, base units, `_total` on
counters, direction as a label (`in` = received from phones, `out` = sent to them; loss and
lateness are measured on what is received).

The media engine does not measure its loop time per tick, so that is not exported; in its
place: the media thread's CPU seconds (from /proc, by the thread id the engine reports: its
rate is the share of a core the packet loop uses) and the asyncio loop's lag (how late a
one-second sleep wakes, every second: signalling stalls show there). Process CPU and memory come
from prometheus-client's process collector.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter as Tally
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mediasrv.call.api import CallEvent, DigitReceived
from mediasrv.call.records import CallRecord
from mediasrv.media.engine import MediaError
from mediasrv.services.transfer import TERMINAL, State
from mediasrv.stalls import StallStats

if TYPE_CHECKING:
    from mediasrv.call.b2bua import B2BUA
    from mediasrv.transport.driver import SipDriver

SAMPLE_INTERVAL = 1.0
CALL_RESULTS = ("answered", "busy", "no_answer", "not_registered", "cancelled")
DIGIT_SOURCES = ("rfc4733", "inband")
TRANSFER_RESULTS = frozenset({*(str(s) for s in TERMINAL), str(State.FAIL)})
_RTP_KEYS = ("packets_in", "bytes_in", "packets_out", "bytes_out", "lost", "late", "dropped",
             "malformed", "srtp_auth_fail", "srtp_replay")


class Metrics:
    """The server's metrics; `observe` and `call_finished` are its event hooks."""

    def __init__(self, b2bua: B2BUA, stalls: StallStats | None = None) -> None:
        self.b2bua = b2bua
        self.stalls = stalls
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.calls_started = Counter("mediasrv_calls_started", "Calls started", registry=reg)
        self.calls_ended = Counter("mediasrv_calls", "Calls ended, by result", ["result"],
                                   registry=reg)
        self.transfers_started = Counter("mediasrv_transfers_started", "Transfers started",
                                         ["service"], registry=reg)
        self.transfers = Counter("mediasrv_transfers", "Transfers ended, by result (the "
                                 "terminal state, or abandoned when the call ended first)",
                                 ["service", "result"], registry=reg)
        self.digits = Counter("mediasrv_dtmf_digits", "DTMF digits received, by source",
                              ["source"], registry=reg)
        # the children by result, looked up once (labels() takes a lock and builds a key)
        self._calls_ended = {result: self.calls_ended.labels(result) for result in CALL_RESULTS}
        for source in DIGIT_SOURCES:
            self.digits.labels(source)
        self._open_transfers: dict[str, str] = {}  # call id -> service
        self._last: dict[str, Tally[str]] = {}  # leg id -> its stream's last reading
        self._ended = Tally[str]()  # the last readings of legs that ended
        self.loop_lag = Gauge("mediasrv_event_loop_lag_seconds", "How late the asyncio loop "
                              "ran a timer at the last sample", registry=reg)
        self._lag_task: asyncio.Task | None = None
        reg.register(_LiveCollector(self))
        ProcessCollector(registry=reg)

    def watch_edge(self, driver: SipDriver) -> None:
        """Export the SIP edge: ban list, drops before the parser, stream connections."""
        self.registry.register(_EdgeCollector(driver))

    # ------------------------------------------------------------------ hooks

    def observe(self, event: dict[str, object]) -> None:
        """B2BUA observer: call starts, transfer transitions, ended legs' final RTP counters."""
        kind = event.get("kind")
        if kind == "call.started":
            self.calls_started.inc()
        elif kind == "transfer":
            self._transfer(str(event["call_id"]), str(event.get("service", "")),
                           str(event.get("state", "")), event.get("event") == "start")
        elif kind == "leg.ended":
            last: dict[str, int] | None = self._last.pop(str(event["leg"]), None)
            final = event.get("rtp")
            if isinstance(final, dict) and final:
                last = final
            if last:
                ended = self._ended
                for k in _RTP_KEYS:  # no Counter built per leg: 2 per call add up
                    ended[k] += last.get(k, 0)

    def call_finished(self, record: CallRecord) -> None:
        """Call-records hook: one call ended with `record.result`."""
        counter = self._calls_ended.get(record.result) or self.calls_ended.labels(record.result)
        counter.inc()
        service = self._open_transfers.pop(record.call_id, None)
        if service is not None:
            self.transfers.labels(service, "abandoned").inc()

    def count_digits(self, listener: Callable[[CallEvent], bool]) -> Callable[[CallEvent], bool]:
        """Wraps the B2BUA's event listener so every received digit is counted by source."""
        def counted(event: CallEvent) -> bool:
            if isinstance(event, DigitReceived):
                self.digits.labels(event.source).inc()
            return listener(event)
        return counted

    def _transfer(self, call_id: str, service: str, state: str, started: bool) -> None:
        if started:
            self.transfers_started.labels(service).inc()
            self._open_transfers[call_id] = service
        elif state in TRANSFER_RESULTS and call_id in self._open_transfers:
            del self._open_transfers[call_id]
            self.transfers.labels(service, state.lower()).inc()

    # ------------------------------------------------------------------ RTP sampling

    def sample(self) -> None:
        """Reads every live leg's stream counters (at scrape time)."""
        for leg in list(self.b2bua.legs):
            try:
                stats = self.b2bua.engine.stats(leg.stream)
            except MediaError:
                continue  # closed since: its last reading stands
            self._last[leg.id] = Tally({k: stats[k] for k in _RTP_KEYS})

    def rtp_totals(self) -> Tally[str]:
        """RTP counters over the server's life: ended legs plus the live ones."""
        self.sample()
        total = Tally(self._ended)
        for reading in self._last.values():
            total.update(reading)
        return total

    def start(self) -> None:
        """Starts measuring the loop's lag every `SAMPLE_INTERVAL` seconds on the running loop."""
        self._lag_task = asyncio.get_running_loop().create_task(self._measure_lag_forever())

    def stop(self) -> None:
        """Stops the loop-lag measurement."""
        if self._lag_task is not None:
            self._lag_task.cancel()
            self._lag_task = None

    async def _measure_lag_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + SAMPLE_INTERVAL
            await asyncio.sleep(SAMPLE_INTERVAL)
            self.loop_lag.set(max(0.0, loop.time() - due))

    def exposition(self) -> tuple[bytes, str]:
        """The text format body and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _LiveCollector(Collector):
    """Values read from the live server at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        b2bua = self.metrics.b2bua
        legs = list(b2bua.legs)
        yield _gauge("mediasrv_calls_active", "Calls in progress", len({g.call_id for g in legs}))
        yield _gauge("mediasrv_legs_active", "Call legs in progress", len(legs))
        yield _gauge("mediasrv_media_streams_open", "Open RTP streams in the media engine",
                     b2bua.engine.open_stream_count())
        bindings = b2bua.registrar.bindings
        yield _gauge("mediasrv_registrations", "Registered contacts (bindings)",
                     sum(len(t) for t in bindings.values()))
        yield _gauge("mediasrv_registered_extensions", "Extensions with at least one binding",
                     sum(1 for t in bindings.values() if t))
        yield from _rtp_families(self.metrics.rtp_totals())
        cpus = [_thread_cpu_seconds(ids[1]) for ids in b2bua.engine.thread_ids() if ids]
        if cpus and None not in cpus:
            yield CounterMetricFamily("mediasrv_media_thread_cpu_seconds", "CPU time of the "
                                      "media engine's packet threads (all of them)",
                                      value=sum(c for c in cpus if c is not None))
        yield from _per_thread_families(b2bua.engine.loads())
        load = b2bua.engine.load()
        yield CounterMetricFamily("mediasrv_media_busy_seconds", "Time the media thread spent "
                                  "handling packets and ticks", value=load["busy_seconds"])
        yield CounterMetricFamily("mediasrv_media_rounds_behind", "Media thread rounds that "
                                  "came back full: it was saturated", value=load["rounds_behind"])
        yield from _stall_families(self.metrics.stalls)


def _per_thread_families(loads: list[dict[str, float]]) -> Iterator[Metric]:
    """Each media thread's account (`rtp.threads`): a thread near 1 s/s of busy time, or
    with rising rounds behind, is saturated while others may not be."""
    busy = CounterMetricFamily("mediasrv_media_thread_busy_seconds", "Time each media "
                               "thread spent handling packets and ticks", labels=["thread"])
    behind = CounterMetricFamily("mediasrv_media_thread_rounds_behind", "Rounds of each "
                                 "media thread that came back full", labels=["thread"])
    streams = GaugeMetricFamily("mediasrv_media_thread_streams", "Open streams on each "
                                "media thread", labels=["thread"])
    for k, ld in enumerate(loads):
        busy.add_metric([str(k)], ld["busy_seconds"])
        behind.add_metric([str(k)], ld["rounds_behind"])
        streams.add_metric([str(k)], ld["streams"])
    yield from (busy, behind, streams)


def _stall_families(st: StallStats | None) -> Iterator[Metric]:
    if st is None:
        return
    yield CounterMetricFamily("mediasrv_loop_stalls", "Times the asyncio loop stood still "
                              "longer than the watchdog's threshold", value=st.stalls)
    yield _gauge("mediasrv_loop_stall_seconds_max", "Longest loop stall seen", st.longest)
    yield CounterMetricFamily("mediasrv_gc_pauses", "Garbage collections longer than the "
                              "watchdog's threshold", value=st.gc_pauses)
    yield _gauge("mediasrv_gc_pause_seconds_max", "Longest garbage collection", st.gc_longest)


class _EdgeCollector(Collector):
    """The SIP edge (`transport/guard.py`, the stream reaper), read at scrape time."""

    def __init__(self, driver: SipDriver) -> None:
        self.driver = driver

    def collect(self) -> Iterator[Metric]:
        guard, driver = self.driver.guard, self.driver
        if guard is None:
            return
        now = driver.loop.time()
        yield _gauge("mediasrv_sip_banned_sources", "Source addresses banned now",
                     sum(b.until > now for b in guard.bans.values()))
        expiry = GaugeMetricFamily("mediasrv_sip_ban_expires_in_seconds", "Seconds until the "
                                   "ban of a source address is lifted", labels=["address"])
        for ban in guard.bans.values():
            expiry.add_metric([ban.host], max(0.0, ban.until - now))
        yield expiry
        yield CounterMetricFamily("mediasrv_sip_bans", "Bans imposed", value=guard.bans_total)
        dropped = CounterMetricFamily("mediasrv_sip_dropped_messages", "SIP input dropped "
                                      "before the parser, by reason", labels=["reason"])
        for reason, n in sorted(guard.dropped.items()):
            dropped.add_metric([reason], n)
        yield dropped
        conns = GaugeMetricFamily("mediasrv_sip_connections", "Open SIP stream connections",
                                  labels=["transport"])
        closed = CounterMetricFamily("mediasrv_sip_connections_closed", "Stream connections "
                                     "closed by the server's limits, by reason",
                                     labels=["reason"])
        aliases = GaugeMetricFamily("mediasrv_sip_connection_aliases", "Addresses reached over "
                                    "a connection their peer opened (RFC 5923 alias)",
                                    labels=["transport"])
        aliases_refused = CounterMetricFamily("mediasrv_sip_aliases_refused", "Alias offers "
                                              "the connection could not speak for",
                                              labels=["transport"])
        udp_drops = CounterMetricFamily("mediasrv_sip_udp_receive_drops", "SIP datagrams the "
                                        "kernel dropped because a UDP listener's receive buffer "
                                        "was full (sip.udp_receive_buffer)", labels=["listener"])
        for udp in driver.udp:
            drops = udp.drops()
            if drops is not None:
                udp_drops.add_metric([f"{udp.local[0]}:{udp.local[1]}"], drops)
        yield udp_drops
        refused: Tally[str] = Tally()
        for lst in driver.tcp:
            conns.add_metric([lst.transport], len(lst.connections))
            aliases.add_metric([lst.transport], len(lst.aliases))
            aliases_refused.add_metric([lst.transport], lst.aliases_refused)
            refused.update(lst.refused)
        for reason, n in sorted({**driver.reaped, **refused}.items()):
            closed.add_metric([reason], n)
        yield conns
        yield closed
        yield aliases
        yield aliases_refused


def _thread_cpu_seconds(tid: int) -> float | None:
    """utime + stime of one thread of this process (proc(5), fields 14 and 15)."""
    try:
        with open(f"/proc/self/task/{tid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None  # not Linux, or the thread is gone
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _rtp_families(t: Tally[str]) -> Iterator[Metric]:
    packets = CounterMetricFamily("mediasrv_rtp_packets", "RTP packets, by direction",
                                  labels=["direction"])
    packets.add_metric(["in"], t["packets_in"])
    packets.add_metric(["out"], t["packets_out"])
    octets = CounterMetricFamily("mediasrv_rtp_bytes", "RTP bytes, by direction",
                                 labels=["direction"])
    octets.add_metric(["in"], t["bytes_in"])
    octets.add_metric(["out"], t["bytes_out"])
    yield packets
    yield octets
    for key, doc in (("lost", "RTP packets lost (sequence gaps, RFC 3550 A.3)"),
                     ("late", "RTP packets arrived too late to play"),
                     ("dropped", "RTP packets dropped (unexpected source or payload)"),
                     ("malformed", "Malformed RTP packets")):
        family = CounterMetricFamily(f"mediasrv_rtp_packets_{key}", f"{doc}, by direction",
                                     labels=["direction"])
        family.add_metric(["in"], t[key])
        yield family
    refused = CounterMetricFamily("mediasrv_srtp_packets_refused",
                                  "SRTP packets refused and dropped (RFC 3711 §3.3), by reason",
                                  labels=["reason"])
    refused.add_metric(["auth"], t["srtp_auth_fail"])
    refused.add_metric(["replay"], t["srtp_replay"])
    yield refused
