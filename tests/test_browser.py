"""A real browser: the runbook served by Voila, opened in headless Chromium (Debian's
package, driven by Playwright), where clicking "Apply next" applies exactly one migration.

Chromium comes from Debian's package, which `make test` installs (as root) before any test;
no browser is downloaded. A missing Chromium fails the test with the command that installs it.
Voila's output goes to /dev/null: a pipe nobody reads fills up and blocks Voila.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bilantools import commands

pytestmark = pytest.mark.browser
REPO = Path(__file__).parent.parent
NOTEBOOK = REPO / "notebooks" / "02_apply_stepwise.ipynb"
SCREENSHOTS = REPO / ".bilantools" / "screenshots"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def applied(db_url: str) -> int:
    return commands.status(target=db_url, project=REPO / "migrations").count("applied")


@pytest.fixture
def voila(db_url: str) -> Iterator[str]:
    """Voila serving the runbook against the test database (DATABASE_URL, as a DBA would)."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": db_url, "TQDM_DISABLE": "1"}
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "voila"),
            str(NOTEBOOK),
            f"--port={port}",
            "--no-browser",
            "--Voila.ip=127.0.0.1",
        ],
        cwd=NOTEBOOK.parent,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url, timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise AssertionError("voila did not start") from None
                time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_apply_next_in_the_browser(voila: str, db_url: str) -> None:
    chromium = shutil.which("chromium")
    assert chromium, "Chromium is needed: apt-get install chromium (make test installs it)"
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1600})
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(voila, wait_until="commit", timeout=120_000)  # Voila streams the page as cells run
        button = page.locator("button.jupyter-button", has_text="Apply next")
        button.wait_for(state="attached", timeout=300_000)  # after every cell above has run
        button.scroll_into_view_if_needed()
        before = _settled(db_url)
        button.click()
        deadline = time.monotonic() + 60
        while applied(db_url) == before and time.monotonic() < deadline:
            time.sleep(0.3)
        time.sleep(2)  # exactly one: nothing more arrives after the first
        after = applied(db_url)
        page.wait_for_timeout(500)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shot = SCREENSHOTS / "02_apply_stepwise.png"
        page.screenshot(path=str(shot), full_page=True)
        body = page.inner_text("body")
        browser.close()
    assert after == before + 1
    assert shot.stat().st_size > 10_000
    assert not errors, errors
    assert "Error displaying widget" not in body and "Traceback" not in body


def _settled(db_url: str) -> int:
    """The applied count once the notebook's own cells have finished changing it."""
    last, stable_since = applied(db_url), time.monotonic()
    while time.monotonic() - stable_since < 3:
        time.sleep(0.5)
        now = applied(db_url)
        if now != last:
            last, stable_since = now, time.monotonic()
    return last
