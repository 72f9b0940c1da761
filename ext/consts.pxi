# Constants shared by the media kernels (H3) and usable by the engine.
# Included once from _media.pyx, before the components. Cython 3 deprecates DEF,
# so compile-time constants are an anonymous cdef enum.

cdef enum:
    MS_SAMPLE_RATE = 8000        # G.711 narrowband clock (Hz)
    MS_FRAME_SAMPLES = 160       # one 20 ms frame at 8 kHz
    MS_FRAME_MS = 20
