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
from contextlib import contextmanager
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


# JupyterLab's settings for the test: every cell in the page (no windowing, so every output is
# in the DOM to look at), and no news or update check to fetch from outside.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false", "checkForUpdates": False,
    },
}  # fmt: skip
# The open notebook, as JupyterLab's own model holds it (the app is exposed for the test).
NOTEBOOK_STATE = """() => {
    const panel = window.jupyterapp.shell.currentWidget;
    const code = panel.content.widgets.filter(
        cell => cell.model.type === 'code' && cell.model.sharedModel.getSource().trim());
    const outputs = code.flatMap(cell => cell.model.outputs.toJSON());
    return {
        kernel: panel.sessionContext.session?.kernel?.status ?? 'none',
        cells: code.length,
        counted: code.filter(cell => cell.model.executionCount !== null).length,
        failed: outputs.filter(o => o.output_type === 'error' || o.name === 'stderr').length,
    };
}"""


@pytest.fixture(scope="module")
def lab(browser: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """JupyterLab over copies of the notebooks (its autosave must never touch the originals)."""
    with serve_lab(tmp_path_factory.mktemp("lab"), SHOTS / "notebooks" / "lab.log") as url:
        yield url


@contextmanager
def serve_lab(root: Path, log: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """JupyterLab over copies of the notebooks in `root`, with `env` added to its environment;
    yields the address of a notebook, to fill in with its `name`."""
    for notebook in NOTEBOOKS:
        shutil.copy(notebook, root / notebook.name)
    settings = root / ".settings"
    for name, values in LAB_SETTINGS.items():
        (settings / name).parent.mkdir(parents=True, exist_ok=True)
        (settings / name).write_text(json.dumps(values))
    port, token = free_port(0), secrets.token_hex(16)
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", f"--port={port}",
        "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}", f"--LabApp.workspaces_dir={root / '.workspaces'}",
        "--LabApp.expose_app_in_browser=True",
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    full_env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(settings), **(env or {})}
    server = serve(command, full_env, log, f"{url}/api/status?token={token}")
    try:
        yield f"{url}/lab/tree/{{name}}?reset&token={token}"
    finally:
        stop(server)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.stem)
def test_every_notebook_runs_all_cells_in_jupyterlab_without_an_error(
    browser: Any, lab: str, notebook: Path
) -> None:
    """Open it, clear its saved outputs, Run > Run All Cells, wait for every code cell's count:
    no error and nothing on stderr, in the model or on the page."""
    page, _ = open_page(browser)
    page.goto(lab.format(name=notebook.name), timeout=NOTEBOOK_TIMEOUT_MS)
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=NOTEBOOK_TIMEOUT_MS)
    page.wait_for_function(f"() => ({NOTEBOOK_STATE})().kernel === 'idle'",
                           timeout=NOTEBOOK_TIMEOUT_MS)  # fmt: skip
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
    page.wait_for_function(f"() => ({NOTEBOOK_STATE})().counted === 0")
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    # Done when every code cell has its count and the kernel is idle, or as soon as one failed.
    page.wait_for_function(
        f"""() => {{ const s = ({NOTEBOOK_STATE})();
            return s.failed > 0 || (s.kernel === 'idle' && s.counted === s.cells); }}""",
        timeout=NOTEBOOK_TIMEOUT_MS,
    )
    state = page.evaluate(NOTEBOOK_STATE)
    page.screenshot(path=SHOTS / "notebooks" / f"{notebook.stem}.png", full_page=True)
    on_page = page.locator(
        '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
    ).all_inner_texts()
    page.close()
    assert on_page == []
    assert state["failed"] == 0
    assert state["counted"] == state["cells"] > 0
