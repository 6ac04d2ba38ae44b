"""Every control of every notebook's widgets, clicked in JupyterLab after Run All: each click
changes what the widget draws, and nothing fails, in the widget, its cells or the browser.

The same run measures the fit of every output in JupyterLab's column at 1366x768, and saves each
notebook's main picture for notebooks/README.md when asked to:

    AEGISPAY_SCREENSHOTS=notebooks .venv/bin/pytest tests/test_browser_notebooks.py

writes notebooks/pictures/NN_name.png (otherwise they go to test-output/notebooks/, gitignored).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import nbformat
import pytest

from tests import test_browser as harness

ROOT = harness.ROOT
OUT = harness.SHOTS / "notebooks"
PICTURES = ROOT / "notebooks" / "pictures"
WRITE_PICTURES = os.environ.get("AEGISPAY_SCREENSHOTS", "") == "notebooks"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# A dropdown longer than this is sampled evenly (its first and last option always among them).
MOST_OPTIONS = 12
CLICK_MS = 30_000
# Each notebook's main picture: the output of the first code cell whose source holds this.
MAIN_PICTURE = {
    "00_tour": "explorer = PaymentExplorer(pay, p.id)",
    "01_duplicates_and_locks": "lab = LeaseLab(",
    "02_functional_core": "explorer = PaymentExplorer(durable)",
    "03_timeouts_and_retries": "explorer = PaymentExplorer(pay)",
    "04_lost_responses": "explorer = PaymentExplorer(pay, q.id)",
    "05_circuit_breaker": "scripted = FaultPanel(",
    "06_crash_recovery": "scripted.recover()",
    "07_database_failure": "explorer = PaymentExplorer(pay, done[0].id)",
    "08_correctness": "explorer = PaymentExplorer(soak)",
    "09_scale_out": "axis.set_title(",
    "10_labs": 'labs.check("recovery", decide)',
}
# The tallest a README picture is cut to, in CSS pixels.
PICTURE_HEIGHT = 1100

# The fixtures of the JupyterLab harness, bound here by name so pytest finds them.
browser = harness.browser
lab = harness.lab

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# What a widget draws: its DOM with the live parts (slider drag positions, focus) left in.
WIDGET_DOM = """index => {
    const roots = [...document.querySelectorAll('.jp-OutputArea-output > .widget-vbox')];
    return roots[index] ? roots[index].innerHTML : null;
}"""
# Elements of the outputs whose content is wider than the room they have: cut, or scrolling.
TOO_WIDE = """() => [...document.querySelectorAll(
        '.jp-OutputArea-output, .jp-OutputArea-output .widget-html-content')]
    .filter(e => e.scrollWidth > e.clientWidth + 1)
    .map(e => `${e.className}: ${e.scrollWidth} px in ${e.clientWidth} px: `
              + e.innerText.slice(0, 60))"""
WIDEST_PICTURE = """() => Math.max(0, ...[...document.querySelectorAll(
        '.jp-OutputArea-output img, .jp-OutputArea-output svg:not(svg svg)')]
    .map(e => e.getBoundingClientRect().width))"""
# JupyterLab's log console counts what the kernel said outside any cell (a callback's traceback).
LOGGED = """() => {
    const item = document.querySelector('.jp-LogConsoleStatusItem');
    return item ? item.innerText.trim() : '';
}"""


def run_all(page: Any, notebook: Path, url: str) -> None:
    """Open the notebook, clear its outputs, Run All, and wait for every cell and an idle kernel."""
    page.goto(url.format(name=notebook.name), timeout=harness.NOTEBOOK_TIMEOUT_MS)
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=harness.NOTEBOOK_TIMEOUT_MS)
    state = harness.NOTEBOOK_STATE
    page.wait_for_function(f"() => ({state})().kernel === 'idle'",
                           timeout=harness.NOTEBOOK_TIMEOUT_MS)  # fmt: skip
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
    page.wait_for_function(f"() => ({state})().counted === 0")
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_function(
        f"""() => {{ const s = ({state})();
            return s.failed > 0 || (s.kernel === 'idle' && s.counted === s.cells); }}""",
        timeout=harness.NOTEBOOK_TIMEOUT_MS,
    )
    page.wait_for_function(
        "() => document.querySelectorAll('.jp-OutputArea-output > .widget-vbox').length > 0",
        timeout=CLICK_MS,
    )


def settle(page: Any) -> None:
    """Wait for the kernel to finish what the last click asked."""
    page.wait_for_function(f"() => ({harness.NOTEBOOK_STATE})().kernel === 'idle'",
                           timeout=CLICK_MS)  # fmt: skip


class Clicker:
    """Acts on one control of one widget and checks that the widget's picture changed."""

    def __init__(self, page: Any, index: int) -> None:
        self.page = page
        self.index = index
        self.root = page.locator(".jp-OutputArea-output > .widget-vbox").nth(index)
        self.done: list[str] = []

    def dom(self) -> str:
        return str(self.page.evaluate(WIDGET_DOM, self.index))

    def act(self, what: str, action: Any) -> None:
        """Do `action`; the widget's DOM must change, and its text must show no failure."""
        before = self.dom()
        action()
        self.page.wait_for_function(
            f"before => ({WIDGET_DOM})({self.index}) !== before", arg=before, timeout=CLICK_MS
        )
        settle(self.page)
        text = self.root.inner_text()
        assert "that click failed" not in text, f"{what}: {text}"
        self.done.append(what)

    def buttons(self) -> None:
        """Click every button (toggles not already chosen), in the order they are on screen."""
        count = self.root.locator("button").count()
        for n in range(count):
            button = self.root.locator("button").nth(n)
            if "mod-active" in (button.get_attribute("class") or "") or button.is_disabled():
                continue
            label = button.inner_text().strip() or button.get_attribute("title") or f"#{n}"
            self.act(f"button {label}", button.click)

    def dropdowns(self) -> None:
        """Choose options of every dropdown other than the one chosen."""
        for n in range(self.root.locator("select").count()):
            select = self.root.locator("select").nth(n)
            options = select.locator("option").all_inner_texts()
            for option in sample(options):
                if option == select.evaluate("s => s.options[s.selectedIndex]?.text"):
                    continue
                self.act(f"option {option}", lambda o=option, s=select: s.select_option(label=o))

    def sliders(self) -> None:
        """Move every slider one step, towards the side it has room on."""
        for n in range(self.root.locator(".noUi-handle").count()):
            handle = self.root.locator(".noUi-handle").nth(n)
            now, low, top = (
                float(handle.get_attribute(f"aria-value{at}") or 0) for at in ("now", "min", "max")
            )
            key = "ArrowRight" if now < top else "ArrowLeft"
            if low == top:
                continue  # a slider with one position (no events to step through) cannot move
            self.act(f"slider {n} {key}", lambda h=handle, k=key: h.press(k))


def sample(options: list[str]) -> list[str]:
    """At most MOST_OPTIONS of the options, evenly spread, the first and last among them."""
    if len(options) <= MOST_OPTIONS:
        return options
    step = (len(options) - 1) / (MOST_OPTIONS - 1)
    return [options[round(k * step)] for k in range(MOST_OPTIONS)]


def main_cell(notebook: Path) -> int:
    """The index of the notebook's cell whose output is its main picture."""
    cells = nbformat.read(notebook, as_version=4).cells
    marker = MAIN_PICTURE[notebook.stem]
    return next(n for n, cell in enumerate(cells) if marker in cell.source)


def save_main_picture(page: Any, notebook: Path) -> Path:
    """Screenshot the main picture's output (cut at PICTURE_HEIGHT) for the README, in a window
    as wide as the laptop's and tall enough to hold it."""
    page.set_viewport_size({"width": harness.SCREEN["width"], "height": PICTURE_HEIGHT + 200})
    cell = page.locator(".jp-Notebook .jp-Cell").nth(main_cell(notebook))
    area = cell.locator(".jp-OutputArea-output").last
    area.evaluate("e => e.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(300)  # the scroll is drawn on the next frames; nothing else waits on it
    box = area.bounding_box()
    assert box is not None, f"{notebook.stem}: its main picture is not on the page"
    folder = PICTURES if WRITE_PICTURES else OUT / "pictures"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{notebook.stem}.png"
    page.screenshot(path=path, clip={
        "x": box["x"], "y": box["y"], "width": box["width"],
        "height": min(box["height"], PICTURE_HEIGHT),
    })  # fmt: skip
    page.set_viewport_size(harness.SCREEN)
    return path


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.stem)
def test_after_run_all_every_control_of_every_widget_changes_its_picture_without_an_error(
    browser: Any, lab: str, notebook: Path
) -> None:
    """Run All, then for each widget: every button, every dropdown option (sampled past twelve)
    and every slider changes the widget's drawing; no failure shows in a widget, a cell, the log
    console or the browser; and no output is wider than JupyterLab's column at 1366x768."""
    page, errors = harness.open_page(browser)
    run_all(page, notebook, lab)
    too_wide = page.evaluate(TOO_WIDE)
    widest = page.evaluate(WIDEST_PICTURE)
    save_main_picture(page, notebook)
    widgets = page.locator(".jp-OutputArea-output > .widget-vbox").count()
    clicked: dict[int, list[str]] = {}
    for index in range(widgets):
        clicker = Clicker(page, index)
        clicker.root.scroll_into_view_if_needed()
        # Buttons first: they make the payments that the dropdowns and sliders then step through.
        clicker.buttons()
        clicker.dropdowns()
        clicker.sliders()
        clicked[index] = clicker.done
    state = page.evaluate(harness.NOTEBOOK_STATE)
    logged = page.evaluate(LOGGED)
    page.screenshot(path=OUT / f"{notebook.stem}-clicked.png", full_page=True)
    (OUT / f"{notebook.stem}-clicked.json").write_text(
        json.dumps({"clicked": clicked, "widest_picture_px": widest}, indent=1)
    )
    page.close()
    assert widgets > 0
    assert all(clicked.values()), clicked
    assert too_wide == []
    assert widest <= 880
    assert state["failed"] == 0
    assert logged in ("", "0"), f"the log console holds: {logged}"
    assert errors == []
