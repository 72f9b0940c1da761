"""The media engine's Python face: commands in, events out, recordings to WAV files.

How this works: `mediasrv._media.Engine` (ext/engine.pyx) runs the media thread with the GIL
released; every packet is handled there (RTP per RFC 3550/3551, RFC 4733 telephone-events,
symmetric RTP per RFC 4961). This module only
- validates arguments and turns the core's errors into `MediaError` (our misuse raises),
- reads the core's event eventfd with `loop.add_reader` and turns each record into an
  `events` dataclass for `on_event`,
- runs one writer thread that drains recordings from the core every 100 ms and writes
  them with the stdlib `wave` module (8 kHz, mono, 16-bit), finalising the header on stop
  and posting `RecordingFinished` to the loop.
Stream ids are small integers that are never reused during the engine's life.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import wave
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mediasrv import _media
from mediasrv.media.events import (
    DtmfReceived,
    FirstPacketReceived,
    MediaEvent,
    PlayFinished,
    RecordingFinished,
    RtpTimedOut,
)

log = logging.getLogger(__name__)

CODECS = {"PCMU": 0, "PCMA": 1, "G722": 2, "OPUS": 3}   # ext/engine_codec.pyx numbers
TONES = ("ringback", "busy", "beep", "failed")
ZONES = ("us", "it")
_DIGITS = "0123456789*#ABCD"
_SOURCES = ("rfc4733", "inband")
_ERRORS = (LookupError, ValueError, OSError, RuntimeError, OverflowError, MemoryError)
_EV_FIRST_PACKET, _EV_TIMEOUT, _EV_PLAY_FINISHED, _EV_DTMF, _EV_DTLS = 1, 2, 3, 4, 5
_RANDOM_BATCH = 64    # streams' random RTP starts drawn per os.urandom read (a system call)
DtlsSink = Callable[[int, bool, bytes, str, int], None]   # (stream, rtcp, datagram, host, port)


class MediaError(Exception):
    """A media command that cannot be carried out (unknown stream, no free port, ...)."""


def _call(fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(*args)
    except _ERRORS as exc:
        raise MediaError(str(exc)) from exc


@dataclass
class _Recording:
    stream: int
    path: str
    wav: wave.Wave_write
    samples: int = 0
    rate: int = 8000


def _as_pcm(samples: np.ndarray) -> np.ndarray:
    pcm = np.ascontiguousarray(samples, dtype=np.int16)
    if pcm.ndim != 1:
        raise MediaError(f"sound must be mono (1-D), got shape {pcm.shape}")
    return pcm


def _event(rec: tuple[int, int, int, int, int, float, str, int]) -> MediaEvent | None:
    kind, sid, a, b, c, t, host, port = rec
    if kind == _EV_FIRST_PACKET:
        return FirstPacketReceived(sid, host, port)
    if kind == _EV_TIMEOUT:
        return RtpTimedOut(sid)
    if kind == _EV_PLAY_FINISHED:
        return PlayFinished(sid, a, bool(b))
    if kind == _EV_DTMF:
        return DtmfReceived(sid, _DIGITS[a], b, _SOURCES[c], t)
    return None


class MediaEngine:
    """RTP streams anchored in the server, driven from asyncio, run on a media thread."""

    def __init__(self, address: str, port_min: int, port_max: int, *, ptime_ms: int = 20,
                 rtp_timeout: float = 30.0, rtcp_interval: float = 5.0,
                 zone: str = "us") -> None:
        if zone not in ZONES:
            raise MediaError(f"tone zone {zone!r} is not one of {', '.join(ZONES)}")
        self._core = _call(_media.Engine, address, port_min, port_max, ptime_ms, rtp_timeout,
                           rtcp_interval)
        self._zone = zone
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_event: Callable[[MediaEvent], None] | None = None
        self._recs: dict[int, _Recording] = {}
        self._ports: dict[int, int] = {}        # stream -> RTP port, known from its opening
        self._random: list[int] = []            # 80 random bits for each of the next streams
        self._rec_lock = threading.Lock()
        self._writer_stop = threading.Event()
        self._writer: threading.Thread | None = None
        self._stopped = False
        self.dtls_sink: DtlsSink | None = None    # who takes DTLS datagrams (DTLS-SRTP)

    # ---------------------------------------------------------------- lifecycle

    def start(self, loop: asyncio.AbstractEventLoop,
              on_event: Callable[[MediaEvent], None]) -> None:
        """Start the media thread; events are delivered to on_event on loop's thread."""
        self._loop, self._on_event = loop, on_event
        _call(self._core.start)
        loop.add_reader(self._core.event_fd(), self._pump)
        self._writer = threading.Thread(target=self._write_loop, name="mediasrv-recorder",
                                        daemon=True)
        self._writer.start()

    def stop(self) -> None:
        """Join the media thread, close every stream, finalise recordings; idempotent."""
        if self._stopped:
            return
        self._stopped = True
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._core.event_fd())
        self._core.stop()
        self._ports.clear()
        self._writer_stop.set()
        if self._writer is not None:
            self._writer.join()
        self._drain_recordings(post=False)

    def thread_alive(self) -> bool:
        """True while the media thread (or the recording writer) runs."""
        return self._core.thread_alive() or bool(self._writer and self._writer.is_alive())

    def media_thread_ids(self) -> tuple[int, int] | None:
        """(pthread ident, kernel TID) of the media thread: for CPU pinning and accounting."""
        ids = self._core.thread_ids()
        return None if ids is None else (int(ids[0]), int(ids[1]))

    def _pump(self) -> None:
        recs = self._core.pop_events()
        for rec in recs:
            ev = _event(rec)
            if ev is not None:
                self._deliver(ev)
        if any(rec[0] == _EV_DTLS for rec in recs):
            for sid, rtcp, data, host, port in self._core.pop_dtls():
                if self.dtls_sink is not None:
                    self.dtls_sink(sid, bool(rtcp), data, host, port)

    # ---------------------------------------------------------------- sounds

    def load_sound(self, name: str, samples_8k_int16: np.ndarray,
                   samples_16k_int16: np.ndarray | None = None) -> None:
        """Register a prompt or beep (8 kHz mono int16) under name; its 16 kHz copy, if
        given, is what G.722/Opus legs hear."""
        wide = None if samples_16k_int16 is None else _as_pcm(samples_16k_int16)
        _call(self._core.load_sound, name, _as_pcm(samples_8k_int16), wide)

    def define_moh_class(self, name: str, samples_8k_int16: np.ndarray,
                         samples_16k_int16: np.ndarray | None = None) -> None:
        """Create or replace a hold-music class; an empty array plays silence. The 16 kHz
        copy, if given, is what G.722/Opus legs hear."""
        wide = None if samples_16k_int16 is None else _as_pcm(samples_16k_int16)
        _call(self._core.define_moh, name, _as_pcm(samples_8k_int16), wide)

    # ---------------------------------------------------------------- streams

    def open_stream(self, group: str | None = None, *, dtmf: str = "auto") -> int:
        """Bind a free even RTP port (+1 for RTCP); returns the stream id. It detects DTMF
        in mode `dtmf` and forwards RFC 4733 (as `set_dtmf(sid, mode=dtmf)`, in the same
        command). `group` (the call) matters only to a `MediaPool` of several engines."""
        if not self._random:
            raw = os.urandom(10 * _RANDOM_BATCH)
            self._random = [int.from_bytes(raw[i:i + 10]) for i in range(0, len(raw), 10)]
        bits = self._random.pop()     # SSRC and the first sequence number and timestamp
        sid, port = _call(self._core.open_stream, bits & 0xFFFFFFFF, (bits >> 32) & 0xFFFF,
                          bits >> 48, dtmf)
        self._ports[sid] = port
        return sid

    def local_port(self, sid: int) -> int:
        """The stream's RTP port (RTCP is this + 1); kept since its opening, it never
        changes (a stream moved to another engine keeps its port)."""
        try:
            return self._ports[sid]
        except KeyError:
            raise MediaError(f"no stream {sid}") from None

    def set_remote(self, sid: int, host: str, port: int, *, codec: str, pt: int,
                   event_pt: int | None) -> None:
        """The negotiated remote address, audio codec/PT and telephone-event PT (or None)."""
        if codec not in CODECS:
            raise MediaError(f"codec {codec!r} is not one of {', '.join(CODECS)}")
        for p in (pt, event_pt):
            if p is not None and not 0 <= p <= 127:
                raise MediaError(f"payload type {p} out of 0..127")
        ept = -1 if event_pt is None else event_pt
        _call(self._core.set_remote, sid, host, port, CODECS[codec], pt, ept)

    def set_srtp(self, sid: int, suite: str | None, *, rx_key: bytes = b"",
                 tx_key: bytes = b"", rtcp: bool = False) -> None:
        """SRTP on this stream (RFC 3711): what it receives is authenticated and decrypted
        with rx_key, what it sends encrypted with tx_key (master key||salt of suite, one of
        SRTP_SUITES); suite None = plain RTP. Refused packets count as srtp_auth_fail or
        srtp_replay in stats() and are dropped, never forwarded. rtcp=True keys the
        stream's RTCP alone (DTLS-SRTP's own RTCP association); else RTCP uses these."""
        _call(self._core.set_srtp, sid, suite, rx_key, tx_key, rtcp)

    def set_dtls(self, sid: int, on: bool) -> None:
        """DTLS-SRTP (RFC 5764): DTLS datagrams on the stream's ports go to `dtls_sink`."""
        _call(self._core.set_dtls, sid, on)

    def send_dtls(self, sid: int, rtcp: bool, data: bytes, host: str, port: int) -> None:
        """Send one DTLS datagram from the stream's RTP (or RTCP) port."""
        _call(self._core.send_dtls, sid, rtcp, data, host, port)

    def set_direction(self, sid: int, *, send: bool, recv: bool) -> None:
        """Hold styles: send=False stops our RTP, recv=False ignores theirs (no timeout)."""
        _call(self._core.set_direction, sid, send, recv)

    def close_stream(self, sid: int) -> dict[str, int]:
        """Close the stream and free its ports; a running recording is finished. Returns
        its final `stats()`."""
        out: dict[str, int] = _call(self._core.close_stream, sid)
        del self._ports[sid]
        return out

    def admits(self, now: float) -> bool:
        """A single engine takes every call (admission control is `MediaPool`'s)."""
        return True

    def detach_stream(self, sid: int) -> bytes:
        """Take the stream out of this engine, sockets open, for `attach_stream` (pool.py)."""
        blob = bytes(_call(self._core.detach_stream, sid))
        del self._ports[sid]
        return blob

    def attach_stream(self, state: bytes) -> int:
        """Install a stream detached from another engine; returns its id here."""
        sid = int(_call(self._core.attach_stream, state))
        self._ports[sid] = int(self._core.local_port(sid))
        return sid

    def open_stream_count(self) -> int:
        return int(self._core.open_stream_count())

    def load(self) -> dict[str, float]:
        """The media thread's rounds, rounds_behind (epoll rounds that came back full: it
        is saturated) and busy_seconds (time spent handling rounds); parked_pairs: closed
        streams' RTP/RTCP socket pairs kept bound for the next streams (not streams)."""
        return {k: float(v) for k, v in _call(self._core.load).items()}

    def stats(self, sid: int) -> dict[str, int]:
        """packets/bytes in/out, dropped, malformed, send_errors, lost, late, jitter (in
        timestamp units, RFC 3550 A.8), RTCP packets sent and received (rtcp_out, rtcp_in),
        SRTP packets refused (srtp_auth_fail, srtp_replay)."""
        out: dict[str, int] = _call(self._core.stats, sid)
        return out

    # ---------------------------------------------------------------- feeds

    def connect(self, a: int, b: int) -> None:
        """Two-party bridge, both directions (packets forwarded as they arrive)."""
        _call(self._core.connect, a, b)

    def conference(self, sids: list[int]) -> None:
        """Mix-minus among these streams; replaces their feeds."""
        _call(self._core.conference, list(sids))

    def play_moh(self, sid: int, moh_class: str) -> None:
        _call(self._core.play_moh, sid, moh_class)

    def play_prompt(self, sid: int, name: str) -> int:
        """Play a loaded sound once; PlayFinished(sid, play_id) follows."""
        return int(_call(self._core.play_prompt, sid, name))

    def play_tone(self, sid: int, tone: str) -> None:
        """"ringback" | "busy" | "beep" | "failed", in the engine's zone."""
        if tone not in TONES:
            raise MediaError(f"tone {tone!r} is not one of {', '.join(TONES)}")
        _call(self._core.play_tone, sid, self._zone, tone)

    def play_silence(self, sid: int) -> None:
        _call(self._core.set_feed, sid, "silence")

    def stop_feed(self, sid: int) -> None:
        """Send nothing (a prompt being played is reported as not completed)."""
        _call(self._core.set_feed, sid, "none")

    def feed(self, sid: int) -> str:
        """What the stream sends now (none, silence, peer, conference, moh, prompt, tone)."""
        return str(_call(self._core.feed, sid))

    # ---------------------------------------------------------------- DTMF, mute

    def set_dtmf(self, sid: int, *, mode: str = "auto", forward: bool = True) -> None:
        """Detection mode (rfc4733 | inband | auto) and whether RFC 4733 is forwarded."""
        _call(self._core.set_dtmf, sid, mode, forward)

    def set_mute(self, sid: int, muted: bool) -> None:
        """Replace the stream's inbound audio by silence toward whoever hears it."""
        _call(self._core.set_mute, sid, muted)

    def send_dtmf(self, sid: int, digit: str, duration_ms: int = 100) -> None:
        """Send a digit after any already queued (RFC 4733, or in-band without event PT)."""
        _call(self._core.send_dtmf, sid, digit, duration_ms)

    # ---------------------------------------------------------------- recording

    def record_start(self, sid: int, path: str, max_seconds: float) -> None:
        """Record the stream's inbound audio (a conference member: the whole mix) to path."""
        if max_seconds <= 0:
            raise MediaError("max_seconds must be positive")
        try:
            wav = wave.open(path, "wb")
        except OSError as exc:
            raise MediaError(f"cannot write {path}: {exc}") from exc
        wav.setnchannels(1)
        wav.setsampwidth(2)
        with self._rec_lock:
            try:
                rate = int(_call(self._core.stream_rate, sid))   # the leg's: 8 or 16 kHz
                wav.setframerate(rate)
                rec = _call(self._core.record_start, sid, max_seconds)
            except MediaError:
                wav.close()
                raise
            self._recs[rec] = _Recording(sid, path, wav, rate=rate)

    def record_stop(self, sid: int) -> None:
        """Stop recording; RecordingFinished follows once the file is complete."""
        _call(self._core.record_stop, sid)

    def _write_loop(self) -> None:
        while not self._writer_stop.wait(0.1):
            self._drain_recordings(post=True)

    def _drain_recordings(self, *, post: bool) -> None:
        with self._rec_lock:
            for rec_id, _sid, pcm, finished, overflow in self._core.drain_recordings():
                rec = self._recs[rec_id]
                rec.wav.writeframes(pcm)
                rec.samples += len(pcm) // 2
                if finished:
                    self._finish(self._recs.pop(rec_id), overflow, post)

    def _finish(self, rec: _Recording, overflow: int, post: bool) -> None:
        rec.wav.close()
        if overflow:
            log.error("recording %s lost %d samples (writer too slow)", rec.path, overflow)
        ev = RecordingFinished(rec.stream, rec.path, rec.samples / rec.rate)
        if post and self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._deliver, ev)
        else:
            self._deliver(ev)

    def _deliver(self, ev: MediaEvent) -> None:
        # One failing handler must not lose the events queued behind it.
        if self._on_event is None:
            return
        try:
            self._on_event(ev)
        except Exception:
            log.exception("media event handler failed on %r", ev)
