"""The pure-Python modules the build compiles to C with Cython (the one list of them).

How this works: `setup.py` builds one extension module per name below from the module's own
`.py` file (Cython's pure-Python mode: the source is neither changed nor copied) and puts the
`.so` beside the `.py`. Python's import system prefers an extension module to a source file
of the same name, so the compiled code runs and the `.py` stays the one source to read and
edit. `tests/test_compiled.py` checks each listed module is the compiled one and is not older
than its source (a missing build fails under CI=true).

Why these two: they do the string work of every message (parsing, header lookups, URIs).
Compiled, the server spends 3 % less CPU per authenticated call (`bench.sig_cpu`); compiling
the object-heavy modules too (transactions, endpoint, dialogs, call layer, transport) made it
5-8 % slower (README, "Building the media core", has the measurements).
"""

MODULES: tuple[str, ...] = (
    "mediasrv.sip.message",
    "mediasrv.sip.uri",
)
