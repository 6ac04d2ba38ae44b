"""Every notebook runs without Graphviz installed, and its diagrams still display as SVG."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

nbclient = pytest.importorskip("nbclient", reason="the notebooks extra is not installed")
nbformat = pytest.importorskip("nbformat", reason="the notebooks extra is not installed")

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))
# Graphviz's layout programs, as Debian installs them beside `dot`.
GRAPHVIZ_PROGRAMS = {"dot", "neato", "circo", "fdp", "sfdp", "twopi", "osage", "patchwork"}


def path_without_graphviz(shadow: Path) -> str:
    """A PATH with every program of the current one but Graphviz's, linked into `shadow`."""
    shadow.mkdir()
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        if not Path(folder).is_dir():
            continue
        for program in Path(folder).iterdir():
            link = shadow / program.name
            if program.name not in GRAPHVIZ_PROGRAMS and not link.exists():
                link.symlink_to(program)
    return str(shadow)


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.stem)
def test_the_notebook_runs_and_draws_its_diagrams_without_graphviz(
    notebook: Path, tmp_path: Path
) -> None:
    nb = nbformat.read(notebook, as_version=4)
    env = {**os.environ, "PATH": path_without_graphviz(tmp_path / "bin")}
    client = nbclient.NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute(env=env)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    outputs = [output for cell in code for output in cell.outputs]
    assert [o for o in outputs if o.output_type == "error"] == []
    assert [o.text for o in outputs if o.get("name") == "stderr"] == []
    diagrams = [cell for cell in code if "_diagram(" in cell.source]
    for cell in diagrams:
        shown = [o for o in cell.outputs if "image/svg+xml" in o.get("data", {})]
        assert len(shown) == 1, cell.source


# What a notebook may import: the package's surface, its pictures, and the harness by module.
PUBLIC_MODULES = {
    "aegispay",
    "aegispay.adapters",
    "aegispay.sim",
    "aegispay.viz",
    "aegispay.worker",
    "aegispay.sim.chaos",
    "aegispay.sim.crashpoints",
    "aegispay.sim.enumeration",
    "aegispay.sim.faults",
    "aegispay.sim.invariants",
    "aegispay.sim.workload",
    "aegispay.recovery.scrub",
}


def markdown_of(nb: nbformat.NotebookNode) -> str:
    return "\n".join(cell.source for cell in nb.cells if cell.cell_type == "markdown")


def test_the_notebooks_are_numbered_from_the_tour_to_correctness() -> None:
    assert [path.name[:3] for path in NOTEBOOKS] == [f"{n:02}_" for n in range(len(NOTEBOOKS))]
    assert NOTEBOOKS[0].stem == "00_tour"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.stem)
def test_the_notebook_opens_with_production_and_ends_with_lessons_and_hidden_solutions(
    notebook: Path,
) -> None:
    nb = nbformat.read(notebook, as_version=4)
    markdown = [cell.source for cell in nb.cells if cell.cell_type == "markdown"]
    assert "## What goes wrong in production" in markdown[0]
    assert markdown[0].lstrip().startswith("# ")
    ending = markdown[-1]
    assert "## What we learned" in ending
    assert "## Try it yourself" in ending.split("## What we learned")[1]
    assert "<details>" in ending.split("## Try it yourself")[1]
    assert "</details>" in ending


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.stem)
def test_the_notebook_shows_a_live_picture_whose_saved_output_is_a_picture_not_widget_text(
    notebook: Path,
) -> None:
    nb = nbformat.read(notebook, as_version=4)
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    widgets = [
        o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
    ]
    assert widgets, "no aegispay.viz widget displayed"
    for output in widgets:
        assert '<img src="data:image/png;base64,' in output["data"]["text/html"]
        assert "VBox(children=" not in output["data"]["text/plain"]
    pictures = [o for o in outputs if "image/svg+xml" in o.get("data", {})]
    assert pictures or len(widgets) > 1, "no picture saved after a scripted step"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.stem)
def test_the_notebook_imports_only_the_public_api(notebook: Path) -> None:
    nb = nbformat.read(notebook, as_version=4)
    code = "\n".join(cell.source for cell in nb.cells if cell.cell_type == "code")
    code += "\n" + markdown_of(nb)  # the solutions, too
    imported = set(re.findall(r"^\s*(?:from|import) (aegispay[\w.]*)", code, re.MULTILINE))
    assert imported, "the notebook does not use aegispay"
    assert imported <= PUBLIC_MODULES, imported - PUBLIC_MODULES
