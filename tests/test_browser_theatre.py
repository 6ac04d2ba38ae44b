"""The crash theatre in a real browser, at the sizes a room sees it: a laptop (1366x768), a
projector (1920x1080), and the laptop at 125% and 150% browser zoom.

Browser zoom is played as Chromium plays it: the page sees a window of 1/zoom the CSS pixels,
drawn at zoom device pixels each. At every size the story is clicked through, and at each step
the screen must fit: nothing past the window's edges, no horizontal scroll, no button whose
words overflow it, no two boxes over each other, no text under 14 px, the verdict line at least
24 px. Screenshots go to test-output/theatre/ (gitignored), with the time each click took to
settle its picture and the verdict's measured type size. `AEGISPAY_SCREENSHOTS=docs` also
writes the README's picture, docs/theatre.png (1366x768, after the crash, showing the verdict):

    AEGISPAY_SCREENSHOTS=docs .venv/bin/pytest tests/test_browser_theatre.py -k laptop
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.test_browser import (
    CLICK_TIMEOUT_MS,
    ROOT,
    SHOTS,
    browser,  # noqa: F401 - a fixture, used by name
    lit_state,
    theatre_url,  # noqa: F401 - a fixture, used by name
    wait_until_lit,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

OUT = SHOTS / "theatre"
DOCS_SHOT = ROOT / "docs" / "theatre.png"
WRITE_DOCS = os.environ.get("AEGISPAY_SCREENSHOTS", "") == "docs"
SMALLEST_TEXT_PX = 14
SMALLEST_VERDICT_PX = 24


@dataclass(frozen=True)
class Screen:
    """A screen of `width` x `height` device pixels at browser `zoom`."""

    name: str
    width: int
    height: int
    zoom: float = 1.0

    def viewport(self) -> dict[str, int]:
        """The window in CSS pixels, as the page sees it at this zoom."""
        return {"width": round(self.width / self.zoom), "height": round(self.height / self.zoom)}


SCREENS = [
    Screen("laptop", 1366, 768),
    Screen("projector", 1920, 1080),
    Screen("laptop-zoom-125", 1366, 768, 1.25),
    Screen("laptop-zoom-150", 1366, 768, 1.5),
]

# Everything on the page that must fit the window, measured in one pass: the boxes' and
# controls' bounds, each button's words against its width, the smallest text a viewer must read
# (faded state-machine parts excepted: they are the background), the verdict's size and bounds.
MEASURE = """smallest => {
    const inside = r => r.left >= -0.5 && r.right <= innerWidth + 0.5;
    const boxes = [...document.querySelectorAll('.theatre .card, .theatre .widget-button,'
        + ' .theatre select, .theatre .widget-checkbox, .theatre .widget-slider,'
        + ' .theatre-verdict, .theatre-replay')].filter(e => e.offsetParent !== null);
    const outside = boxes.filter(e => !inside(e.getBoundingClientRect()))
        .map(e => e.className + ': ' + e.innerText.slice(0, 40));
    const overflowing = [...document.querySelectorAll('.theatre .widget-button, .theatre .card')]
        .filter(e => e.scrollWidth > e.clientWidth + 1)
        .map(e => e.className + ': ' + e.innerText.slice(0, 40));
    const cards = [...document.querySelectorAll('.theatre .card')].map(e => e.getBoundingClientRect());
    const overlaps = [];
    cards.forEach((a, i) => cards.slice(i + 1).forEach(b => {
        if (a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1)
            overlaps.push([a.left, a.top, b.left, b.top].map(Math.round).join(','));
    }));
    const small = [];
    const walker = document.createTreeWalker(document.querySelector('.theatre'), NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        const owner = node.parentElement;
        if (!node.textContent.trim() || owner.offsetParent === null && owner.closest('svg') === null) continue;
        let px = parseFloat(getComputedStyle(owner).fontSize);
        if (owner.closest('svg')) {
            if (owner.tagName !== 'text') continue;  // a <title>: a tooltip, not on screen
            if (['#cccccc', 'gray80'].includes(owner.getAttribute('fill'))) continue;
            px = parseFloat(owner.getAttribute('font-size')) * owner.getScreenCTM().a;
        }
        if (px < smallest) small.push(Math.round(px * 10) / 10 + 'px: ' + node.textContent.trim().slice(0, 30));
    }
    const verdict = document.querySelector('.theatre-verdict .verdict');
    const box = verdict.getBoundingClientRect();
    return {
        outside, overflowing, overlaps, small,
        scroll: document.documentElement.scrollWidth - innerWidth,
        verdictPx: parseFloat(getComputedStyle(verdict).fontSize),
        verdictInView: box.top >= 0 && box.bottom <= innerHeight && inside(box),
        ledgerPx: parseFloat(getComputedStyle(document.querySelector('.ledger-verdict') || verdict).fontSize),
        span: document.querySelector('.theatre').getBoundingClientRect().width / innerWidth,
    };
}"""


def measure(page: Any) -> dict[str, Any]:
    """The page's fit, as MEASURE reads it."""
    return dict(page.evaluate(MEASURE, SMALLEST_TEXT_PX))


def assert_fits(page: Any, screen: Screen, step: str) -> dict[str, Any]:
    """Nothing cut off, overflowing, overlapping or too small on this screen at this step."""
    page.screenshot(path=OUT / f"{screen.name}-{step}.png")
    fit = measure(page)
    assert fit["outside"] == [], step
    assert fit["overflowing"] == [], step
    assert fit["overlaps"] == [], step
    assert fit["small"] == [], step
    assert fit["scroll"] <= 0, step
    assert fit["verdictPx"] >= SMALLEST_VERDICT_PX, step
    assert fit["verdictInView"], step
    return fit


def open_screen(browser: Any, url: str, screen: Screen) -> tuple[Any, list[str]]:
    """A page of the screen's size and zoom on the theatre, drawn; and its console's errors."""
    page = browser.new_page(viewport=screen.viewport(), device_scale_factor=screen.zoom)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url, timeout=CLICK_TIMEOUT_MS * 3)
    page.wait_for_selector(".theatre-state svg", timeout=CLICK_TIMEOUT_MS * 3)
    return page, errors


def verdict(page: Any) -> str:
    return str(page.locator(".theatre-verdict .verdict").inner_text())


def wait_for_verdict(page: Any, words: str) -> None:
    page.wait_for_function(
        "w => document.querySelector('.theatre-verdict .verdict')?.innerText.includes(w)",
        arg=words, timeout=CLICK_TIMEOUT_MS,
    )  # fmt: skip


# Recovery is settled on screen once its last step and the verdict have faded in.
ALL_SHOWN = """() => {
    const steps = [...document.querySelectorAll('.theatre-steps li')];
    const verdict = document.querySelector('.theatre-verdict > div');
    return steps.length > 0 && getComputedStyle(steps.at(-1)).opacity === '1'
        && getComputedStyle(verdict).opacity === '1';
}"""


def click(page: Any, button: str, settled: Callable[[], None], timings: dict[str, float]) -> None:
    """Click a theatre button and wait until its picture settles; note how long that took."""
    started = time.monotonic()
    page.locator(f".theatre-{button}").click()
    settled()
    timings[button] = round(time.monotonic() - started, 2)


def play_story(page: Any, screen: Screen, mode: str) -> dict[str, Any]:
    """Crash after the charge, restart, recover, pay again, reset: check the fit at each step;
    return the click-to-settled times and the verdict's measured sizes."""
    timings: dict[str, float] = {}
    page.locator(".theatre select").select_option(
        label="after the gateway charged, before we recorded it"
    )
    assert_fits(page, screen, f"{mode}-1-stage")

    def died() -> None:
        page.wait_for_selector(".theatre-process .dead", timeout=CLICK_TIMEOUT_MS)
        wait_until_lit(page, "PROCESSING")
        wait_for_verdict(page, "After the crash")

    click(page, "pay", died, timings)
    crashed = assert_fits(page, screen, f"{mode}-2-crashed")
    assert verdict(page) == "After the crash the gateway holds: charged 25.00 EUR. We hold: PROCESSING."
    if WRITE_DOCS and mode == "simulated" and screen.name == "laptop":
        DOCS_SHOT.parent.mkdir(exist_ok=True)
        page.screenshot(path=DOCS_SHOT)

    click(page, "restart", lambda: wait_for_verdict(page, "A new process"), timings)
    assert_fits(page, screen, f"{mode}-3-restarted")

    def recovered() -> None:
        wait_for_verdict(page, "Charged once, our records agree.")
        page.wait_for_function(ALL_SHOWN, timeout=CLICK_TIMEOUT_MS)

    click(page, "recover", recovered, timings)
    settled = assert_fits(page, screen, f"{mode}-4-recovered")
    assert lit_state(page) == "SUCCESS"

    click(page, "again", lambda: wait_for_verdict(page, "Same key"), timings)
    assert_fits(page, screen, f"{mode}-5-paid-again")
    assert verdict(page).startswith("Same key, the same payment back: no new charge.")

    click(page, "reset", lambda: wait_for_verdict(page, "Choose where to crash"), timings)
    return {
        "click_to_settled_seconds": timings,
        "verdict_px": {"crashed": crashed["verdictPx"], "recovered": settled["verdictPx"]},
        "ledger_verdict_px": settled["ledgerPx"],
        "theatre_width_of_window": round(settled["span"], 3),
    }


@pytest.mark.parametrize("screen", SCREENS, ids=lambda screen: screen.name)
def test_the_story_fits_the_screen_at_every_step(
    browser: Any,  # noqa: F811 - the fixture imported above
    theatre_url: str,  # noqa: F811 - the fixture imported above
    screen: Screen,
) -> None:
    """Pay (crash after the charge), Restart, Recover, Pay again, Reset: at each step nothing is
    cut off, overflows, overlaps or is too small to read, and the browser logs no error."""
    page, errors = open_screen(browser, theatre_url, screen)
    figures = play_story(page, screen, "simulated")
    page.close()
    (OUT / f"{screen.name}-figures.json").write_text(json.dumps(figures, indent=1))
    assert errors == []
    assert figures["ledger_verdict_px"] >= SMALLEST_VERDICT_PX - 2


def test_the_theatre_spans_a_projector_screen(
    browser: Any,  # noqa: F811 - the fixture imported above
    theatre_url: str,  # noqa: F811 - the fixture imported above
) -> None:
    page, _ = open_screen(browser, theatre_url, SCREENS[1])
    span = measure(page)["span"]
    page.close()
    assert span >= 0.85
