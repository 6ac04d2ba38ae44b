"""The pure core stays pure: domain/ and io.py do no I/O, and orchestration/ runs nothing."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "aegispay"
ROOT = PACKAGE_DIR.parent
# Each of these reaches the world: storage, network, time, randomness, logs, threads, ids, the OS.
FORBIDDEN = frozenset(
    "sqlite3 psycopg redis tenacity time random logging threading uuid os".split()
)
CORE_FILES = [*sorted((PACKAGE_DIR / "domain").rglob("*.py")), PACKAGE_DIR / "io.py"]
ORCHESTRATION_FILES = sorted((PACKAGE_DIR / "orchestration").rglob("*.py"))


def module_name(path: Path) -> str:
    """Return the dotted module name of a file inside the repository."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(source: str, module: str, is_package: bool) -> list[tuple[str, int]]:
    """Return every module the source imports, anywhere in it, made absolute, with its line."""
    found: list[tuple[str, int]] = []
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                name = f"{base}.{node.module}" if node.module else base
            else:
                name = node.module or ""
            found.append((name, node.lineno))
    return found


def why_forbidden(imported: str, importer: str) -> str | None:
    """Say why a pure module may not import `imported`, or None when it may."""
    top = imported.partition(".")[0]
    if top in FORBIDDEN:
        return f"{top} does I/O or reads the world"
    if top != "aegispay":
        return None
    if importer == "aegispay.io":
        return "io.py may import nothing from aegispay"
    if imported == "aegispay.domain" or imported.startswith("aegispay.domain."):
        return None
    return "the domain may import only from aegispay.domain"


def violations_in(source: str, module: str, is_package: bool = False) -> list[str]:
    """Describe each forbidden import in a pure module's source, naming module, import and line."""
    return [
        f"{module} imports {imported!r} (line {line}): {reason}"
        for imported, line in imports_of(source, module, is_package)
        if (reason := why_forbidden(imported, module)) is not None
    ]


def unsafe_run_uses(source: str, module: str) -> list[str]:
    """Describe each `.unsafe_run` attribute (a call, or a reference to call later)."""
    return [
        f"{module} uses .unsafe_run (line {node.lineno}): orchestration builds IO, never runs it"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Attribute) and node.attr == "unsafe_run"
    ]


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_a_pure_module_imports_no_io_and_nothing_outside_the_domain(path: Path) -> None:
    problems = violations_in(
        path.read_text(encoding="utf-8"), module_name(path), path.name == "__init__.py"
    )
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", ORCHESTRATION_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_an_orchestration_module_never_calls_unsafe_run(path: Path) -> None:
    problems = unsafe_run_uses(path.read_text(encoding="utf-8"), module_name(path))
    assert not problems, "\n".join(problems)


# --- The scanners themselves: a check that finds nothing must be shown able to find something. ---


def test_the_pure_core_file_list_covers_the_domain_and_io() -> None:
    names = {module_name(path) for path in CORE_FILES}
    assert {"aegispay.io", "aegispay.domain.money", "aegispay.domain.payment"} <= names


def test_the_import_scan_flags_a_forbidden_import_hidden_in_a_function() -> None:
    source = "def now():\n    import time\n    return time.time()\n"
    assert violations_in(source, "aegispay.domain.money") == [
        "aegispay.domain.money imports 'time' (line 2): time does I/O or reads the world"
    ]


@pytest.mark.parametrize("source", ["import os.path", "from os import environ", "import uuid"])
def test_the_import_scan_flags_a_forbidden_module_however_it_is_imported(source: str) -> None:
    assert violations_in(source, "aegispay.domain.payment")


def test_the_import_scan_resolves_relative_imports_out_of_the_domain() -> None:
    problems = violations_in("from ..infra import clock", "aegispay.domain.payment")
    assert problems == [
        "aegispay.domain.payment imports 'aegispay.infra' (line 1): "
        "the domain may import only from aegispay.domain"
    ]


def test_the_import_scan_lets_the_domain_import_the_domain() -> None:
    source = "from aegispay.domain.money import Money\nfrom .errors import InvalidRequest\n"
    assert violations_in(source, "aegispay.domain.payment") == []


def test_the_import_scan_forbids_io_to_import_anything_from_aegispay() -> None:
    assert violations_in("from aegispay.domain.errors import AegisPayError", "aegispay.io")


def test_the_unsafe_run_scan_finds_a_call_on_any_expression() -> None:
    source = "def charge(program):\n    return build(program).unsafe_run()\n"
    assert len(unsafe_run_uses(source, "aegispay.orchestration.workflows")) == 1
