"""No import cycle in mediasrv/ (scripts/import_cycles.py reads the imports from the source)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _checker():
    spec = importlib.util.spec_from_file_location("import_cycles",
                                                  ROOT / "scripts" / "import_cycles.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_import_cycle_in_mediasrv() -> None:
    assert _checker().package_cycles(ROOT / "mediasrv") == []


def test_the_checker_finds_a_cycle_hidden_under_type_checking(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.b import B\n")
    (pkg / "b.py").write_text("from typing import TYPE_CHECKING\n"
                              "if TYPE_CHECKING:\n    from pkg import a\n")
    (pkg / "c.py").write_text("def f():\n    from . import c\n")
    checker = _checker()
    assert checker.cycles(checker.module_graph(pkg, "pkg")) == [["pkg.a", "pkg.b"], ["pkg.c"]]
