"""Failover: what happens when an extension does not take a call (transfer spec, "Failover").

How this works: `condition_for_status()` maps a SIP final status to one of the three
conditions (486/600 busy; 408/480 no answer; 404 not registered — a ring timeout is "no
answer" and an extension with no live binding is "not registered" without any SIP at all).
`resolve()` follows the extension's action for that condition; a `forward` is followed
through the target's own table, at most `MAX_HOPS` times, so the caller gets the final plan:
a list of extensions to try in order and the action that ends the chain.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mediasrv.config import Extension, FailoverAction

BUSY, NO_ANSWER, NOT_REGISTERED = "busy", "no_answer", "not_registered"
MAX_HOPS = 5

# Final statuses answered to an ordinary caller when the chain ends in "return"/"hangup".
CONDITION_STATUS = {BUSY: (486, "Busy Here"), NO_ANSWER: (480, "Temporarily Unavailable"),
                    NOT_REGISTERED: (480, "Temporarily Unavailable")}

_STATUS_CONDITION = {486: BUSY, 600: BUSY, 408: NO_ANSWER, 480: NO_ANSWER, 404: NOT_REGISTERED}


def condition_for_status(status: int) -> str:
    """The failover condition of a final non-2xx answer; other failures count as no answer."""
    return _STATUS_CONDITION.get(status, NO_ANSWER)


@dataclass(frozen=True)
class Step:
    """After `extension` failed with `condition`, do `action` (with `to` = next extension)."""

    extension: str
    condition: str
    action: FailoverAction


def next_step(extensions: Mapping[str, Extension], extension: str, condition: str,
              hops: int) -> Step:
    """The action to take; a forward past `MAX_HOPS` becomes a plain `return`."""
    ext = extensions.get(extension)
    action = ext.failover.get(condition) if ext else None
    action = action or FailoverAction("return")
    if action.action == "forward" and (hops >= MAX_HOPS or action.to not in extensions):
        action = FailoverAction("return")
    return Step(extension, condition, action)
