"""Schema-driven fuzzing of every operation in the published OpenAPI document, against the
live server: bounded (a fixed number of examples, derandomised so every run sends the same
requests), asserting no 5xx, every error in OpenAI's shape, every response conforming to
the document (status, content type, body schema)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from server.app import create_app
from server.config import load_settings
from tests.support.live_server import LiveServer, live_server

EXAMPLES = 50


@pytest.fixture(scope="module")
def fuzzed(custom_voice_dir: Path, base_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    # Short budgets: a generated request that is valid should finish quickly, or meet the
    # documented 504.
    with live_server(
        model_id=str(custom_voice_dir),
        clone_model_id=str(base_dir),
        preload_model=True,
        idle_timeout=0,
        voices_dir=tmp_path_factory.mktemp("fuzz-voices"),
        max_new_tokens=8,
        request_timeout=10,
    ) as server:
        yield server


def published_document() -> dict[str, Any]:
    """The document a server with default settings publishes (building the app starts
    nothing; the test below checks the live server publishes the same)."""
    return create_app(load_settings(api_keys="")).openapi()


schema = schemathesis.openapi.from_dict(published_document())


def test_the_fuzzed_document_is_the_one_served(fuzzed: LiveServer) -> None:
    with fuzzed.client() as client:
        assert client.get("/openapi.json").json() == published_document()


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_conforms(case: schemathesis.Case, fuzzed: LiveServer) -> None:
    # Every check but one: a request can match the schema and still be refused for what no
    # schema can say (a file that is not audio, a voice that does not exist).
    response = case.call_and_validate(base_url=fuzzed.base_url, timeout=60, excluded_checks=[positive_data_acceptance])
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error"}
        assert set(body["error"]) == {"message", "type", "param", "code"}


def test_the_fuzzing_ran_and_the_server_still_serves(fuzzed: LiveServer) -> None:
    """Runs after the fuzzing above (file order): it reached the server, which is unharmed."""
    with fuzzed.client() as client:
        metrics = client.get("/metrics").text
        speech = client.post("/v1/audio/speech", json={"model": "tts-1", "voice": "alloy", "input": "Hi."})
    answered = sum(
        float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines() if line.startswith("qwen3_tts_requests_total{")
    )
    statuses = {line.split('status="')[1].split('"')[0] for line in metrics.splitlines() if 'status="' in line}
    print(f"fuzzing: {answered:.0f} requests answered, statuses {sorted(statuses)}")
    assert answered >= 9 * EXAMPLES / 2
    assert not [s for s in statuses if s.startswith("5")]
    assert speech.status_code == 200
    assert fuzzed.health()["queue_depth"] == 0
