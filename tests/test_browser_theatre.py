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

from tests import test_browser
from tests.test_browser import (
    CLICK_TIMEOUT_MS,
    ROOT,
    SHOTS,
    lit_state,
    panel,
    wait_until_lit,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]
# The browser and the Voila server that tests/test_browser.py starts, shared as fixtures.
browser = test_browser.browser
theatre_url = test_browser.theatre_url

OUT = SHOTS / "theatre"
DOCS_SHOT = ROOT / "docs" / "theatre.png"
WRITE_DOCS = os.environ.get("AEGISPAY_SCREENSHOTS", "") == "docs"
SMALLEST_TEXT_PX = 14
SMALLEST_VERDICT_PX = 24
SMALLEST_AUDIT_PX = 20


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
    const all = selector => [...document.querySelectorAll(selector)];
    const named = e => e.className + ': ' + e.innerText.slice(0, 40);
    const shown = all('.theatre .card, .theatre .widget-button, .theatre select,'
        + ' .theatre .widget-checkbox, .theatre .widget-slider, .theatre-verdict,'
        + ' .theatre-replay').filter(e => e.offsetParent !== null);
    const outside = shown.filter(e => !inside(e.getBoundingClientRect())).map(named);
    const overflowing = all('.theatre .widget-button, .theatre .card')
        .filter(e => e.scrollWidth > e.clientWidth + 1).map(named);
    const cards = all('.theatre .card').map(e => e.getBoundingClientRect());
    const overlaps = [];
    cards.forEach((a, i) => cards.slice(i + 1).forEach(b => {
        if (a.left < b.right - 1 && b.left < a.right - 1
            && a.top < b.bottom - 1 && b.top < a.bottom - 1)
            overlaps.push([a.left, a.top, b.left, b.top].map(Math.round).join(','));
    }));
    const small = [];
    const texts = document.createTreeWalker(
        document.querySelector('.theatre'), NodeFilter.SHOW_TEXT);
    for (let node = texts.nextNode(); node; node = texts.nextNode()) {
        const owner = node.parentElement;
        const inSvg = owner.closest('svg') !== null;
        if (!node.textContent.trim() || (owner.offsetParent === null && !inSvg)) continue;
        let px = parseFloat(getComputedStyle(owner).fontSize);
        if (inSvg) {
            if (owner.tagName !== 'text') continue;  // a <title>: a tooltip, not on screen
            if (['#cccccc', 'gray80'].includes(owner.getAttribute('fill'))) continue;
            px = parseFloat(owner.getAttribute('font-size')) * owner.getScreenCTM().a;
        }
        if (px < smallest) small.push(px.toFixed(1) + 'px: ' + node.textContent.slice(0, 30));
    }
    const size = e => parseFloat(getComputedStyle(e).fontSize);
    const verdict = document.querySelector('.theatre-verdict .verdict');
    const box = verdict.getBoundingClientRect();
    return {
        outside, overflowing, overlaps, small,
        scroll: document.documentElement.scrollWidth - innerWidth,
        verdictPx: size(verdict),
        verdictInView: box.top >= 0 && box.bottom <= innerHeight && inside(box),
        ledgerPx: size(document.querySelector('.ledger-verdict') || verdict),
        auditPx: size(document.querySelector('.theatre .audit')),
        span: document.querySelector('.theatre').getBoundingClientRect().width / innerWidth,
    };
}"""


# Voila scrolls its cells' box, not the document, and scrollIntoView also moves boxes whose
# overflow is hidden: every box around the theatre is put back at its top.
BACK_TO_THE_TOP = """() => {
    for (let box = document.querySelector('.theatre'); box; box = box.parentElement)
        box.scrollTop = 0;
    window.scrollTo(0, 0);
}"""
REACHED = """last => {
    const r = document.querySelector(last).getBoundingClientRect();
    return r.top >= 0 && r.bottom <= innerHeight + 0.5;
}"""


def measure(page: Any) -> dict[str, Any]:
    """The page's fit, as MEASURE reads it."""
    return dict(page.evaluate(MEASURE, SMALLEST_TEXT_PX))


def assert_fits(
    page: Any, screen: Screen, step: str, last: str = ".theatre-replay"
) -> dict[str, Any]:
    """Nothing cut off, overflowing, overlapping or too small on this screen at this step; the
    `last` box on the screen can be scrolled to."""
    page.screenshot(path=OUT / f"{screen.name}-{step}.png")
    fit = measure(page)
    # Below the window's edge the page scrolls (inside Voila's cells): the last row is reachable.
    page.evaluate("l => document.querySelector(l).scrollIntoView({block: 'end'})", last)
    page.screenshot(path=OUT / f"{screen.name}-{step}-bottom.png")
    reached = page.evaluate(REACHED, last)
    page.evaluate(BACK_TO_THE_TOP)
    wrong = {
        name: fit[name] for name in ("outside", "overflowing", "overlaps", "small") if fit[name]
    }
    if fit["scroll"] > 0:
        wrong["horizontal scroll (px)"] = fit["scroll"]
    if fit["verdictPx"] < SMALLEST_VERDICT_PX or not fit["verdictInView"]:
        wrong["verdict"] = (fit["verdictPx"], fit["verdictInView"])
    if not reached:
        wrong["the last row cannot be scrolled to"] = reached
    assert wrong == {}, f"{screen.name} {step}"
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


def wait_for_panel(page: Any, name: str, words: str) -> None:
    """Wait for a panel to show `words` (each panel arrives in its own message)."""
    page.wait_for_function(
        "([name, w]) => document.querySelector('.theatre-' + name)?.innerText.includes(w)",
        arg=[name, words], timeout=CLICK_TIMEOUT_MS,
    )  # fmt: skip


# Recovery is settled on screen once its last step and the verdict have faded in.
ALL_SHOWN = """() => {
    const steps = [...document.querySelectorAll('.theatre-steps li')];
    const verdict = document.querySelector('.verdict-line');
    return steps.length > 0 && getComputedStyle(steps.at(-1)).opacity === '1'
        && getComputedStyle(verdict).opacity === '1';
}"""


# The verdict fades in with recovery's last step, not before it.
ARRIVE_TOGETHER = """() => ({
    verdict: getComputedStyle(document.querySelector('.verdict-line')).animationDelay,
    'last step': getComputedStyle([...document.querySelectorAll('.theatre-steps li')].at(-1))
        .animationDelay,
})"""


def click(page: Any, button: str, settled: Callable[[], None], timings: dict[str, float]) -> None:
    """Click a theatre button and wait until its picture settles; note how long that took."""
    started = time.monotonic()
    page.locator(f".theatre-{button}").click()
    settled()
    timings[button] = round(time.monotonic() - started, 2)


def play_story(page: Any, screen: Screen, mode: str) -> dict[str, Any]:
    """Crash after the charge, restart, recover, step back, pay again, reset: check the fit at
    each step; return the click-to-settled times, the verdicts' measured sizes and what the
    process panel said after the crash and after the restart."""
    timings: dict[str, float] = {}
    page.locator(".theatre-crash select").select_option(
        label="after the gateway charged, before we recorded it"
    )
    assert_fits(page, screen, f"{mode}-1-stage")

    def died() -> None:
        page.wait_for_selector(".theatre-process .dead", timeout=CLICK_TIMEOUT_MS)
        wait_until_lit(page, "PROCESSING")
        wait_for_verdict(page, "After the crash")
        wait_for_panel(page, "replay", "events[:3]")

    click(page, "pay", died, timings)
    crashed = assert_fits(page, screen, f"{mode}-2-crashed")
    killed = panel(page, "process")
    assert (
        verdict(page)
        == "After the crash the gateway holds: charged 25.00 EUR. We hold: PROCESSING."
    )
    if WRITE_DOCS and mode == "simulated" and screen.name == "laptop":
        DOCS_SHOT.parent.mkdir(exist_ok=True)
        page.screenshot(path=DOCS_SHOT)

    click(page, "restart", lambda: wait_for_verdict(page, "The next process"), timings)
    assert_fits(page, screen, f"{mode}-3-restarted")
    next_process = panel(page, "process")

    def recovered() -> None:
        wait_for_verdict(page, "Charged once, our records agree.")
        page.wait_for_function(ALL_SHOWN, timeout=CLICK_TIMEOUT_MS)
        wait_for_panel(page, "replay", "events[:4]")

    click(page, "recover", recovered, timings)
    settled = assert_fits(page, screen, f"{mode}-4-recovered")
    assert lit_state(page) == "SUCCESS"
    assert page.evaluate(ARRIVE_TOGETHER) == {"verdict": "1.8s", "last step": "1.8s"}
    # Time travel: one step back on the slider is replay(events[:3]), lit PROCESSING again.
    page.locator(".theatre .noUi-handle").first.press("ArrowLeft")
    wait_until_lit(page, "PROCESSING")
    wait_for_panel(page, "replay", "events[:3]")
    assert "PROCESSING" in panel(page, "replay")

    def paid_again() -> None:
        wait_for_verdict(page, "Same key")
        wait_for_panel(page, "client", "the same payment back")
        wait_for_panel(page, "replay", "events[:4]")

    click(page, "again", paid_again, timings)
    assert_fits(page, screen, f"{mode}-5-paid-again")
    assert verdict(page).startswith("Same key, the same payment back: no new charge.")
    assert "same key, the same payment back: SUCCESS" in panel(page, "client")
    assert panel(page, "ledgers").count("charged 25.00 EUR") == 1
    assert lit_state(page) == "SUCCESS"

    click(page, "reset", lambda: wait_for_verdict(page, "Choose where to crash"), timings)
    return {
        "click_to_settled_seconds": timings,
        "verdict_px": {"crashed": crashed["verdictPx"], "recovered": settled["verdictPx"]},
        "ledger_verdict_px": settled["ledgerPx"],
        "audit_px": settled["auditPx"],
        "theatre_width_of_window": round(settled["span"], 3),
        "killed": killed,
        "next": next_process,
    }


@pytest.mark.parametrize("screen", SCREENS, ids=lambda screen: screen.name)
def test_the_story_fits_the_screen_at_every_step(
    browser: Any,
    theatre_url: str,
    screen: Screen,
) -> None:
    """Pay (crash after the charge), Restart, Recover, Pay again, Reset: at each step nothing is
    cut off, overflows, overlaps or is too small to read, and the browser logs no error."""
    page, errors = open_screen(browser, theatre_url, screen)
    figures = play_story(page, screen, "simulated")
    page.close()
    (OUT / f"{screen.name}-figures.json").write_text(json.dumps(figures, indent=1))
    assert "process 2: new, alive" in figures["next"]
    assert errors == []
    assert figures["ledger_verdict_px"] >= SMALLEST_VERDICT_PX
    assert figures["audit_px"] >= SMALLEST_AUDIT_PX


def test_the_theatre_spans_a_projector_screen(
    browser: Any,
    theatre_url: str,
) -> None:
    page, _ = open_screen(browser, theatre_url, SCREENS[1])
    span = measure(page)["span"]
    page.close()
    assert span >= 0.85


def test_real_mode_kills_a_worker_and_says_which_process_comes_next(
    browser: Any,
    theatre_url: str,
) -> None:
    """With the switch on, a worker process is killed with SIGKILL; after Restart the screen
    names the next process as the app's own, by a pid that is not the worker's; the story ends
    charged once, and one step back on the slider is PROCESSING again."""
    screen = SCREENS[0]
    page, errors = open_screen(browser, theatre_url, screen)
    page.get_by_text("real process, killed with SIGKILL").click()
    page.wait_for_selector(
        "text=each payment runs in a new worker process", timeout=CLICK_TIMEOUT_MS
    )
    figures = play_story(page, screen, "real")
    page.close()
    (OUT / "real-figures.json").write_text(json.dumps(figures, indent=1))
    killed, next_process = figures["killed"], figures["next"]
    assert "killed with SIGKILL (exit status -9)" in killed
    assert "this app, pid" in next_process
    worker_pid = killed.split("worker pid ")[1].split(":")[0]
    assert f"not the killed worker (pid {worker_pid})" in next_process
    assert f"this app, pid {worker_pid}" not in next_process
    assert errors == []


# "Remove a defense": the lanes of the shortest counterexample, step by step.
LANE_STEPS = ".theatre-lanes .lane-say, .theatre-lanes .lane-note"
# The lanes' type as drawn (headers, sentences, boxes), and the breaking step's colour and words.
LANES_MEASURED = """() => {
    const size = e => parseFloat(getComputedStyle(e).fontSize);
    const words = [...document.querySelectorAll('.theatre-lanes .lane-head, .theatre-lanes '
        + '.lane-say, .theatre-lanes .lane-note')];
    const breaks = [...document.querySelectorAll('.theatre-lanes .lane-say.breaks, '
        + '.theatre-lanes .lane-note.breaks')];
    return {
        heads: [...document.querySelectorAll('.theatre-lanes .lane-head')].map(e => e.innerText),
        smallestPx: Math.min(...words.map(size)), largestPx: Math.max(...words.map(size)),
        breaking: breaks.map(e => [e.innerText, getComputedStyle(e).color]),
        arrows: document.querySelectorAll('.theatre-lanes .arrow').length,
        storyShown: document.querySelector('.theatre-state').offsetParent !== null,
    };
}"""


def steps_on_lanes(page: Any) -> int:
    return int(page.locator(LANE_STEPS).count())


def wait_for_steps(page: Any, count: int) -> None:
    page.wait_for_function(
        "([s, n]) => document.querySelectorAll(s).length === n",
        arg=[LANE_STEPS, count], timeout=CLICK_TIMEOUT_MS,
    )  # fmt: skip


def remove_defense(page: Any, words: str) -> None:
    page.locator(".theatre-defense select").select_option(label=words)
    wait_for_verdict(page, "What breaks without" if words != "none" else "Choose where to crash")


def play_defense(page: Any, screen: Screen) -> dict[str, Any]:
    """Remove the idempotency key; Play the attack (its first step arrives), Pause, then Next
    step to the end: check the fit with no step, paused, at the breaking step and the last; the
    lanes, the red breaking step and the verdict naming the broken promise; then back to none."""
    timings: dict[str, float] = {}
    remove_defense(page, "the gateway's idempotency key")
    assert_fits(page, screen, "defense-1-chosen", last=".theatre-lanes")
    click(page, "attack-play", lambda: wait_for_steps(page, 1), timings)
    # Pause (the same button), so that Next step alone moves the lanes on from here.
    page.locator(".theatre-attack-play").click()
    page.wait_for_selector(".theatre-attack-play:has-text('Play the attack')")
    assert_fits(page, screen, "defense-2-paused", last=".theatre-lanes")
    shown, fits, seen = steps_on_lanes(page), {}, {}
    while "charged twice" not in verdict(page):
        click(page, "attack-next", lambda n=shown + 1: wait_for_steps(page, n), timings)
        shown += 1
    assert verdict(page) == "Without the gateway's idempotency key: charged twice."
    seen["breaking"] = page.evaluate(LANES_MEASURED)
    fits["breaking"] = assert_fits(page, screen, "defense-3-breaks", last=".theatre-lanes")
    while not page.locator(".theatre-attack-next").is_disabled():
        page.locator(".theatre-attack-next").click()
        wait_for_steps(page, shown + 1)
        shown += 1
    wait_for_panel(page, "verdict", "The end: 17 steps")
    seen["end"] = page.evaluate(LANES_MEASURED)
    assert_fits(page, screen, "defense-4-end", last=".theatre-lanes")
    remove_defense(page, "none")
    back = page.evaluate(LANES_MEASURED)
    return {
        "click_to_settled_seconds": timings,
        "lanes_px": {"smallest": seen["end"]["smallestPx"], "largest": seen["end"]["largestPx"]},
        "verdict_px": fits["breaking"]["verdictPx"],
        "seen": seen,
        "story_back": back["storyShown"],
        "steps": shown,
    }


@pytest.mark.parametrize("screen", SCREENS, ids=lambda screen: screen.name)
def test_a_removed_defense_plays_its_counterexample_as_lanes_that_fit_the_screen(
    browser: Any,
    theatre_url: str,
    screen: Screen,
) -> None:
    """Without the gateway's idempotency key the lanes grow step by step in place of the crash
    story, the step that charges twice is marked in red, the verdict says "charged twice", and
    at each step nothing is cut off, overflows or is under 14 px."""
    page, errors = open_screen(browser, theatre_url, screen)
    figures = play_defense(page, screen)
    page.close()
    (OUT / f"{screen.name}-defense-figures.json").write_text(json.dumps(figures, indent=1))
    breaking, end = figures["seen"]["breaking"], figures["seen"]["end"]
    lanes = ["client", "process A", "process B", "recovery", "event store", "gateway"]
    assert breaking["heads"] == lanes
    assert not breaking["storyShown"] and figures["story_back"]
    assert breaking["breaking"] == [
        ["14. ✘ the gateway charges 42.00 EUR (t2)", "rgb(185, 28, 28)"]
    ]
    assert figures["steps"] == 17 and end["arrows"] == 15
    assert figures["lanes_px"]["smallest"] >= SMALLEST_TEXT_PX
    assert errors == []


def test_play_shows_a_step_a_second_and_the_verdict_arrives_with_the_breaking_step(
    browser: Any,
    theatre_url: str,
) -> None:
    """Play alone, without the intent written first: six steps a second apart; the promise breaks
    at step 4, and the verdict says so when it arrives, not before."""
    page, errors = open_screen(browser, theatre_url, SCREENS[0])
    remove_defense(page, "writing the intent before the charge")
    page.locator(".theatre-attack-play").click()
    wait_for_steps(page, 3)
    assert "nothing broken yet" in verdict(page)
    started = time.monotonic()
    wait_for_verdict(page, "our records never say the charge was sent")
    assert steps_on_lanes(page) == 4
    wait_for_steps(page, 6)
    two_steps = time.monotonic() - started
    page.wait_for_selector(".theatre-attack-play:has-text('Play the attack')")
    assert_fits(page, SCREENS[0], "defense-played", last=".theatre-lanes")
    page.close()
    assert 1.0 < two_steps < 6.0
    assert errors == []


def test_without_the_lock_the_theatre_says_nothing_breaks_and_why(
    browser: Any,
    theatre_url: str,
) -> None:
    page, errors = open_screen(browser, theatre_url, SCREENS[0])
    remove_defense(page, "the payment lease (lock)")
    timings: dict[str, float] = {}
    click(page, "attack-play", lambda: wait_for_verdict(page, "Nothing breaks"), timings)
    assert verdict(page) == (
        "Nothing breaks without the payment lease (lock): the store's expected version is the "
        "fence; the lock only saves duplicate work."
    )
    assert "the promise held over" in panel(page, "lanes")
    assert_fits(page, SCREENS[0], "defense-lock", last=".theatre-lanes")
    page.close()
    (OUT / "lock-figures.json").write_text(json.dumps(timings))
    assert errors == []
