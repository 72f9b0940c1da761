"""Voicemail: greeting, beep, then the caller's audio recorded to the mailbox.

How this works (the `voicemail` failover action of the transfer spec): the caller hears the
`vm-greeting` prompt, then `beep`, then the engine records the caller's inbound audio to
`<storage dir>/voicemail/<mailbox>/<time>-<caller>.wav` until the caller hangs up or the
mailbox's `voicemail_max_seconds` pass. When the engine reports the recording finished, one
index row is written to SQLite and, if the caller is still there, the leg is hung up — unless
the recording was interrupted by a new media action on the leg (a service reconnecting it, e.g.
`*0` while the transferer talks to the addressee's voicemail): then the message is kept and the
leg stays up.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from mediasrv.call.leg import SipLeg
from mediasrv.call.legs import Legs
from mediasrv.call.store import Store
from mediasrv.logs import call_logger
from mediasrv.media.events import RecordingFinished

log = logging.getLogger("mediasrv.voicemail")


class Voicemail:
    def __init__(self, legs: Legs, store: Store, leg: SipLeg, mailbox: str) -> None:
        self.legs, self.store, self.leg, self.mailbox = legs, store, leg, mailbox
        ext = legs.config.extensions.get(mailbox)
        self.max_seconds = ext.voicemail_max_seconds if ext else 120.0
        self.log = call_logger(log, leg.call_id)
        self.interrupted = False

    def start(self) -> None:
        self.legs.play_prompt(self.leg, "vm-greeting", then=self._beep)

    def _beep(self) -> None:
        self.legs.play_prompt(self.leg, "beep", then=self._record)

    def _record(self) -> None:
        if self.leg.ended:
            return
        folder = self.legs.config.storage.path.parent / "voicemail" / self.mailbox
        folder.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(self.legs.clock.wall()))
        path = folder / f"{stamp}-{self.leg.number}.wav"
        self.legs.topology.silence(self.leg)
        self.legs.recordings[self.leg.stream] = self
        self.legs.engine.record_start(self.leg.stream, str(path), self.max_seconds)
        self.log.info("recording a message from %s for %s to %s", self.leg.number,
                      self.mailbox, path)

    def interrupt(self) -> None:
        """Stop recording because the leg is given something else to hear."""
        self.interrupted = True
        self.legs.engine.record_stop(self.leg.stream)

    def finished(self, event: RecordingFinished) -> None:
        self.store.add_voicemail(self.mailbox, self.leg.number, str(Path(event.path)),
                                 event.seconds, self.legs.clock.wall())
        self.log.info("message for %s saved (%.1f s)", self.mailbox, event.seconds)
        if not self.leg.ended and not self.interrupted:
            self.legs.hangup(self.leg)
