"""Static checks of compose.yaml: schema, GPU and runtime options, and every setting's default.

No Docker engine or network is needed. ``compose-spec.json`` next to this file is the
Compose Specification JSON schema (compose-spec/compose-spec, Apache-2.0), vendored
unchanged from the builtin schemas of check-jsonschema 0.39.0
(``check_jsonschema/builtin_schemas/vendor/compose-spec.json``,
sha256 d549057ebc2925f39f62799eab0db7b9e2c18b35b6c00595199116da3ed10e64).
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
SETTINGS_DOC = ROOT / "docs" / "settings.md"
SCHEMA_FILE = Path(__file__).with_name("compose-spec.json")
SERVICE = "qwen3-tts"

# The single expected table: every server setting (environment variable) and the default
# an operator gets from the image / compose.yaml, as documented in docs/settings.md.
# VOICES_DIR and JOBS_DIR are the image's values (their volumes); the server's own fallbacks differ.
SETTINGS: dict[str, str] = {
    "HOST": "0.0.0.0",
    "PORT": "8000",
    "MODEL_ID": "Qwen/Qwen3-TTS-12Hz-0.6B-CustomVoice",
    "CLONE_MODEL_ID": "Qwen/Qwen3-TTS-12Hz-0.6B-Base",
    "DESIGN_MODEL_ID": "",
    "ALIGNER_MODEL_ID": "",
    "DEVICE": "auto",
    "IDLE_TIMEOUT": "120",
    "PRELOAD_MODEL": "false",
    "WARMUP": "true",
    "TORCH_THREADS": "0",
    "QUANTIZE": "none",
    "CUDA_GRAPHS": "true",
    "MAX_QUEUE_DEPTH": "16",
    "MAX_BATCH_SIZE": "8",
    "MAX_SEQUENCE_LENGTH": "4096",
    "REQUEST_TIMEOUT": "300",
    "SEND_TIMEOUT": "30",
    "WS_PING_INTERVAL": "20",
    "WS_PING_TIMEOUT": "20",
    "MAX_NEW_TOKENS": "2048",
    "GUARD_SILENCE_FRAMES": "38",
    "GUARD_SILENCE_DBFS": "-50",
    "GUARD_LOOP_FRAMES": "50",
    "GUARD_TAIL_RATIO": "8",
    "ENGINE_STALL_TIMEOUT": "900",
    "ENGINE_STALL_GRACE": "30",
    "STREAM_FIRST_CHUNK_FRAMES": "2",
    "STREAM_CHUNK_FRAMES": "24",
    "API_KEYS": "",
    "VOICES_DIR": "/data/voices",
    "VOICE_CACHE_MAX": "32",
    "VOICE_MAP": "",
    "PRONUNCIATIONS_FILE": "",
    "AUDIO_CACHE_MAX": "256",
    "AUDIO_CACHE_MAX_BYTES": "67108864",
    "MAX_UPLOAD_BYTES": "10485760",
    "MAX_JSON_BYTES": "262144",
    "JOBS_DIR": "/data/jobs",
    "JOBS_CONCURRENCY": "0",
    "JOBS_TTL": "604800",
    "JOBS_MAX_DISK_BYTES": "21474836480",
    "JOBS_MAX_QUEUED": "100",
    "JOBS_MAX_INPUT_BYTES": "2097152",
    "MIN_REFERENCE_SECONDS": "1.0",
    "MAX_REFERENCE_SECONDS": "30.0",
    "METRICS_ENABLED": "true",
    "LOG_FORMAT": "text",
    "LOG_LEVEL": "INFO",
    "CORS_ORIGINS": "",
    "PLAYGROUND_ENABLED": "true",
    "DOCS_ENABLED": "true",
    "SHUTDOWN_GRACE": "30",
    "WYOMING_PORT": "10200",
    "WYOMING_HOST": "",
    "WYOMING_EVENT_TIMEOUT": "10",
    "WYOMING_IDLE_TIMEOUT": "60",
    "WYOMING_MAX_CONNECTIONS": "64",
}
# Settings whose deployed default is set by the image rather than by the server code.
IMAGE_DEFAULTS = {"VOICES_DIR", "JOBS_DIR"}
# ...and by compose.yaml alone (the server's own default keeps the Wyoming port closed).
COMPOSE_DEFAULTS = {"WYOMING_PORT"}

_INTERPOLATION = re.compile(r"^\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*):-(?P<default>[^}]*)\}$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(us|ms|s|m|h)")
_DURATION_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _interpolate(value: Any) -> Any:
    """Resolve ${VAR:-default} / ${VAR-default} / ${VAR} / $$ as Compose would with an empty environment."""
    if isinstance(value, dict):
        return {key: _interpolate(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_interpolate(item) for item in value]
    if not isinstance(value, str):
        return value
    value = re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?-([^}]*)\}", r"\1", value)
    value = re.sub(r"(?<!\$)\$\{[A-Za-z_][A-Za-z0-9_]*\}", "", value)
    return value.replace("$$", "$")


def _seconds(duration: str) -> float:
    parts = _DURATION_PART.findall(duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"bad duration {duration!r}"
    return sum(float(number) * _DURATION_UNITS[unit] for number, unit in parts)


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def _dockerfile_env() -> dict[str, str]:
    """ENV values of the Dockerfile's final stage."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    env: dict[str, str] = {}
    for line in text.splitlines():
        words = line.strip().split(None, 1)
        if not words or words[0].startswith("#"):
            continue
        instruction = words[0].upper()
        if instruction == "FROM":
            env = {}
        elif instruction == "ENV" and len(words) == 2:
            for token in shlex.split(words[1]):
                key, _, value = token.partition("=")
                env[key] = value
    return env


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def service(compose: dict[str, Any]) -> dict[str, Any]:
    assert SERVICE in compose.get("services", {}), f"compose.yaml has no service {SERVICE!r}"
    return compose["services"][SERVICE]


@pytest.mark.parametrize("interpolated", [False, True], ids=["raw", "interpolated"])
def test_compose_file_matches_the_compose_specification(compose: dict[str, Any], interpolated: bool) -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    document = _interpolate(compose) if interpolated else compose
    errors = sorted(validator_class(schema).iter_errors(document), key=lambda e: e.json_path)
    assert not errors, "\n".join(f"{e.json_path}: {e.message}" for e in errors)


def test_service_is_built_from_the_dockerfile(service: dict[str, Any]) -> None:
    build = service["build"]
    assert build["context"] == "."
    assert (ROOT / build["context"] / build.get("dockerfile", "Dockerfile")).resolve() == DOCKERFILE
    assert service.get("image"), "give the built image a name"


def test_one_nvidia_gpu_is_reserved(service: dict[str, Any]) -> None:
    devices = service["deploy"]["resources"]["reservations"]["devices"]
    assert len(devices) == 1
    device = devices[0]
    assert device["driver"] == "nvidia"
    assert device["count"] == 1
    assert device["capabilities"] == ["gpu"]


def test_shared_memory_and_ipc(service: dict[str, Any]) -> None:
    assert service["shm_size"] == "1g"
    assert service["ipc"] == "host"


def test_healthcheck_probes_health_with_a_short_start_period(service: dict[str, Any]) -> None:
    healthcheck = service["healthcheck"]
    test = healthcheck["test"]
    if isinstance(test, list):
        assert test[0] in ("CMD", "CMD-SHELL")
        command = " ".join(test[1:])
    else:
        command = test
    assert "127.0.0.1" in command and "/health" in command
    assert "curl" not in command and "wget" not in command, "the image ships neither"
    assert 0 < _seconds(healthcheck["start_period"]) <= 30
    assert _seconds(healthcheck["timeout"]) < _seconds(healthcheck["interval"])
    assert healthcheck["retries"] >= 1


def test_restart_and_stop_grace(service: dict[str, Any]) -> None:
    assert service["restart"] == "unless-stopped"
    assert _seconds(service["stop_grace_period"]) > float(SETTINGS["SHUTDOWN_GRACE"])


def test_port_8000_is_published(service: dict[str, Any]) -> None:
    ports = [str(port) for port in _interpolate(service["ports"])]
    assert any(port.split(":")[-1] == SETTINGS["PORT"] for port in ports), ports


def test_named_volumes_for_model_cache_and_voices(compose: dict[str, Any], service: dict[str, Any]) -> None:
    mounts = {}
    for volume in service["volumes"]:
        assert isinstance(volume, str), "use the short volume syntax"
        source, target = volume.split(":")[:2]
        mounts[target] = source
    env = _dockerfile_env()
    for target in (env["HF_HOME"], SETTINGS["VOICES_DIR"], SETTINGS["JOBS_DIR"]):
        assert target in mounts, f"nothing mounted at {target}"
        source = mounts[target]
        assert not source.startswith((".", "/", "~")), f"{target} should be a named volume"
        assert source in (compose.get("volumes") or {}), f"volume {source!r} is not declared"


def test_every_setting_is_passed_with_its_default(service: dict[str, Any]) -> None:
    environment = _environment(service)
    for name, default in SETTINGS.items():
        assert name in environment, f"{name} missing from compose.yaml environment"
        match = _INTERPOLATION.match(environment[name])
        assert match, f"{name}: expected ${{{name}:-{default}}}, got {environment[name]!r}"
        assert match["name"] == name, f"{name} interpolates {match['name']}"
        assert match["default"] == default, f"{name}: default {match['default']!r} != {default!r}"


def test_dockerfile_env_agrees_with_the_settings_table() -> None:
    env = _dockerfile_env()
    for name in IMAGE_DEFAULTS:
        assert env.get(name) == SETTINGS[name], f"Dockerfile ENV {name}"
    for name, value in env.items():
        if name in SETTINGS:
            assert value == SETTINGS[name], f"Dockerfile ENV {name}={value!r} != {SETTINGS[name]!r}"


def test_settings_table_matches_the_server_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """The table is complete and its defaults parse to the server's own defaults."""
    from server.config import Settings

    fields = {name.upper() for name in Settings.model_fields}
    for name in fields | set(SETTINGS):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    assert set(SETTINGS) == fields, (
        f"missing from the table/compose: {sorted(fields - set(SETTINGS))}; "
        f"not a server setting: {sorted(set(SETTINGS) - fields)}"
    )
    server_defaults = Settings().model_dump(mode="json")
    for name, value in SETTINGS.items():
        if name not in IMAGE_DEFAULTS | COMPOSE_DEFAULTS:
            monkeypatch.setenv(name, value)
    deployed = Settings().model_dump(mode="json")
    for name in SETTINGS.keys() - IMAGE_DEFAULTS - COMPOSE_DEFAULTS:
        field = name.lower()
        assert deployed[field] == server_defaults[field], f"{name}: table default differs"


def _documented_settings() -> dict[str, str]:
    """The settings table of docs/settings.md: each variable and its documented default
    ("" for "empty"). A row may name several (`HOST` / `PORT` | `0.0.0.0` / `8000`)."""
    documented: dict[str, str] = {}
    for line in SETTINGS_DOC.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        if not line.startswith("| `") or len(cells) < 3:
            continue
        names = [name.strip().strip("`") for name in cells[0].split(" / ")]
        defaults = [value.strip() for value in cells[1].split(" / ")]
        if len(defaults) != len(names):
            defaults = [cells[1]] * len(names)
        for name, value in zip(names, defaults, strict=True):
            shown = re.match(r"`([^`]*)`", value)
            documented[name] = "" if value.startswith("empty") else shown[1] if shown else value
    return documented


def test_every_setting_is_documented_with_its_default() -> None:
    """docs/settings.md lists every setting, with the server's default (the image and compose
    defaults are the exceptions the table explains in words)."""
    documented = _documented_settings()
    assert set(SETTINGS) <= set(documented), f"missing from docs/settings.md: {sorted(set(SETTINGS) - set(documented))}"
    assert set(documented) <= set(SETTINGS), f"not a server setting: {sorted(set(documented) - set(SETTINGS))}"
    for name in SETTINGS.keys() - IMAGE_DEFAULTS - COMPOSE_DEFAULTS:
        assert documented[name] == SETTINGS[name], f"{name}: docs/settings.md says {documented[name]!r}"
