"""Every notebook runs without Graphviz installed, and its diagrams still display as SVG."""

from __future__ import annotations

import os
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
