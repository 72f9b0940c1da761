"""mediasrv.sip is sans-I/O: no asyncio, no sockets, nothing outside the package (DESIGN.md)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import mediasrv.sip

SIP_DIR = Path(mediasrv.sip.__file__).parent
FORBIDDEN = {"asyncio", "socket", "selectors", "select", "ssl", "threading", "time", "uvloop"}


def imported_modules(path: Path) -> set[str]:
    """Absolute names of every module `path` imports (relative ones resolved)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = ["mediasrv", "sip"][: 3 - node.level]
                names.add(".".join(package + ([node.module] if node.module else [])))
            elif node.module:
                names.add(node.module)
    return names


def test_the_sip_package_has_modules_to_check():
    files = {p.name for p in SIP_DIR.glob("*.py")}
    assert {"transaction.py", "endpoint.py", "dialog.py", "events.py"} <= files


def test_no_io_and_no_import_outside_mediasrv_sip():
    stdlib = sys.stdlib_module_names
    for path in sorted(SIP_DIR.glob("*.py")):
        for name in imported_modules(path):
            top = name.split(".")[0]
            assert top not in FORBIDDEN, f"{path.name} imports {name}"
            if top == "mediasrv":
                assert name == "mediasrv.sip" or name.startswith("mediasrv.sip."), (
                    f"{path.name} imports {name}")
            else:
                assert top in stdlib or top == "__future__", f"{path.name} imports {name}"


def test_the_checker_sees_a_forbidden_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import asyncio\nfrom ..call import b2bua\nfrom . import x\n")
    assert imported_modules(bad) == {"asyncio", "mediasrv.call", "mediasrv.sip"}
