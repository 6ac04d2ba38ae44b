"""Every saved picture draws where nobody trusts the notebook: a fresh clone, GitHub, nbviewer.

Untrusted, JupyterLab strips SVG from HTML and shows an `image/svg+xml` output's text instead;
static renderers do the same. So every saved SVG must travel with a PNG beside it, and no saved
HTML may carry its picture as inline SVG.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aegispay.viz import state_machine_diagram
from aegispay.viz.rendering import css_width, static_html

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Words that stand for a picture instead of drawing it.
PLACEHOLDERS = ("characters of SVG", "Error displaying widget", "No Graphviz engine")


def outputs(notebook: Path) -> Iterator[dict[str, Any]]:
    """Every saved output of the notebook's code cells."""
    for cell in json.loads(notebook.read_text())["cells"]:
        if cell["cell_type"] == "code":
            yield from cell.get("outputs", [])


def text_of(value: str | list[str]) -> str:
    return value if isinstance(value, str) else "".join(value)


def pictures_shown_untrusted(output: dict[str, Any]) -> int:
    """How many pictures an untrusted renderer draws for this output."""
    data = output.get("data", {})
    if "image/png" in data:
        return 1
    return text_of(data.get("text/html", "")).count("<img ")


def expected_pictures(cell: dict[str, Any]) -> int:
    """How many pictures a code cell's saved outputs draw without trust."""
    return sum(pictures_shown_untrusted(output) for output in cell.get("outputs", []))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.stem)
def test_every_saved_svg_has_a_png_beside_it(notebook: Path) -> None:
    for output in outputs(notebook):
        data = output.get("data", {})
        if "image/svg+xml" in data:
            png = base64.b64decode(text_of(data["image/png"]))
            assert png.startswith(PNG_SIGNATURE)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.stem)
def test_no_saved_html_carries_its_picture_as_inline_svg(notebook: Path) -> None:
    for output in outputs(notebook):
        assert "<svg" not in text_of(output.get("data", {}).get("text/html", ""))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.stem)
def test_no_saved_output_stands_in_words_for_a_picture(notebook: Path) -> None:
    for output in outputs(notebook):
        data = dict(output.get("data", {}))
        if "image/png" in data:  # the picture is drawn, its text form is not shown
            data.pop("text/plain", None)
        shown = json.dumps(data) + text_of(output.get("text", ""))
        assert [word for word in PLACEHOLDERS if word in shown] == []


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.stem)
def test_every_notebook_saves_pictures_that_draw_without_trust(notebook: Path) -> None:
    assert sum(pictures_shown_untrusted(output) for output in outputs(notebook)) > 0


def test_a_diagram_offers_a_png_of_its_svg() -> None:
    shown = state_machine_diagram([])
    png = shown._repr_png_()
    assert png is not None
    assert png.startswith(PNG_SIGNATURE)


def test_static_html_replaces_each_inline_svg_by_a_png_image_at_its_own_width() -> None:
    svg = state_machine_diagram([]).as_html()
    page = static_html(f"<p>before</p>{svg}<div>{svg}</div><p>after</p>")
    assert "<svg" not in page
    assert page.count('<img src="data:image/png;base64,') == 2
    assert page.startswith("<p>before</p>")
    assert page.endswith("<p>after</p>")
    assert f'width="{css_width(svg):.0f}"' in page


def test_static_html_leaves_html_without_svg_as_it_is() -> None:
    assert static_html("<table><tr><td>1</td></tr></table>") == (
        "<table><tr><td>1</td></tr></table>"
    )
