"""Fixtures for the playground tests: a live server on the dev checkpoints, one headless
Chromium per module, and a folder for screenshots (PLAYGROUND_ARTIFACTS, or a pytest temp
folder), named in the run's summary."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver

from tests.support.browser import chromium, open_page, require_chromium, script_errors
from tests.support.live_server import LiveServer, dev_settings, live_server

_artifacts: list[Path] = []
_outcome = pytest.StashKey[pytest.TestReport]()


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get("PLAYGROUND_ARTIFACTS")
    folder = Path(configured) if configured else tmp_path_factory.mktemp("playground-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    _artifacts.append(folder)
    return folder


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for folder in _artifacts:
        terminalreporter.write_line(f"playground screenshots: {folder}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Iterator[None]:
    report = yield
    item.stash[_outcome] = report  # the page fixture reads it to screenshot failures
    return report


@pytest.fixture(scope="session")
def playground_server(
    custom_voice_dir: Path,
    base_dir: Path,
    voice_design_dir: Path,
    aligner_checkpoint: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveServer]:
    """Its own server (and voice folder), so the page's voice list holds only what these tests
    save; with the VoiceDesign slot on, for the Design panel, and the aligner, for word timestamps."""
    settings = dev_settings(custom_voice_dir, base_dir, tmp_path_factory.mktemp("voices"))
    extra = {"design_model_id": str(voice_design_dir), "aligner_model_id": str(aligner_checkpoint)}
    with live_server(**settings, **extra) as server:
        yield server


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory, downloads: Path) -> Iterator[webdriver.Chrome]:
    require_chromium()
    with chromium(tmp_path_factory.mktemp("chromium-profile"), downloads) as driver:
        yield driver


@pytest.fixture
def page(
    request: pytest.FixtureRequest, browser: webdriver.Chrome, playground_server: LiveServer, artifacts: Path
) -> Iterator[webdriver.Chrome]:
    """The page on the playground server; afterwards: no script errors, and a screenshot
    when the test failed."""
    script_errors(browser)  # drop what earlier tests left in the log
    yield open_page(browser, playground_server.base_url)
    outcome = request.node.stash.get(_outcome, None)
    if outcome is not None and outcome.failed:
        browser.save_screenshot(str(artifacts / f"failed-{request.node.name}.png"))
    assert script_errors(browser) == []
