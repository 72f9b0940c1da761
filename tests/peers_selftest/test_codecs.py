"""The test phone's wideband codecs (spandsp G.722, libopus) carry a tone, packet by packet."""

import numpy as np
import pytest

from tests.peers import audio, codecs


@pytest.mark.parametrize(("name", "ptime"), [("G722", 20), ("G722", 30), ("OPUS", 20),
                                             ("OPUS", 10), ("OPUS", 40), ("PCMU", 30)])
def test_a_tone_survives_encode_and_decode(name: str, ptime: int) -> None:
    codec = codecs.make(name)
    src = audio.ToneSource([audio.TONE_HZ["B"]])
    try:
        out = [codec.decode(codec.encode(src.frame(codec.rate * ptime // 1000, codec.rate)))
               for _ in range(1000 // ptime)]
    finally:
        codec.close()
    assert all(len(frame) == 8 * ptime for frame in out)      # 8 kHz for the Hearing
    tail = np.concatenate(out)[-2400:]
    assert audio.tones_in(tail) == {"B"}
    assert audio.amplitude_at(tail, [audio.TONE_HZ["B"]])[0] > 6000


def test_g722_payload_is_one_byte_per_two_samples_and_opus_is_compressed() -> None:
    g722, opus = codecs.make("G722"), codecs.make("OPUS")
    pcm = audio.sine([1000], 320, rate=16000)
    try:
        assert len(g722.encode(pcm)) == 160
        assert 10 < len(opus.encode(pcm)) < 160
    finally:
        g722.close()
        opus.close()


def test_rtpmap_names() -> None:
    assert codecs.name_of("opus/48000/2") == "OPUS"
    assert codecs.name_of("G722/8000") == "G722"
    assert codecs.name_of("G722/16000") is None        # G.722's RTP clock is 8000
    assert codecs.name_of("telephone-event/8000") is None
