"""Builds the media core, mediasrv._media, from the Cython sources in ext/.

`ext/_media.pyx` is the one extension module; it `include`s one .pyx per component
(g711, dtmf, engine, ...), as uvloop does, so they share C-level functions without a
Python call between them. Build knobs come from the environment:

  MEDIASRV_ANNOTATE=1   write Cython's HTML annotation next to each source
  MEDIASRV_DEBUG=1      build with -O0 -g and Cython's bounds/wraparound checks on

There is deliberately no pure-Python fallback: without a C compiler or Cython the
build stops with an error saying so.
"""

import os
import sys

from setuptools import Extension, setup


def _fail(msg: str) -> None:
    sys.stderr.write(f"\nmediasrv build error: {msg}\n\n")
    raise SystemExit(1)


try:
    from Cython.Build import cythonize
except ImportError:
    _fail("Cython >=3.1 is needed to build mediasrv._media (pip install 'Cython>=3.1,<4').")
try:
    import numpy
except ImportError:
    _fail("numpy is needed to build mediasrv._media (pip install 'numpy>=2.0,<2.5').")

DEBUG = os.environ.get("MEDIASRV_DEBUG") == "1"

ext = Extension(
    "mediasrv._media",
    sources=["ext/_media.pyx"],
    include_dirs=[numpy.get_include(), "ext"],
    libraries=["opus", "srtp2", "crypto"],  # libopus-dev, libsrtp2-dev, libssl-dev (ext/*.pyx)
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"), ("_GNU_SOURCE", "1"),
                   ("OPENSSL_SUPPRESS_DEPRECATED", "1")],   # SHA1_* (srtp_primitives.pyx)
    extra_compile_args=["-O0", "-g"] if DEBUG else ["-O3", "-fno-strict-aliasing"],
)

setup(
    ext_modules=cythonize(
        [ext],
        language_level=3,
        annotate=os.environ.get("MEDIASRV_ANNOTATE") == "1",
        compiler_directives={
            "boundscheck": DEBUG,
            "wraparound": DEBUG,
            "cdivision": True,
            "initializedcheck": DEBUG,
            "embedsignature": True,
        },
    ),
)
