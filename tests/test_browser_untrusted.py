"""A fresh clone's notebooks, opened unrun in JupyterLab, draw every saved picture as a picture.

JupyterLab trusts a notebook only once its user ran it (the signatures live in the user's
Jupyter data folder), so a learner who opens a cloned notebook sees it untrusted: SVG in HTML is
stripped and `image/svg+xml` falls back to text. This test starts JupyterLab with an empty data
folder, opens each notebook without running anything, checks that it is untrusted, and asserts
that every code cell draws as many loaded images as its saved outputs carry, with no words
standing in for a picture.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_browser import (  # noqa: F401 - `browser` is a fixture used by name
    NOTEBOOK_TIMEOUT_MS,
    SHOTS,
    browser,
    open_page,
    serve_lab,
)
from tests.test_saved_pictures import NOTEBOOKS, PLACEHOLDERS, expected_pictures

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Per code cell, in the page's order: its trust, its loaded images and the words its outputs show.
CELLS = """() => {
    const panel = window.jupyterapp.shell.currentWidget;
    return panel.content.widgets.filter(cell => cell.model.type === 'code').map(cell => {
        const area = cell.node.querySelector('.jp-OutputArea');
        const images = area ? [...area.querySelectorAll('img')] : [];
        return {
            trusted: cell.model.trusted,
            drawn: images.filter(img => img.complete && img.naturalWidth > 0).length,
            text: area ? area.innerText : '',
        };
    });
}"""


@pytest.fixture(scope="module")
def fresh_lab(browser: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:  # noqa: F811 - the fixture imported above
    """JupyterLab as a new user meets it: copies of the notebooks, no notebook ever trusted."""
    root = tmp_path_factory.mktemp("fresh-lab")
    # An empty data folder holds no notebook signatures: nothing opened here is trusted.
    untrusting = {"JUPYTER_DATA_DIR": str(root / ".data")}
    with serve_lab(root, SHOTS / "untrusted" / "lab.log", untrusting) as url:
        yield url


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.stem)
def test_an_unrun_untrusted_notebook_draws_every_saved_picture(
    browser: Any,  # noqa: F811 - the fixture imported above
    fresh_lab: str,
    notebook: Path,
) -> None:
    saved = [c for c in json.loads(notebook.read_text())["cells"] if c["cell_type"] == "code"]
    expected = [expected_pictures(cell) for cell in saved]
    page, _ = open_page(browser)
    page.goto(fresh_lab.format(name=notebook.name), timeout=NOTEBOOK_TIMEOUT_MS)
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=NOTEBOOK_TIMEOUT_MS)
    # Wait until every image has loaded (or failed): each is an embedded PNG, so it is quick.
    page.wait_for_function(
        """(total) => [...document.querySelectorAll('.jp-OutputArea img')]
            .filter(img => img.complete).length >= total""",
        arg=sum(expected),
        timeout=NOTEBOOK_TIMEOUT_MS,
    )
    cells = page.evaluate(CELLS)
    page.screenshot(path=SHOTS / "untrusted" / f"{notebook.stem}.png", full_page=True)
    page.close()
    assert len(cells) == len(saved)
    assert [cell["trusted"] for cell in cells] == [False] * len(cells)
    assert [cell["drawn"] for cell in cells] == expected
    shown = "\n".join(cell["text"] for cell in cells)
    assert [word for word in PLACEHOLDERS if word in shown] == []
    assert "<svg" not in shown
