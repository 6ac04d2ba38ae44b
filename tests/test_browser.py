"""The crash theatre and every notebook in a real browser: the system's Chromium, driven by
Playwright for Python (never a downloaded browser).

Without Chromium these tests skip with the reason; in CI (CI=true) they fail instead, so a CI
machine that lost its browser cannot go green by skipping. Each step leaves a screenshot under
test-output/ (gitignored) for a person to look at.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aegispay.viz.theatre_app import NOTEBOOK, free_port, voila_command, voila_environment

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "test-output"
NOTEBOOKS = [*sorted((ROOT / "notebooks").glob("*.ipynb")), NOTEBOOK]
IN_CI = os.environ.get("CI", "").lower() == "true"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Flags that keep Chromium off the network and quiet on a machine without a display.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
SCREEN = {"width": 1366, "height": 768}
START_TIMEOUT = 180.0
CLICK_TIMEOUT_MS = 60_000
NOTEBOOK_TIMEOUT_MS = 300_000

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    try:
        import playwright.sync_api  # noqa: F401, PLC0415 - only to learn whether it is there
    except ImportError:
        return "Playwright is not installed (pip install -e '.[browser]')"
    if CHROMIUM is None:
        return "no Chromium on PATH (Debian: apt-get install chromium)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = missing_browser()
    if reason is not None:
        if IN_CI:
            pytest.fail(f"CI must run the browser tests: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - optional dependency

    with sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def serve(
    command: list[str], env: dict[str, str], log: Path, ready: str
) -> subprocess.Popen[bytes]:
    """Start a server with its output in `log`; return once `ready` answers HTTP 200."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        server = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        assert server.poll() is None, f"the server exited: {log.read_text()[-3000:]}"
        try:
            with urllib.request.urlopen(ready, timeout=5) as answer:
                if answer.status == 200:
                    return server
        except OSError:
            time.sleep(0.5)
    stop(server)
    raise AssertionError(f"the server did not answer {ready}: {log.read_text()[-3000:]}")


def stop(server: subprocess.Popen[bytes]) -> None:
    """Stop a server this test started, by its own process."""
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


@pytest.fixture(scope="module")
def theatre_url(browser: Any) -> Iterator[str]:
    port = free_port(0)
    url = f"http://127.0.0.1:{port}/"
    # Voila answers its static files at once, without running the notebook for them.
    server = serve(voila_command(port), voila_environment(), SHOTS / "theatre" / "voila.log",
                   f"{url}voila/static/voila.js")  # fmt: skip
    yield url
    stop(server)


def open_page(browser: Any) -> tuple[Any, list[str]]:
    """A page of the laptop's size, and the list its console errors land in."""
    page = browser.new_page(viewport=SCREEN)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return page, errors


def svg_text(page: Any) -> str:
    """The words drawn in the state machine picture."""
    return " ".join(page.locator(".theatre-state svg text").all_text_contents())


LIT_STATE = """() => {
    const texts = [...document.querySelectorAll('.theatre-state svg text')];
    const now = texts.findIndex(t => t.textContent === 'now');
    return now > 0 ? texts[now - 1].textContent : '';
}"""


def lit_state(page: Any) -> str:
    """The state drawn with 'now' under it: the one lit."""
    return str(page.evaluate(LIT_STATE))


def wait_until_lit(page: Any, state: str) -> None:
    """Wait for the state picture to light `state` (each panel arrives in its own message)."""
    page.wait_for_function(f"() => ({LIT_STATE})() === {json.dumps(state)}",
                           timeout=CLICK_TIMEOUT_MS)  # fmt: skip


def panel(page: Any, name: str) -> str:
    return str(page.locator(f".theatre-{name}").inner_text())


@pytest.mark.parametrize("mode", ["simulated", "real"])
def test_the_three_clicks_crash_restart_and_recover_on_screen(
    browser: Any, theatre_url: str, mode: str
) -> None:
    """Pay (crash after the charge), Restart, Recover: the state picture and the two ledgers
    change at each click and agree at the end, and the browser logs no error."""
    shots = SHOTS / "theatre"
    page, errors = open_page(browser)
    page.goto(theatre_url, timeout=CLICK_TIMEOUT_MS * 3)
    page.wait_for_selector(".theatre-state svg", timeout=CLICK_TIMEOUT_MS * 3)
    if mode == "real":
        page.get_by_text("real process, killed with SIGKILL").click()
        page.wait_for_selector("text=each payment runs in a new worker process")
    page.locator(".theatre select").select_option(
        label="after the gateway charged, before we recorded it"
    )
    page.screenshot(path=shots / f"{mode}-1-stage.png")
    stage_svg, stage_ledgers = svg_text(page), panel(page, "ledgers")
    assert lit_state(page) == ""

    started = time.monotonic()
    page.locator(".theatre-pay").click()
    page.wait_for_selector(".theatre-process .dead", timeout=CLICK_TIMEOUT_MS)
    wait_until_lit(page, "PROCESSING")
    page.screenshot(path=shots / f"{mode}-2-paid-and-died.png")
    assert lit_state(page) == "PROCESSING"
    assert svg_text(page) != stage_svg
    crashed_ledgers = panel(page, "ledgers")
    assert crashed_ledgers != stage_ledgers
    assert "charged 25.00 EUR" in crashed_ledgers
    assert "PROCESSING 25.00 EUR" in crashed_ledgers
    assert "unsettled" in crashed_ledgers

    page.locator(".theatre-restart").click()
    page.wait_for_selector(".theatre-process .alive", timeout=CLICK_TIMEOUT_MS)
    page.screenshot(path=shots / f"{mode}-3-restarted.png")

    page.locator(".theatre-recover").click()
    last_step = page.locator(".theatre-steps li").last
    last_step.wait_for(timeout=CLICK_TIMEOUT_MS)
    page.wait_for_function(
        "() => { const s = [...document.querySelectorAll('.theatre-steps li')];"
        " return s.length === 4 && getComputedStyle(s[3]).opacity === '1'; }",
        timeout=CLICK_TIMEOUT_MS,
    )
    wait_until_lit(page, "SUCCESS")
    on_screen = time.monotonic() - started
    page.screenshot(path=shots / f"{mode}-4-recovered.png")
    assert lit_state(page) == "SUCCESS"
    settled_ledgers = panel(page, "ledgers")
    assert settled_ledgers != crashed_ledgers
    assert "SUCCESS 25.00 EUR" in settled_ledgers
    assert "charged 25.00 EUR" in settled_ledgers
    assert "✔ agree" in settled_ledgers
    assert "every invariant holds" in panel(page, "story")
    (shots / f"{mode}-timing.json").write_text(
        json.dumps({"pay_click_to_recovered_picture_seconds": round(on_screen, 2)})
    )

    # Time travel: one step back on the slider is replay(events[:3]), lit PROCESSING again.
    page.locator(".theatre .noUi-handle").first.press("ArrowLeft")
    page.wait_for_function(
        "() => document.querySelector('.theatre-replay').innerText.includes('events[:3]')",
        timeout=CLICK_TIMEOUT_MS,
    )
    wait_until_lit(page, "PROCESSING")
    page.screenshot(path=shots / f"{mode}-5-back-to-v3.png")
    assert lit_state(page) == "PROCESSING"
    assert "PROCESSING" in panel(page, "replay")
    page.close()
    assert errors == []


@pytest.fixture(scope="module")
def lab(browser: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """JupyterLab over copies of the notebooks (its autosave must never touch the originals)."""
    root = tmp_path_factory.mktemp("lab")
    for notebook in NOTEBOOKS:
        shutil.copy(notebook, root / notebook.name)
    port, token = free_port(0), secrets.token_hex(16)
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", f"--port={port}",
        "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}", f"--LabApp.workspaces_dir={root / '.workspaces'}",
        "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    server = serve(command, dict(os.environ), SHOTS / "notebooks" / "lab.log",
                   f"{url}/api/status?token={token}")  # fmt: skip
    yield f"{url}/lab/tree/{{name}}?reset&token={token}"
    stop(server)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.stem)
def test_every_notebook_runs_all_cells_in_jupyterlab_without_an_error(
    browser: Any, lab: str, notebook: Path
) -> None:
    page, _ = open_page(browser)
    page.goto(lab.format(name=notebook.name), timeout=NOTEBOOK_TIMEOUT_MS)
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=NOTEBOOK_TIMEOUT_MS)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']",
                           timeout=NOTEBOOK_TIMEOUT_MS)  # fmt: skip
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    # Every code cell gets its execution number; "[*]" means it is still running.
    page.wait_for_function(
        """() => {
            const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];
            return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.innerText));
        }""",
        timeout=NOTEBOOK_TIMEOUT_MS,
    )
    page.screenshot(path=SHOTS / "notebooks" / f"{notebook.stem}.png")
    errors = page.locator(
        '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
    ).all_inner_texts()
    page.close()
    assert [text for text in errors if "Error" in text or "Traceback" in text] == []
    assert errors == []
