# cython: language_level=3
"""mediasrv._media: the media core.

How this works: one extension module; each component is its own .pyx file included
here, so the engine can call the kernels as C functions with the GIL released.
Nothing here imports any other part of mediasrv.
"""

include "consts.pxi"
include "g711.pyx"
include "g722.pyx"
include "opus.pyx"
include "dtmf.pyx"
include "tone.pyx"
include "mixer.pyx"
include "rfc4733.pyx"
include "jitter.pyx"
include "engine.pyx"
