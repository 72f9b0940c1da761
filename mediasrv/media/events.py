"""Events the media engine reports to the call layer.

How this works: the engine thread queues small C records and wakes the asyncio loop through
one eventfd; `mediasrv.media.engine.MediaEngine` turns each record into one of these frozen,
past-tense dataclasses (the aioquic / h11 style) and hands it to the `on_event` callback.
Times are `time.monotonic()` seconds, comparable with `loop.time()`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MediaEvent:
    """Base class of every engine event; `stream` is the stream id it concerns."""

    stream: int


@dataclass(frozen=True, slots=True)
class DtmfReceived(MediaEvent):
    """A digit ended (or outlasted the long-press limit) on a stream's inbound media."""

    digit: str
    duration_ms: int
    source: str  # "rfc4733" | "inband"
    time: float


@dataclass(frozen=True, slots=True)
class FirstPacketReceived(MediaEvent):
    """The first RTP packet accepted on a stream (after latching, from host:port)."""

    host: str
    port: int


@dataclass(frozen=True, slots=True)
class RtpTimedOut(MediaEvent):
    """No RTP for the configured timeout on a stream that expects it."""


@dataclass(frozen=True, slots=True)
class PlayFinished(MediaEvent):
    """A prompt ended: played to the end (completed) or replaced/stopped (not completed)."""

    play_id: int
    completed: bool = True


@dataclass(frozen=True, slots=True)
class RecordingFinished(MediaEvent):
    """A recording stopped (record_stop, max length or stream closed); its WAV is final."""

    path: str
    seconds: float
