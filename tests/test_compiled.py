"""The modules listed in mediasrv/compiled.py run compiled, and from their current source.

Python imports an extension module before a `.py` of the same name, so a checkout or an
install without the build would quietly run the slower source: a module that is not an
extension skips its test on a developer machine and fails it under CI=true
(`tests.peers.require.missing`), as a missing real peer does. The other way round, an
extension older than its `.py` (edited or rebased, not rebuilt) would test other code than the
source: tests/conftest.py stops the whole session then, naming `make setup`.
"""

from __future__ import annotations

import ast
import importlib
import importlib.machinery
from pathlib import Path

import pytest

from mediasrv.compiled import MODULES
from tests.peers.require import missing

ROOT = Path(__file__).resolve().parents[1]


def _source(name: str) -> Path:
    return ROOT / (name.replace(".", "/") + ".py")


def test_the_list_names_existing_source_modules_once():
    assert MODULES and len(set(MODULES)) == len(MODULES)
    for name in MODULES:
        assert _source(name).is_file(), name


@pytest.mark.parametrize("name", MODULES)
def test_module_runs_compiled_from_its_source(name: str):
    module = importlib.import_module(name)
    built = Path(module.__file__ or "")
    if not built.name.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)):
        missing(f"{name} runs from {built}, not compiled: run `make setup` "
                "(setup.py builds the modules of mediasrv/compiled.py)")
    source = _source(name)
    # the extension is that source's build: it defines every top-level function and class
    tree = ast.parse(source.read_text())
    defined = {n.name for n in tree.body
               if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)}
    assert defined and defined <= set(vars(module)), defined - set(vars(module))
