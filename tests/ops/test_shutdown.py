"""SIGTERM on a real server process: the request in flight finishes with all its audio, new
connections are turned away, the model is unloaded, and the process exits 0 within the grace."""

from __future__ import annotations

from tests.support.ops import REQUEST_ID, SHUTDOWN_GRACE, SigtermRun

SAMPLE_RATE = 24_000


def test_request_in_flight_completes_with_full_audio(sigterm_run: SigtermRun) -> None:
    assert sigterm_run.request_error is None, sigterm_run.request_error
    assert sigterm_run.status_code == 200
    [logged] = [r for r in sigterm_run.messages("speech request") if r["request_id"] == REQUEST_ID]
    assert logged["status"] == 200
    assert logged["segments_done"] == logged["segments"] == 4
    # Every sample the engine produced reached the client (16-bit mono PCM).
    assert len(sigterm_run.content) // 2 == round(logged["audio_seconds"] * SAMPLE_RATE)
    assert len(sigterm_run.content) > 0


def test_new_connections_are_turned_away_after_sigterm(sigterm_run: SigtermRun) -> None:
    assert sigterm_run.after_sigterm in ("refused", "503")


def test_models_unloaded_and_exit_zero_within_grace(sigterm_run: SigtermRun) -> None:
    assert sigterm_run.exit_code == 0, sigterm_run.log_lines[-20:]
    assert sigterm_run.sigterm_to_exit_s < SHUTDOWN_GRACE
    messages = [r["message"] for r in sigterm_run.records()]
    [unloaded] = sigterm_run.messages("model unloaded")
    assert unloaded["reason"] == "shutdown"
    assert unloaded["slot"] == "custom_voice"
    # The request finished before the model went away, not the other way round.
    assert messages.index("speech request") < messages.index("model unloaded")
