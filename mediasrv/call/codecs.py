"""Which codecs a leg may use, and in which order we offer them (RFC 3264 §5, §6.1).

How this works: the server's `rtp.codecs` is the default order; an extension's own
`codecs` (desk phones with G.722, softphones with Opus, a trunk kept to G.711) replaces it
for legs of that extension. Answers keep the offerer's preference among what the leg may
use (`sip.sdp.negotiate` walks the offer's formats in order). When we offer to a callee we
put the caller's negotiated codec first, when the callee may use it: if the callee takes it
the engine relays packets unchanged instead of transcoding each one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mediasrv.config import Config, Extension

if TYPE_CHECKING:
    from mediasrv.call.leg import SipLeg


def allowed(config: Config, extension: Extension | None) -> list[str]:
    """The codecs a leg of `extension` (None: not one of ours) may use, in preference order."""
    if extension is not None and extension.codecs:
        return list(extension.codecs)
    return list(config.rtp.codecs)


def offer_order(config: Config, leg: SipLeg) -> list[str]:
    """Our offer to `leg`'s phone: its allowed codecs, the caller's codec first when allowed."""
    codecs = allowed(config, leg.extension)
    caller = leg.caller.media.codec if leg.caller and leg.caller.media else None
    if caller in codecs:
        codecs.remove(caller)
        codecs.insert(0, caller)
    return codecs
