"""Tags and branches: cut from a pool of OS randomness, never repeated."""

from __future__ import annotations

import os
import re

import pytest

from mediasrv.sip.uri import _RandomHex, generate_branch, generate_tag


def test_tags_and_branches_have_their_bits_and_never_repeat() -> None:
    n = 3 * _RandomHex.POOL  # several pool refills
    tags = [generate_tag() for _ in range(n)]
    branches = [generate_branch() for _ in range(n)]
    assert all(re.fullmatch(r"[0-9a-f]{16}", t) for t in tags)  # 64 bits (§19.3)
    assert all(re.fullmatch(r"z9hG4bK[0-9a-f]{24}", b) for b in branches)  # 96 bits
    assert len(set(tags)) == n and len(set(branches)) == n


def test_a_pool_hands_out_each_digit_once(monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[bytes] = []
    def urandom(n: int) -> bytes:
        reads.append(bytes(range(256)) * (n // 256))
        return reads[-1]
    monkeypatch.setattr(os, "urandom", urandom)
    pool = _RandomHex()
    per_read = 2 * pool.POOL // 16
    parts = [pool.take(16) for _ in range(per_read)]
    assert len(reads) == 1 and "".join(parts) == reads[0].hex()  # all of it, in order
    pool.take(16)
    assert len(reads) == 2  # then a new read, never a digit twice


def test_a_forked_child_does_not_repeat_its_parent() -> None:
    generate_tag()  # the pool is filled before the fork
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.write(write, generate_tag().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    assert len(child) == 16 and child != generate_tag()
