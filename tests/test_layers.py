"""The tree's layers: front doors (HTTP, the WebSockets, raw-TCP protocols) -> the speech
services -> the engine, audio and text. Imports point one way only, so a new front door is a
folder of thin adapters and a service never learns a protocol."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SERVER = Path(__file__).resolve().parent.parent / "server"
FRONT_DOORS = ("server.http", "server.websocket", "server.wyoming", "server.vllm_omni", "server.app")
PROTOCOL_LIBRARIES = ("fastapi", "starlette", "sse_starlette", "uvicorn", "wyoming")


def imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return modules


def offending(package: str, forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted((SERVER / package).rglob("*.py")):
        bad = [m for m in imported_modules(path) if any(m == f or m.startswith(f + ".") for f in forbidden)]
        if bad:
            found[str(path.relative_to(SERVER))] = sorted(bad)
    return found


def test_the_checker_sees_front_door_imports() -> None:
    """The rule can fail: the HTTP front door does import FastAPI and the services."""
    assert offending("http", ("fastapi",))
    assert offending("http", ("server.speech",))


def test_services_know_no_protocol_and_no_front_door() -> None:
    assert offending("speech", FRONT_DOORS + PROTOCOL_LIBRARIES) == {}


@pytest.mark.parametrize("package", ["engine", "audio", "text"])
def test_lower_layers_import_neither_services_nor_front_doors(package: str) -> None:
    assert offending(package, ("server.speech", *FRONT_DOORS)) == {}


def test_the_frame_imports_nothing_above_it() -> None:
    """The device side of a frame (server/engine/frame/) leans on the device seam alone: no
    scheduler, batch, sequence, job message, slot or codec."""
    above = ("server.engine", "server.speech", "server.text", "server.audio", *FRONT_DOORS)
    found = {
        path: [m for m in modules if not m.startswith(("server.engine.frame", "server.engine.device"))]
        for path, modules in offending("engine/frame", above).items()
    }
    assert {path: modules for path, modules in found.items() if modules} == {}


def test_the_frame_checker_sees_the_seam() -> None:
    """The rule can fail: the frame does import the device seam, which the check allows."""
    assert any(
        "server.engine.device.runtime" in modules for modules in offending("engine/frame", ("server.engine",)).values()
    )
