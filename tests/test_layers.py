"""The floors of the package hold: a module imports only from its own floor or the ones below.

domain/ and io.py at the bottom; orchestration/; adapters (infra/), resilience/ and recovery/;
the engine (engine, service, ports, adapters, worker); sim/, the harness; viz/, the pictures;
labs/, which attacks the engine through the harness and draws its lanes with viz; the faces on
top: cli and the package's front door (`aegispay/__init__.py`, which re-exports AegisPay).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_purity import PACKAGE_DIR, imports_of, module_name

FLOORS: tuple[tuple[str, ...], ...] = (
    ("aegispay.domain", "aegispay.io"),
    ("aegispay.orchestration",),
    ("aegispay.infra", "aegispay.resilience", "aegispay.recovery"),
    (
        "aegispay.engine",
        "aegispay.service",
        "aegispay.ports",
        "aegispay.adapters",
        "aegispay.worker",
    ),
    ("aegispay.sim",),
    ("aegispay.viz",),
    ("aegispay.labs",),
    ("aegispay.cli", "aegispay"),
)
FILES = sorted(PACKAGE_DIR.rglob("*.py"))


def floor_of(module: str) -> int:
    """The floor a module stands on: the longest matching prefix wins (`aegispay` is the top)."""
    best, floor = -1, len(FLOORS) - 1
    for number, prefixes in enumerate(FLOORS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, floor = len(prefix), number
    return floor


def upward_imports(path: Path) -> list[str]:
    """Every import of a module above the importer's floor, with its line."""
    module = module_name(path)
    own = floor_of(module)
    return [
        f"{module} (floor {own}) imports {imported} (floor {floor_of(imported)}), line {line}"
        for imported, line in imports_of(path.read_text(), module, path.name == "__init__.py")
        if imported.startswith("aegispay") and floor_of(imported) > own
    ]


@pytest.mark.parametrize("path", FILES, ids=module_name)
def test_no_module_imports_from_a_floor_above_its_own(path: Path) -> None:
    assert upward_imports(path) == []


def test_only_the_harness_and_the_faces_import_the_simulator() -> None:
    importers = {
        module_name(path)
        for path in FILES
        for imported, _ in imports_of(
            path.read_text(), module_name(path), path.name == "__init__.py"
        )
        if imported == "aegispay.sim" or imported.startswith("aegispay.sim.")
    }
    outside = {m for m in importers if floor_of(m) < floor_of("aegispay.sim")}
    assert outside == set()
    assert "aegispay.engine" not in importers


def test_the_floor_check_sees_an_engine_module_reaching_up_into_the_simulator() -> None:
    assert floor_of("aegispay.engine") < floor_of("aegispay.sim.faults")
    assert floor_of("aegispay.viz.widgets") > floor_of("aegispay.sim.harness")
    assert floor_of("aegispay") == len(FLOORS) - 1


def test_the_labs_stand_above_the_harness_and_the_pictures_and_nothing_below_imports_them() -> None:
    assert floor_of("aegispay.labs.runner") > floor_of("aegispay.sim.harness")
    assert floor_of("aegispay.labs.verdict") > floor_of("aegispay.viz.rendering")
    importers = {
        module_name(path)
        for path in FILES
        for imported, _ in imports_of(
            path.read_text(), module_name(path), path.name == "__init__.py"
        )
        if imported == "aegispay.labs" or imported.startswith("aegispay.labs.")
    }
    assert {m for m in importers if not m.startswith("aegispay.labs")} <= {"aegispay.cli"}


@pytest.mark.parametrize(
    ("entry", "left_out"),
    [
        # Every worker starts through the CLI: it draws no widget, so it loads none.
        ("aegispay.cli", ("ipywidgets", "IPython", "aegispay.viz.widgets")),
        ("aegispay", ("aegispay.labs", "aegispay.viz", "ipywidgets")),
    ],
)
def test_an_entry_point_does_not_import_what_it_never_uses(
    entry: str, left_out: tuple[str, ...]
) -> None:
    """Measured by a fresh interpreter's sys.modules, not by reading the imports."""
    probe = f"import sys, {entry}; print(' '.join(m for m in {left_out!r} if m in sys.modules))"
    found = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    assert found == [], f"import {entry} loaded {found}"
