"""The console extension: the sound card as a phone, driven through an ALSA file device.

ALSA's `file` plugin over its `null` device stands in for a sound card: capture reads
`in.raw` (a 3300 Hz tone, a frequency no test phone or server tone uses), playback is written
to `out.raw`. The ALSA configuration is set once per session, before PortAudio first loads.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from mediasrv.config import DEFAULT_CONFIG_DIR, DEFAULT_PLUGIN_DIR, load_config
from mediasrv.server import Server, StartupError
from tests.integration.conftest import site_config, wait_until
from tests.ops.conftest import OpsHarness
from tests.peers import audio

CONSOLE_HZ = 3300
SITE = ('[console]\nextension = "109"\ninput_device = "console_in"\n'
        'output_device = "console_out"\n')

pytestmark = pytest.mark.site(SITE)


@pytest.fixture(scope="session")
def alsa_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ALSA configuration and the capture file, written once per session (PortAudio
    reads the configuration when it first loads)."""
    folder = tmp_path_factory.mktemp("alsa")
    write_alsa_config(folder)
    os.environ["ALSA_CONFIG_PATH"] = str(folder / "asound.conf")
    return folder


def write_alsa_config(folder: Path) -> None:
    t = np.arange(8000 * 60) / 8000  # a minute of tone: more than any test needs
    (folder / "in.raw").write_bytes(
        (np.sin(2 * np.pi * CONSOLE_HZ * t) * 8000).astype("<i2").tobytes())
    (folder / "asound.conf").write_text(f"""</usr/share/alsa/alsa.conf>
pcm.console_out {{
    type file
    slave.pcm "null"
    file "{folder}/out.raw"
    format "raw"
}}
pcm.console_in {{
    type file
    slave.pcm "null"
    file "/dev/null"
    infile "{folder}/in.raw"
    format "raw"
}}
""")


@pytest.fixture(autouse=True)
def alsa(alsa_dir: Path) -> None:
    if os.environ.get("CI") != "true":
        pytest.importorskip("sounddevice")  # under CI a missing extra fails the test


def played(alsa_dir: Path, seconds: float = 0.5) -> np.ndarray:
    """The last `seconds` the console played to its 'sound card'."""
    data = (alsa_dir / "out.raw").read_bytes()
    n = int(8000 * seconds) * 2
    return np.frombuffer(data[len(data) - n:], dtype="<i2")


def card_hears(alsa_dir: Path, freq: float) -> bool:
    pcm = played(alsa_dir)
    return len(pcm) > 0 and bool(audio.amplitude_at(pcm, [freq])[0] > 1000)


async def test_a_phone_calls_the_console(ops: OpsHarness, alsa_dir: Path) -> None:
    assert ops.server.console is not None and ops.server.console.registered.is_set()
    regs = await ops.api.get_json("/v1/registrations")
    assert "109" in [r["extension"] for r in regs]
    a = await ops.phone("A", "101")
    call = await a.call(ops.uri("109"))
    assert await call.wait_final() == 200  # the console answers at once
    await wait_until(lambda: a.hears_freqs([CONSOLE_HZ]), 3, "A to hear the sound card")
    await wait_until(lambda: card_hears(alsa_dir, audio.TONE_HZ["A"]), 3, "the card to play A")
    console = await ops.api.get_json("/v1/console")
    assert console == {"extension": "109", "registered": True, "state": "talking",
                       "peer": "101"}
    await call.hangup()
    await wait_until(lambda: ops.server.console.state == "idle", 3, "the console to hang up")


async def test_the_console_dials_and_hangs_up_through_the_api(ops: OpsHarness,
                                                              alsa_dir: Path) -> None:
    b = await ops.phone("B", "102")
    reply = await ops.api.request("POST", "/v1/console/dial", {"number": "102"})
    assert reply.status == 202 and reply.json()["state"] == "calling"
    assert (await ops.api.request("POST", "/v1/console/dial", {"number": "103"})).status == 409
    await wait_until(lambda: b.active_calls() and b.active_calls()[0].state == "confirmed", 5,
                     "B to answer the console")
    b_call = b.active_calls()[0]
    await wait_until(lambda: b.hears_freqs([CONSOLE_HZ]), 3, "B to hear the sound card")
    await wait_until(lambda: card_hears(alsa_dir, audio.TONE_HZ["B"]), 3, "the card to play B")
    assert (await ops.api.get_json("/v1/console"))["state"] == "talking"
    reply = await ops.api.request("POST", "/v1/console/hangup")
    assert reply.json() == {"extension": "109", "registered": True, "state": "idle",
                            "peer": None}
    await b_call.wait_state("terminated")


async def test_bad_dial_requests(ops: OpsHarness) -> None:
    assert (await ops.api.request("POST", "/v1/console/dial", {"number": ""})).status == 422
    assert (await ops.api.request("POST", "/v1/console/dial", {})).status == 422
    reply = await ops.api.request("POST", "/v1/console/dial", {"number": "104"})  # unregistered
    assert reply.status == 202
    await wait_until(lambda: ops.server.console.state == "idle", 5, "the failed call to end")


@pytest.mark.site("")
async def test_no_console_configured(ops: OpsHarness) -> None:
    assert ops.server.console is None
    assert (await ops.api.get("/v1/console")).status == 404


async def test_console_extension_must_exist(tmp_path: Path) -> None:
    site = site_config(tmp_path, SITE.replace('"109"', '"555"'))
    server = Server(load_config([DEFAULT_CONFIG_DIR, site], DEFAULT_PLUGIN_DIR))
    with pytest.raises(StartupError, match="console: console.extension '555'"):
        await server.start()
    assert server.engine is None  # everything started was released
