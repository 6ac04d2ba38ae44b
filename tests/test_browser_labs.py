"""The labs notebook in JupyterLab, as a learner uses it: after Run All, replace a lab's first try
with a right solution, run it and the attack in the next cell, and see the picture change from
the broken lanes to a verdict that holds, with nothing failing in a cell, the log console or the
browser.

Each lab's first try sits in its own cell whose first line names it ("# recovery lab, the first
try: ..."), and the next cell attacks it (`labs.check("recovery", decide)`). The solutions here
are the test's own, not the notebook's fixed versions, so the lab grades code it has not shown.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from tests import test_browser as harness
from tests.test_browser_notebooks import LOGGED, run_all

NOTEBOOK = harness.ROOT / "notebooks" / "10_labs.ipynb"
OUT = harness.SHOTS / "labs"
RUN_MS = 120_000
# The colours of the verdict's headline: broken, and held (aegispay.labs.verdict).
BROKE, HELD = "#c0392b", "#1e8449"

# The fixtures of the JupyterLab harness, bound here by name so pytest finds them.
browser = harness.browser
lab = harness.lab

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# A right solution for each lab, under the name its attack cell checks.
SOLUTIONS = {
    "recovery": """\
def decide(seen):
    # "not found" may mean "not yet": cancel our reference and settle on the gateway's answer
    return {"charged": "succeed", "declined": "fail", "cancelled": "fail",
            "not_found": "cancel", "unreachable": "wait"}[seen.answer]
""",
    "create_once": """\
def create(log, request):
    try:
        existing = log.append(log.initiated(request), expected_version=0)
    except ConcurrencyError:
        existing = log.load(request.payment_id)
    same = (existing.amount, existing.customer_id, existing.payment_method) == (
        request.amount, request.customer_id, request.payment_method)
    if not same:
        raise IdempotencyKeyConflict(request.idempotency_key, {})
    return existing
""",
    "retry": """\
def retry(failure):
    if failure.sent:
        return "stop"
    return "same_key" if failure.attempt < 3 else "stop"
""",
    "breaker": """\
Breaker, Decision = labs.breaker.Breaker, labs.breaker.Decision


def step(breaker, event, now, config):
    probe = Breaker("HALF_OPEN", breaker.failures, breaker.opened_at, True)
    if breaker.state == "OPEN":
        if event == "request" and now - breaker.opened_at >= timedelta(seconds=config.timeout):
            return Decision(probe, True, "")
        return Decision(breaker, event != "request", "")
    if breaker.state == "HALF_OPEN":
        if event == "request":
            return Decision(probe, not breaker.probing, "")
        if event == "success":
            return Decision(Breaker(), True, "probe succeeded")
        return Decision(Breaker("OPEN", breaker.failures + 1, now), True, "probe failed")
    failures = 0 if event == "success" else breaker.failures + (event == "failure")
    if failures >= config.failure_threshold:
        return Decision(Breaker("OPEN", failures, now), True, "opened")
    return Decision(Breaker("CLOSED", failures), True, "")
""",
    "lock": """\
class Locks:
    def __init__(self, clock):
        self.clock, self.leases = clock, {}

    def holder(self, resource):
        owner, until = self.leases.get(resource, (None, None))
        return owner if owner is not None and until > self.clock.now() else None

    def acquire(self, resource, owner, ttl, wait=0.0):
        if self.holder(resource) is not None:
            return False
        self.leases[resource] = (owner, self.clock.now() + timedelta(seconds=ttl))
        return True

    def mine(self, resource, owner):
        if self.holder(resource) != owner:
            raise LockNotHeld(f"{resource} is not held by {owner}")

    def release(self, resource, owner):
        self.mine(resource, owner)
        del self.leases[resource]

    def extend(self, resource, owner, ttl):
        self.mine(resource, owner)
        self.leases[resource] = (owner, self.clock.now() + timedelta(seconds=ttl))
""",
}

# A cell of the open notebook, as JupyterLab's model holds it, and the picture its output shows.
CELL = """index => {
    const cell = window.jupyterapp.shell.currentWidget.content.widgets[index];
    const shown = cell.node.querySelector('.jp-OutputArea-output:last-child');
    const outputs = cell.model.outputs.toJSON();
    const data = outputs.map(o => o.data ?? {});
    return {
        source: cell.model.sharedModel.getSource(),
        count: cell.model.executionCount,
        text: outputs.map(o => [].concat(o.data?.['text/plain'] ?? o.text ?? '').join('')).join(''),
        svg: data.map(d => [].concat(d['image/svg+xml'] ?? '').join('')).join(''),
        mime: shown?.dataset.mimeType ?? '',
        src: shown?.querySelector('img')?.getAttribute('src') ?? '',
    };
}"""
# Replace a cell's source through the notebook's shared model, as typing into it would.
REPLACE = """([index, source]) => {
    window.jupyterapp.shell.currentWidget.content.widgets[index].model.sharedModel.setSource(source);
}"""
# Run the cell at `index` and the one after it, with JupyterLab's own commands.
RUN_TWO = """async index => {
    const notebook = window.jupyterapp.shell.currentWidget.content;
    notebook.activeCellIndex = index;
    notebook.deselectAll();
    await window.jupyterapp.commands.execute('notebook:run-cell-and-select-next');
    await window.jupyterapp.commands.execute('notebook:run-cell');
}"""


def drawn(svg: str) -> list[tuple[str, str]]:
    """The words a picture draws, each with its colour (black when it names none)."""
    return [
        (fill.group(1) if (fill := re.search(r'fill="([^"]*)"', attributes)) else "#000000",
         html.unescape(words))
        for attributes, words in re.findall(r"<text([^>]*)>([^<]*)</text>", svg)
    ]  # fmt: skip


def starter_cell(lab_name: str) -> int:
    """The index of the lab's first try: the cell whose first line names it."""
    cells = nbformat.read(NOTEBOOK, as_version=4).cells
    first = [
        n for n, c in enumerate(cells) if c.source.startswith(f"# {lab_name} lab, the first try")
    ]
    assert len(first) == 1, f"10_labs must have one first try of the {lab_name} lab"
    attack = cells[first[0] + 1]
    assert attack.cell_type == "code" and attack.source.startswith(f'labs.check("{lab_name}", ')
    return first[0]


@pytest.fixture(scope="module")
def labs_page(browser: Any, lab: str) -> Iterator[tuple[Any, list[str]]]:
    """10_labs in JupyterLab after Run All (every lab's first try broken, on screen)."""
    page, errors = harness.open_page(browser)
    run_all(page, NOTEBOOK, lab)
    yield page, errors
    page.close()


def shot(page: Any, index: int, path: Path) -> bytes:
    """A screenshot of the cell's picture (its top, when it is taller than the window)."""
    area = page.locator(".jp-Notebook .jp-Cell").nth(index).locator(".jp-OutputArea-output").last
    area.evaluate("e => e.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(300)  # the scroll is drawn on the next frames; nothing else waits on it
    box = area.bounding_box()
    assert box is not None, f"cell {index} shows no picture"
    path.parent.mkdir(parents=True, exist_ok=True)
    room = harness.SCREEN["height"] - box["y"]
    return bytes(page.screenshot(path=path, clip={**box, "height": min(box["height"], room)}))


def test_every_lab_has_its_first_try_in_one_cell_and_the_attack_in_the_next() -> None:
    assert {lab_name: starter_cell(lab_name) for lab_name in SOLUTIONS}


@pytest.mark.parametrize("lab_name", SOLUTIONS)
def test_a_right_solution_in_place_of_the_first_try_turns_the_broken_lanes_into_holds(
    labs_page: tuple[Any, list[str]], lab_name: str
) -> None:
    page, errors = labs_page
    starter = starter_cell(lab_name)
    check = starter + 1
    saved = nbformat.read(NOTEBOOK, as_version=4).cells[starter].source
    before = page.evaluate(CELL, check)
    assert page.evaluate(CELL, starter)["source"] == saved
    picture_before = shot(page, check, OUT / f"{lab_name}-first-try.png")

    page.evaluate(REPLACE, [starter, SOLUTIONS[lab_name]])
    assert page.evaluate(CELL, starter)["source"] == SOLUTIONS[lab_name]
    page.evaluate(RUN_TWO, starter)
    page.wait_for_function(
        f"""count => {{ const c = ({CELL})({check}), s = ({harness.NOTEBOOK_STATE})();
            return s.failed > 0 || (c.count !== count && c.count !== null && c.text
                                    && s.kernel === 'idle'); }}""",
        arg=before["count"],
        timeout=RUN_MS,
    )
    after = page.evaluate(CELL, check)
    picture_after = shot(page, check, OUT / f"{lab_name}-solved.png")
    state = page.evaluate(harness.NOTEBOOK_STATE)
    logged = page.evaluate(LOGGED)

    # The verdict, in words: broken before, holding after.
    assert f"{lab_name} lab: broke after" in before["text"], before["text"]
    assert f"{lab_name} lab: holds over" in after["text"], after["text"]
    # The picture: JupyterLab shows the SVG (as an image), and it changes from the lanes of the
    # counterexample, headed in red, to the verdict alone, in green.
    assert before["mime"] == after["mime"] == "image/svg+xml"
    assert before["src"] and after["src"] and before["src"] != after["src"]
    lanes, verdict = drawn(before["svg"]), drawn(after["svg"])
    assert BROKE in {fill for fill, _ in lanes} and HELD not in {fill for fill, _ in lanes}
    assert HELD in {fill for fill, _ in verdict} and BROKE not in {fill for fill, _ in verdict}
    assert len(lanes) > len(verdict) + 3  # the lanes and their steps, gone once it holds
    assert "holds" in " ".join(words for _, words in verdict)
    assert picture_after != picture_before
    # Nothing failed, in a cell, the log console or the browser.
    assert state["failed"] == 0
    assert logged in ("", "0"), f"the log console holds: {logged}"
    assert errors == []
