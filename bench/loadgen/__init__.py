"""Our RTP load generator (rtpload.pyx), compiled on first use by the benchmarks.

build() compiles rtpload.pyx next to itself with Cython when the .so is missing or older
than the source, and returns the module. It is a separate extension from mediasrv._media
on purpose: the product never ships it.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).parent
_SETUP = (
    "from setuptools import setup, Extension; from Cython.Build import cythonize; "
    "setup(ext_modules=cythonize([Extension('rtpload', ['rtpload.pyx'], "
    "extra_compile_args=['-O2'])], language_level=3, quiet=True), "
    "script_args=['build_ext', '--inplace', '-q', '--build-temp', 'build'])"
)


def build() -> ModuleType:
    """Compile (if needed) and import the load generator."""
    src = HERE / "rtpload.pyx"
    built = sorted(HERE.glob("rtpload.*.so"))
    if not built or built[0].stat().st_mtime < src.stat().st_mtime:
        subprocess.run([sys.executable, "-c", _SETUP], cwd=HERE, check=True,
                       stdout=subprocess.DEVNULL)
    return importlib.import_module(f"{__name__}.rtpload")
