"""The machine's sound card as 20 ms frames of 8 kHz PCM (sounddevice over PortAudio).

How this works: one thread opens a PortAudio input and output stream (8 kHz, mono, int16, in
blocking mode) and runs a 20 ms clock of its own: each tick it reads one frame from the card
into `captured` (a bounded queue the RTP sender drains) and writes one frame from `playback`
(or silence) to the card. The thread keeps time itself rather than let the card's callbacks
pace it, because some devices have no clock (ALSA's null and file plugins, as the tests use,
run as fast as they are driven); on a real card the two clocks agree closely and PortAudio's
buffers take up the drift. Queues are bounded: a frame that finds its queue full is dropped,
so a stalled consumer costs audio, never memory.
"""

from __future__ import annotations

import importlib
import logging
import queue
import threading
import time
from types import ModuleType
from typing import Any

log = logging.getLogger("mediasrv.console")

SAMPLE_RATE = 8000
FRAME = 160  # samples per 20 ms
FRAME_BYTES = 2 * FRAME
QUEUE_FRAMES = 10  # 200 ms either way
SILENCE = bytes(FRAME_BYTES)


class ConsoleAudioError(Exception):
    """The sound card cannot be used (no sounddevice/PortAudio, no such device)."""


def sounddevice() -> ModuleType:
    """The optional `sounddevice` module, or a `ConsoleAudioError` saying how to get it."""
    try:
        return importlib.import_module("sounddevice")
    except (ImportError, OSError) as exc:  # OSError: the PortAudio library is missing
        raise ConsoleAudioError("the console needs the 'console' extra (pip install "
                                "'mediasrv[console]') and PortAudio (Debian: libportaudio2): "
                                f"{exc}") from exc


def _device(name: str) -> str | int | None:
    if not name:
        return None
    return int(name) if name.isdigit() else name


class SoundCard:
    """Frames to and from the sound card on a thread with its own 20 ms clock."""

    def __init__(self, input_device: str = "", output_device: str = "") -> None:
        self.input_device = _device(input_device)
        self.output_device = _device(output_device)
        self.captured: queue.Queue[bytes] = queue.Queue(QUEUE_FRAMES)
        self.playback: queue.Queue[bytes] = queue.Queue(QUEUE_FRAMES)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Opens both streams (errors raise here, in the caller) and starts the clock."""
        sd = sounddevice()
        try:
            rec = sd.RawInputStream(samplerate=SAMPLE_RATE, blocksize=FRAME, channels=1,
                                    dtype="int16", device=self.input_device)
            play = sd.RawOutputStream(samplerate=SAMPLE_RATE, blocksize=FRAME, channels=1,
                                      dtype="int16", device=self.output_device)
            rec.start()
            play.start()
        except (sd.PortAudioError, ValueError) as exc:
            raise ConsoleAudioError(f"sound card: {exc}") from exc
        self._thread = threading.Thread(target=self._run, args=(rec, play),
                                        name="mediasrv-console", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stops the clock and closes both streams; idempotent."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
            self._thread = None

    def play(self, pcm: bytes) -> None:
        """Queues one frame for the card (dropped if 200 ms are already waiting)."""
        try:
            self.playback.put_nowait(pcm)
        except queue.Full:
            pass

    def flush(self) -> None:
        """Drops queued audio both ways (a call ended)."""
        for q in (self.captured, self.playback):
            while not q.empty():
                q.get_nowait()

    def _run(self, rec: Any, play: Any) -> None:  # sounddevice Raw*Streams
        next_tick = time.monotonic()
        try:
            while not self._stop.is_set():
                next_tick += FRAME / SAMPLE_RATE
                self._stop.wait(max(0.0, next_tick - time.monotonic()))
                self._tick(rec, play)
        except Exception:  # the device went away: calls go on, silent
            log.exception("console sound card failed; the console is silent from now on")
        finally:
            for stream in (rec, play):
                stream.stop()
                stream.close()

    def _tick(self, rec: Any, play: Any) -> None:
        data, _overflow = rec.read(FRAME)
        try:
            self.captured.put_nowait(bytes(data))
        except queue.Full:
            pass
        try:
            out = self.playback.get_nowait()
        except queue.Empty:
            out = SILENCE
        play.write(out)
