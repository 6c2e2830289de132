"""Headless Chromium (Debian's `chromium` and `chromium-driver` packages) driven through
selenium, with the flags a closed network and a root user need, a fake microphone, and
downloads into a known folder. Waits are on page state, never on the clock."""

from __future__ import annotations

import base64
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = os.environ.get("CHROMIUM_BINARY", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
# Generous: the tiny model on two busy cores can take a while, and waits end on state anyway.
WAIT_SECONDS = 120.0

T = TypeVar("T")

FLAGS = (
    "--headless",
    "--no-sandbox",  # root, as on CI
    "--disable-gpu",
    "--disable-dev-shm-usage",
    # No connections anywhere but the test server: the network is closed and would stall them.
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1360,1100",
    "--autoplay-policy=no-user-gesture-required",
    # A fake microphone (a beeping tone) that needs no permission prompt.
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
)


def require_chromium() -> None:
    """Skip where the browser is not installed (scripts/test installs it as root); on CI
    a missing browser is a failure, not a skip."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if shutil.which(path) is None]
    if missing:
        message = f"not installed: {', '.join(missing)} (apt-get install chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@contextmanager
def chromium(profile_dir: Path, download_dir: Path) -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile_dir}")  # fresh for every browser
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(download_dir)})
        yield driver
    finally:
        driver.quit()


def wait_for(driver: webdriver.Chrome, condition: Callable[[webdriver.Chrome], T], timeout: float = WAIT_SECONDS) -> T:
    """The first truthy value of `condition`, polled until the deadline."""
    result: T = WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition)
    return result


def open_page(driver: webdriver.Chrome, base_url: str) -> webdriver.Chrome:
    """The playground, freshly loaded from `/` with empty session storage, once its first
    calls (voices, health) have answered."""
    driver.get(base_url + "/")
    driver.execute_script("sessionStorage.clear()")
    driver.refresh()
    wait_for(driver, lambda d: d.execute_script("return document.body.dataset.ready === 'true'"))
    return driver


def by_id(driver: webdriver.Chrome, element_id: str) -> WebElement:
    return driver.find_element(By.ID, element_id)


def data(element: WebElement, name: str) -> str:
    return element.get_attribute(f"data-{name}") or ""


def script_errors(driver: webdriver.Chrome) -> list[dict[str, Any]]:
    """Uncaught exceptions, console.error calls and content security policy violations since
    the last read (failed requests, which the browser also logs, are the API's answers and
    the tests check them)."""
    return [
        entry
        for entry in driver.get_log("browser")
        if entry["level"] == "SEVERE" and entry.get("source") in ("javascript", "console-api", "security")
    ]


def wait_for_file(folder: Path, suffix: str, timeout: float = WAIT_SECONDS) -> Path:
    """A finished download (Chromium writes `.crdownload` until it is complete)."""
    deadline = time.monotonic() + timeout
    while True:
        done = [path for path in folder.iterdir() if path.suffix == suffix]
        if done:
            return done[0]
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {suffix} file in {folder}: {[p.name for p in folder.iterdir()]}")
        time.sleep(0.1)


def full_page_screenshot(driver: webdriver.Chrome, path: Path) -> Path:
    """The whole page, below the window's fold too (Chromium's DevTools capture)."""
    width, height = driver.execute_script(
        "return [document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
    )
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
        },
    )
    path.write_bytes(base64.b64decode(shot["data"]))
    return path
