"""Drive a real baresip (Debian's 1.0.0) as a test phone: dial, answer, DTMF, transfer, hear.

How this works
--------------
``Baresip`` writes a private config directory and starts ``baresip -f DIR``:

* audio source ``ausine`` (a sine at the phone's identity tone, or at ``tone_hz``; ausine
  only makes 48 kHz stereo, baresip resamples to the codec's rate), audio player
  ``aubridge`` to a device no one reads (there is no sound card), and the ``sndfile``
  filter, which dumps every call's decoded receive audio to ``dump-<time>-dec.wav`` (at the
  codec's rate, before the player). That file is what baresip *heard*; ``heard_tones()``
  reads its tail (at 8 kHz) while the call runs, ``recording_wide()`` all of it.
* ``ctrl_tcp`` for commands and events: netstring-framed JSON, ``{"command", "params",
  "token"}`` in, ``{"response": true, "ok", "data", "token"}`` and ``{"event": true, "type",
  ...}`` out. The commands are the ``menu`` module's: dial, accept, hangup, hold, resume,
  sndcode (DTMF; RFC 4733 when telephone-event is negotiated), transfer (blind REFER).
* SIP listens on 127.0.0.1:PORT (UDP/TCP; baresip also takes PORT+1 for TLS, so the control
  port is picked apart from both). ``net_interface 127.0.0.1`` keeps SDP on loopback.
* One account: ``<sip:user@domain>`` registering every ``regint`` s through ``outbound``
  when a registrar is given (with ``auth_pass``), otherwise not registering at all.
* ``mediaenc``: the account's media encryption, ``srtp`` (SDES best effort: RTP/AVP with
  a=crypto), ``srtp-mand`` (RTP/SAVP, SDES only) or ``dtls_srtp``; its module is loaded.
* ``transport="tls"`` makes the outbound proxy ``;transport=tls`` (every request of the
  account goes over one TLS connection to the server) and ``cafile`` becomes ``sip_cafile``,
  the CA baresip's TLS client trusts.
"""

from __future__ import annotations

import asyncio
import json
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from tests.parallel import peer_ports
from tests.peers import audio
from tests.peers.require import require_binary

MODULES = ["g711.so", "g722.so", "opus.so", "ausine.so", "aubridge.so", "sndfile.so"]
APP_MODULES = ["account.so", "menu.so", "ctrl_tcp.so"]


def netstring(payload: bytes) -> bytes:
    """Frame ``payload`` as a netstring (``len:payload,``)."""
    return str(len(payload)).encode() + b":" + payload + b","


def pcm_of_wav(data: bytes) -> np.ndarray:
    """The int16 samples of a (possibly still open, header not final) 16-bit PCM WAV file."""
    at = data.find(b"data", 12)
    if at < 0:
        return np.zeros(0, dtype=np.int16)
    body = data[at + 8 :]
    return np.frombuffer(body[: len(body) // 2 * 2], dtype="<i2")


def wav_format(data: bytes) -> tuple[int, int]:
    """(sample rate, channels) from a WAV file's fmt chunk; (8000, 1) if it has none yet."""
    at = data.find(b"fmt ", 12)
    if at < 0 or len(data) < at + 16:
        return 8000, 1
    channels = int.from_bytes(data[at + 10 : at + 12], "little")
    return int.from_bytes(data[at + 12 : at + 16], "little"), max(channels, 1)


def resample_to(pcm: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Band-limited resampling by the FFT (for analysis only): keeps what is below both
    Nyquist frequencies, so a tone above the target's cannot alias into it."""
    if rate == target or len(pcm) == 0:
        return pcm
    n_out = len(pcm) * target // rate
    spectrum = np.fft.rfft(pcm.astype(np.float64))[: n_out // 2 + 1]
    return np.fft.irfft(spectrum, n_out) * (n_out / len(pcm))


class Baresip:
    """One baresip process with one account, driven over ctrl_tcp.

    ``tone`` is the identity tone baresip sends (a ``TONE_HZ`` name). ``registrar`` is the
    (host, port) to register with and send every request to; None = no registration, calls go
    straight to the dialled URI. ``answer`` is the account's answer mode (``auto``/``manual``).
    """

    def __init__(self, user: str = "bob", password: str | None = None, *, tone: str = "E",
                 registrar: tuple[str, int] | None = None, domain: str | None = None,
                 answer: str = "auto", regint: int = 300, codecs: str = "PCMU,PCMA",
                 tone_hz: int | None = None, mediaenc: str | None = None,
                 transport: str = "udp", cafile: str | None = None) -> None:
        self.binary = require_binary("baresip")
        self.user, self.password, self.tone = user, password, tone
        self.codecs, self.tone_hz = codecs, tone_hz or audio.TONE_HZ[tone]
        self.registrar = registrar
        self.domain = domain or (registrar[0] if registrar else "127.0.0.1")
        self.answer_mode, self.regint = answer, regint
        self.mediaenc = mediaenc
        self.transport, self.cafile = transport, cafile
        # SIP on UDP and TCP (TLS on + 1), ctrl_tcp and RTP: this xdist worker's own ports
        self.sip_port = peer_ports()
        self.ctrl_port = self.sip_port + 2
        self.rtp_ports = (self.sip_port + 8, self.sip_port + 15)
        self.dir = Path(tempfile.mkdtemp(prefix=f"baresip-{user}-"))
        self.events: list[dict[str, Any]] = []
        self._proc: asyncio.subprocess.Process | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._token = 0

    @property
    def uri(self) -> str:
        """Where baresip can be called directly."""
        return f"sip:{self.user}@127.0.0.1:{self.sip_port}"

    @property
    def log(self) -> str:
        """baresip's console output so far (for failure messages)."""
        path = self.dir / "baresip.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _config(self) -> str:
        lines = ["poll_method epoll", f"sip_listen 127.0.0.1:{self.sip_port}",
                 "net_interface 127.0.0.1", f"audio_source ausine,{self.tone_hz}",
                 "audio_player aubridge,nowhere", "audio_alert aubridge,nowhere",
                 "ausrc_srate 48000", "ausrc_channels 2", "module_path /usr/lib/baresip/modules",
                 f"ctrl_tcp_listen 127.0.0.1:{self.ctrl_port}", f"snd_path {self.dir}",
                 "rtp_ports {}-{}".format(*self.rtp_ports)]
        if self.cafile:
            lines.append(f"sip_cafile {self.cafile}")
        modules = MODULES + ([f"{self.mediaenc.split('-')[0]}.so"] if self.mediaenc else [])
        lines += [f"module {m}" for m in modules] + [f"module_app {m}" for m in APP_MODULES]
        return "\n".join(lines) + "\n"

    def _account(self) -> str:
        params = [f"answermode={self.answer_mode}", f"audio_codecs={self.codecs}"]
        if self.registrar:
            host, port = self.registrar
            suffix = f";transport={self.transport}" if self.transport != "udp" else ""
            params += [f'outbound="sip:{host}:{port}{suffix}"', f"regint={self.regint}"]
        else:
            params.append("regint=0")
        if self.password is not None:
            params.append(f"auth_pass={self.password}")
        if self.mediaenc:
            params.append(f"mediaenc={self.mediaenc}")
        return f"<sip:{self.user}@{self.domain}>;" + ";".join(params) + "\n"

    async def start(self, timeout: float = 5.0) -> Baresip:
        """Write the config, start baresip and connect to its control port."""
        (self.dir / "config").write_text(self._config())
        (self.dir / "accounts").write_text(self._account())
        with open(self.dir / "baresip.log", "wb") as log:
            self._proc = await asyncio.create_subprocess_exec(
                self.binary, "-f", str(self.dir), stdin=asyncio.subprocess.DEVNULL,
                stdout=log, stderr=asyncio.subprocess.STDOUT)
        reader = await self._connect(timeout)
        self._reader_task = asyncio.create_task(self._read_loop(reader))
        return self

    async def _connect(self, timeout: float) -> asyncio.StreamReader:
        deadline = time.monotonic() + timeout
        while True:
            try:
                reader, self._writer = await asyncio.open_connection("127.0.0.1", self.ctrl_port)
                return reader
            except OSError:
                if time.monotonic() > deadline or (self._proc and self._proc.returncode):
                    raise AssertionError(f"baresip did not start:\n{self.log[-3000:]}") from None
                await asyncio.sleep(0.05)

    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        while True:
            try:
                length = int((await reader.readuntil(b":"))[:-1])
                payload = await reader.readexactly(length + 1)  # + the trailing ','
            except (asyncio.IncompleteReadError, ValueError, ConnectionError):
                return
            self._dispatch(json.loads(payload[:-1]))

    def _dispatch(self, message: dict[str, Any]) -> None:
        if message.get("event"):
            message["t"] = time.monotonic()
            self.events.append(message)
        future = self._pending.pop(str(message.get("token")), None)
        if message.get("response") and future and not future.done():
            future.set_result(message)

    async def command(self, name: str, params: str | None = None,
                      timeout: float = 5.0) -> dict[str, Any]:
        """Run a baresip command; returns its response (``ok``, ``data``)."""
        assert self._writer is not None, "start() first"
        self._token += 1
        token = str(self._token)
        request: dict[str, Any] = {"command": name, "token": token}
        if params is not None:
            request["params"] = params
        future = asyncio.get_running_loop().create_future()
        self._pending[token] = future
        self._writer.write(netstring(json.dumps(request).encode()))
        await self._writer.drain()
        return await asyncio.wait_for(future, timeout)

    async def wait_event(self, type_: str, timeout: float = 5.0, since: int = 0) -> dict[str, Any]:
        """The first event of ``type_`` (e.g. ``CALL_ESTABLISHED``) at index >= ``since``."""
        deadline = time.monotonic() + timeout
        while True:
            found = [e for e in self.events[since:] if e.get("type") == type_]
            if found:
                return found[0]
            if time.monotonic() > deadline:
                seen = [e.get("type") for e in self.events]
                raise AssertionError(f"baresip {self.user}: no {type_} (events {seen})\n"
                                     f"{self.log[-2000:]}")
            await asyncio.sleep(0.02)

    async def registered(self) -> bool:
        """True when the account's registration is in force (``reginfo`` says OK)."""
        data = (await self.command("reginfo")).get("data", "")
        return any(e.get("type") == "REGISTER_OK" for e in self.events) or " OK " in re.sub(
            r"\x1b\[[0-9;]*m", " ", data)

    async def wait_registered(self, timeout: float = 5.0) -> None:
        """Wait for the registration (it may finish before the control link is up)."""
        deadline = time.monotonic() + timeout
        while not await self.registered():
            if time.monotonic() > deadline:
                raise AssertionError(f"baresip {self.user} did not register\n{self.log[-2000:]}")
            await asyncio.sleep(0.05)

    async def dial(self, uri: str) -> dict[str, Any]:
        """Start a call to ``uri``."""
        return await self.command("dial", uri)

    async def answer(self) -> dict[str, Any]:
        """Accept the incoming call (answer mode ``manual``)."""
        return await self.command("accept")

    async def hangup(self) -> dict[str, Any]:
        """Hang up the current call."""
        return await self.command("hangup")

    async def hold(self) -> dict[str, Any]:
        """Put the current call on hold (re-INVITE sendonly)."""
        return await self.command("hold")

    async def resume(self) -> dict[str, Any]:
        """Take the current call off hold."""
        return await self.command("resume")

    async def send_dtmf(self, digits: str, gap: float = 0.25) -> None:
        """Send DTMF digits one by one (``sndcode``)."""
        for digit in digits:
            await self.command("sndcode", digit)
            await asyncio.sleep(gap)

    async def transfer(self, uri: str) -> dict[str, Any]:
        """Blind transfer of the current call to ``uri`` (REFER)."""
        return await self.command("transfer", uri)

    def recording_wide(self) -> tuple[np.ndarray, int]:
        """What baresip received on its latest call, at the decoder's rate (8 kHz for G.711,
        16 kHz for G.722, 48 kHz for Opus), first channel: (samples, rate)."""
        dumps = sorted(self.dir.glob("dump-*-dec.wav"), key=lambda p: p.stat().st_mtime)
        if not dumps:
            return np.zeros(0, dtype=np.int16), 8000
        data = dumps[-1].read_bytes()
        rate, channels = wav_format(data)
        pcm = pcm_of_wav(data)
        return pcm[: len(pcm) // channels * channels : channels], rate

    def recording(self) -> np.ndarray:
        """What baresip received on its latest call, at 8 kHz (int16 values), read live."""
        pcm, rate = self.recording_wide()
        return resample_to(pcm, rate, audio.RATE)

    def heard_tones(self, seconds: float = 0.3) -> set[str]:
        """Identity tones in the last ``seconds`` of the latest call's received audio."""
        tail = self.recording()[-int(seconds * audio.RATE) :]
        return audio.tones_in(tail) if len(tail) >= 3 * audio.FRAME else set()

    async def wait_hearing(self, expected: set[str], timeout: float = 3.0) -> None:
        """Wait until baresip hears exactly the identity tones ``expected``."""
        deadline = time.monotonic() + timeout
        while self.heard_tones() != expected:
            if time.monotonic() > deadline:
                raise AssertionError(f"baresip {self.user} hears {self.heard_tones()}, "
                                     f"expected {expected}")
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        """Quit baresip (kill it if it does not go within 2 s) and close the control link."""
        if self._proc and self._proc.returncode is None:
            if self._writer:  # baresip may exit before it answers: do not wait for a response
                self._writer.write(netstring(b'{"command": "quit"}'))
            try:
                await asyncio.wait_for(self._proc.wait(), 2.0)
            except TimeoutError:
                self._proc.kill()
                await self._proc.wait()
        if self._writer:
            self._writer.close()
        if self._reader_task:
            self._reader_task.cancel()

    async def __aenter__(self) -> Baresip:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
