"""A real browser: the runbook served by Voila, opened in headless Chromium (Debian's
package, driven by Playwright), where clicking "Apply next" applies exactly one migration.

Chromium comes from Debian's package, which `make test` installs (as root) before any test;
no browser is downloaded. A missing Chromium fails the test with the command that installs it.
Voila's output goes to a file (a pipe nobody reads fills up and blocks Voila); when the
runbook's button never appears, the failure shows that log's end, the page's text and a
screenshot, so a rare failure can be read afterwards instead of re-run.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


# Voila's line after "Voilà is running at:".
ANNOUNCED = re.compile(r"running at:\s*(http://127\.0\.0\.1:[0-9]+/)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def applied(db_url: str) -> int:
    return commands.status(target=db_url, project=REPO / "migrations").count("applied")


@pytest.fixture
def voila_log(tmp_path: Path) -> Path:
    return tmp_path / "voila.log"


@pytest.fixture
def voila(db_url: str, voila_log: Path) -> Iterator[str]:
    """Voila serving the runbook against the test database (DATABASE_URL, as a DBA would)."""
    yield from _serve(db_url, voila_log, {})


@pytest.fixture
def voila_production(db_url: str, voila_log: Path, tmp_path: Path) -> Iterator[str]:
    """The same, but the server is no sandbox of this BILANTOOLS_HOME: as production."""
    yield from _serve(db_url, voila_log, {"BILANTOOLS_HOME": str(tmp_path / "elsewhere")})


def _serve(db_url: str, voila_log: Path, extra: dict[str, str]) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "DATABASE_URL": db_url, "TQDM_DISABLE": "1", **extra}
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
        stdout=voila_log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        yield _announced_url(process, voila_log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _announced_url(process: subprocess.Popen[bytes], log: Path) -> str:
    """The URL Voila says it serves, once it listens.

    When the port asked for was taken meanwhile (another test's server), Voila moves to
    the next one, and polling the one asked for would reach whoever took it. Nor is the
    page itself fetched to see whether Voila is up: each request of it runs the runbook in
    a kernel of its own, which then applied migrations beside the browser's."""
    deadline = time.monotonic() + 60
    while True:
        found = ANNOUNCED.search(log.read_text(errors="replace"))
        if found:
            return found[1]
        if time.monotonic() > deadline or process.poll() is not None:
            raise AssertionError(f"voila did not start:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.5)


def test_apply_next_in_the_browser(voila: str, voila_log: Path, db_url: str) -> None:
    chromium = shutil.which("chromium")
    assert chromium, "Chromium is needed: apt-get install chromium (make test installs it)"
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1600})
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        button = _open(page, voila, voila_log)
        up_to = page.locator("select").last  # the Apply panel's "Up to", the last dropdown of 02
        before = _settled(db_url)
        chosen = f"{before + 3:03d}"
        up_to.select_option(value=up_to.locator("option", has_text=chosen).get_attribute("value"))
        button.click()
        deadline = time.monotonic() + 60
        while applied(db_url) == before and time.monotonic() < deadline:
            time.sleep(0.3)
        time.sleep(2)  # exactly one: nothing more arrives after the first
        after = applied(db_url)
        page.wait_for_timeout(500)
        kept = up_to.evaluate("e => e.options[e.selectedIndex].text")  # after the run's refresh
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shot = SCREENSHOTS / "02_apply_stepwise.png"
        page.screenshot(path=str(shot), full_page=True)
        body = page.inner_text("body")
        browser.close()
    assert after == before + 1
    assert kept.split()[0] == chosen, kept  # the user's choice, not the last pending one
    assert shot.stat().st_size > 10_000
    assert not errors, errors
    assert "Error displaying widget" not in body and "Traceback" not in body
    assert "Apply up to" in body and "Apply to select..." not in body


def test_production_banner_and_the_versions_to_confirm(
    voila_production: str, voila_log: Path, db_url: str
) -> None:
    """Anything but the sandbox: the large red banner names server, database, role and
    writability; a click on Apply next only asks, naming the version it would run."""
    chromium = shutil.which("chromium")
    assert chromium, "Chromium is needed: apt-get install chromium (make test installs it)"
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1600})
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        button = _open(page, voila_production, voila_log)
        banner = page.locator(".widget-html-content > div", has_text="PRODUCTION? not the sandbox").first
        size = banner.evaluate("e => getComputedStyle(e).fontSize")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        banner.screenshot(path=str(SCREENSHOTS / "02_apply_stepwise-production-banner.png"))
        banner_text = banner.inner_text()
        button.click()
        confirm = page.locator("button.jupyter-button", has_text="Confirm: apply")
        confirm.wait_for(state="visible", timeout=60_000)
        question = confirm.inner_text()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "02_apply_stepwise-production.png"), full_page=True)
        page.locator("button.jupyter-button", has_text="Cancel").click()
        page.wait_for_timeout(1000)
        body = page.inner_text("body")
        browser.close()
    dbname = db_url.rsplit("/", 1)[1]
    assert size == "16px"
    assert f"database {dbname}" in banner_text and "role postgres" in banner_text
    assert "read-write (superuser)" in banner_text and "(from DATABASE_URL)" in banner_text
    assert question.strip() == f"Confirm: apply 1 migration(s) (001) to {db_url}"
    assert "cancelled: nothing was changed" in body
    assert "not run: apply 001_create_schema" in body  # the runbook's own change cells did nothing
    assert applied(db_url) == 0
    assert not errors, errors


def _open(page: Any, url: str, voila_log: Path) -> Any:
    """The runbook's page once every cell has run: its "Apply next" button."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.goto(url, wait_until="commit", timeout=120_000)  # Voila streams the page as cells run
    button = page.locator("button.jupyter-button", has_text="Apply next")
    try:
        button.wait_for(state="attached", timeout=300_000)  # after every cell above has run
    except PlaywrightTimeout:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "02_apply_stepwise-failed.png"), full_page=True)
        page_end = page.inner_text("body")[-3000:]
        log_end = voila_log.read_text(errors="replace")[-3000:]
        raise AssertionError(
            f"no 'Apply next' button after 300 s\n--- page (end) ---\n{page_end}\n"
            f"--- voila log (end) ---\n{log_end}"
        ) from None
    page.wait_for_timeout(1000)  # the last cell's outputs
    button.scroll_into_view_if_needed()
    return button


def _settled(db_url: str) -> int:
    """The applied count once the notebook's own cells have finished changing it."""
    last, stable_since = applied(db_url), time.monotonic()
    while time.monotonic() - stable_since < 3:
        time.sleep(0.5)
        now = applied(db_url)
        if now != last:
            last, stable_since = now, time.monotonic()
    return last
