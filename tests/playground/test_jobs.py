"""The Jobs panel: a Markdown text sent as a job from the page, its progress followed to the
end, then the result the API serves for that job: the same audio to play and download, its
chapters and its subtitles."""

from __future__ import annotations

from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from tests.playground.test_speak import fill
from tests.support.browser import by_id, data, wait_for, wait_for_file
from tests.support.live_server import LiveServer

pytestmark = pytest.mark.browser  # a headless Chromium drives the page

BOOK = "# Morning\n\nThe page sends a job.\n\n# Evening\n\nIt ends with two chapters."


def test_a_job_from_the_page_plays_downloads_and_lists_its_chapters_and_subtitles(
    page: webdriver.Chrome, playground_server: LiveServer, downloads: Path
) -> None:
    fill(page, "jobs-text", BOOK)
    Select(by_id(page, "jobs-format")).select_by_value("wav")
    by_id(page, "jobs-submit").click()
    section = by_id(page, "jobs")
    wait_for(page, lambda d: data(section, "state") in ("succeeded", "error", "failed"))
    assert data(section, "state") == "succeeded", by_id(page, "jobs-error").text
    job_id = data(section, "job-id")

    with playground_server.client() as client:
        job = client.get(f"/v1/audio/jobs/{job_id}").json()
        audio = client.get(f"/v1/audio/jobs/{job_id}/content").content
        chapters = client.get(f"/v1/audio/jobs/{job_id}/chapters").json()["data"]
        subtitles = client.get(f"/v1/audio/jobs/{job_id}/subtitles").text
    assert job["status"] == "succeeded" and data(section, "bytes") == str(len(audio))
    assert "2 of 2 segments" in by_id(page, "jobs-status").text
    shown = [item.text for item in by_id(page, "jobs-chapters").find_elements(By.TAG_NAME, "li")]
    assert [text.split(" · ")[0] for text in shown] == [c["title"] for c in chapters] == ["Morning", "Evening"]
    assert by_id(page, "jobs-subtitles").get_attribute("textContent") == subtitles

    for old in downloads.iterdir():
        old.unlink()
    by_id(page, "jobs-download").click()
    assert wait_for_file(downloads, ".wav").read_bytes() == audio
