"""Per-server and per-extension codec order, and the offer order towards a callee."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from mediasrv.call.codecs import allowed, offer_order
from mediasrv.config import ConfigError, load_config


def _config(tmp_path: Path, text: str):
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "00.toml").write_text(text)
    (tmp_path / "plugins").mkdir()
    return load_config([conf], plugin_dir=tmp_path / "plugins")


SITE = """
[rtp]
codecs = ["opus", "G722", "PCMU"]
[extensions.100]
password = "x"
[extensions.101]
password = "x"
codecs = ["PCMA", "pcmu"]
"""


def test_extension_order_replaces_the_servers(tmp_path: Path) -> None:
    cfg = _config(tmp_path, SITE)
    assert cfg.rtp.codecs == ("OPUS", "G722", "PCMU")
    assert allowed(cfg, cfg.extensions["100"]) == ["OPUS", "G722", "PCMU"]
    assert allowed(cfg, cfg.extensions["101"]) == ["PCMA", "PCMU"]
    assert allowed(cfg, None) == ["OPUS", "G722", "PCMU"]


def test_callee_offer_puts_the_callers_codec_first_when_allowed(tmp_path: Path) -> None:
    cfg = _config(tmp_path, SITE)
    caller = SimpleNamespace(media=SimpleNamespace(codec="PCMU"))
    leg = SimpleNamespace(extension=cfg.extensions["100"], caller=caller)
    assert offer_order(cfg, leg) == ["PCMU", "OPUS", "G722"]          # relay possible
    leg = SimpleNamespace(extension=cfg.extensions["101"],
                          caller=SimpleNamespace(media=SimpleNamespace(codec="OPUS")))
    assert offer_order(cfg, leg) == ["PCMA", "PCMU"]                  # not allowed there
    leg = SimpleNamespace(extension=replace(cfg.extensions["100"], codecs=()), caller=None)
    assert offer_order(cfg, leg) == ["OPUS", "G722", "PCMU"]


def test_bad_codec_lists_are_file_key_reason(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        _config(tmp_path, '[rtp]\ncodecs = ["G722", "g722"]\n'
                          '[extensions.100]\npassword = "x"\ncodecs = ["SILK"]\n')
    text = str(info.value)
    assert "rtp.codecs[1]: codec 'g722' is listed twice" in text
    assert "extensions.100.codecs[0]: unknown codec 'SILK'" in text
