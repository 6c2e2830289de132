"""The tree's layers: front doors (HTTP, the WebSockets, raw-TCP protocols) -> the speech
services -> the engine, audio and text. Imports point one way only, so a new front door is a
folder of thin adapters and a service never learns a protocol.

Every import counts: those inside functions (a lazy import hides a circle, it does not break
it) and those under `if TYPE_CHECKING:` (the dependency is there for a reader all the same).
Relative imports are resolved, and importing from a package counts as importing its
`__init__`."""

from __future__ import annotations

import ast
from collections.abc import Container
from pathlib import Path

import pytest

SERVER = Path(__file__).resolve().parent.parent / "server"
FRONT_DOORS = ("server.http", "server.websocket", "server.wyoming", "server.vllm_omni", "server.app")
# The packages that are front doors. server/app.py is the composition root: it joins every
# door to the services, so it may import them all, and none may import it.
DOOR_PACKAGES = ("server.http", "server.websocket", "server.wyoming", "server.vllm_omni")
PROTOCOL_LIBRARIES = ("fastapi", "starlette", "sse_starlette", "uvicorn", "wyoming")


def module_files(root: Path) -> dict[str, Path]:
    """Every module under `root` (a package directory) by its dotted name; a package is named
    by its `__init__.py`."""
    modules: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def imported_names(path: Path, module: str, modules: Container[str] = ()) -> set[str]:
    """What `module` (at `path`) imports, resolved to absolute dotted names, wherever the import
    stands. `from a import b` yields `a`, and `a.b` too when that is one of `modules` (b is
    then a module of package a, not a name in it)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            names.add(source)
            names.update(f"{source}.{alias.name}" for alias in node.names if f"{source}.{alias.name}" in modules)
    return names


def import_graph(root: Path = SERVER) -> dict[str, set[str]]:
    """Each module of the tree and the modules of the same tree it imports."""
    modules = module_files(root)
    return {
        module: {name for name in imported_names(path, module, modules) if name in modules and name != module}
        for module, path in modules.items()
    }


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles of a graph: its strongly connected groups of more than one module
    (Tarjan's algorithm, iterative so a deep tree cannot overflow the stack)."""
    index: dict[str, int] = {}
    lowest: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = lowest[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            module, targets = work[-1]
            target = next(targets, None)
            if target is not None:
                if target not in index:
                    index[target] = lowest[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph[target]))))
                elif target in on_stack:
                    lowest[module] = min(lowest[module], index[target])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                lowest[parent] = min(lowest[parent], lowest[module])
            if lowest[module] == index[module]:
                group: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == module:
                        break
                if len(group) > 1:
                    cycles.append(sorted(group))
    return cycles


def _door_of(module: str) -> str | None:
    return next((door for door in DOOR_PACKAGES if module == door or module.startswith(door + ".")), None)


def doors_importing_doors(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Each front-door module that imports another front door (or the composition root), with
    the doors it reaches."""
    found: dict[str, set[str]] = {}
    for module, targets in graph.items():
        door = _door_of(module)
        if door is None:
            continue
        crossed = {
            _door_of(target) or "server.app"
            for target in targets
            if target == "server.app" or _door_of(target) not in (None, door)
        }
        if crossed:
            found[module] = crossed
    return found


def offending(package: str, forbidden: tuple[str, ...], root: Path = SERVER) -> dict[str, list[str]]:
    """Each module of `package` (a folder of the tree at `root`) that imports a forbidden module
    or library, with what it imports of them."""
    found: dict[str, list[str]] = {}
    modules = module_files(root)
    for module, path in modules.items():
        if not path.is_relative_to(root / package):
            continue
        bad = [
            m for m in imported_names(path, module, modules) if any(m == f or m.startswith(f + ".") for f in forbidden)
        ]
        if bad:
            found[str(path.relative_to(root))] = sorted(bad)
    return found


def write_tree(root: Path, files: dict[str, str]) -> Path:
    """A small package tree for the checkers to look at: `files` maps paths under `root` to their
    source. Returns the tree's top package directory."""
    for name, source in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    return root / "server"


def test_the_checker_sees_front_door_imports() -> None:
    """The rule can fail: the HTTP front door does import FastAPI and the services."""
    assert offending("http", ("fastapi",))
    assert offending("http", ("server.speech",))


def test_services_know_no_protocol_and_no_front_door() -> None:
    assert offending("speech", FRONT_DOORS + PROTOCOL_LIBRARIES) == {}


def test_the_service_checker_sees_every_kind_of_import(tmp_path: Path) -> None:
    """The rule can fail: a service reaching a front door by a relative import, inside a
    function or for type checking alone is caught, as a plain import is."""
    root = write_tree(
        tmp_path,
        {
            "server/__init__.py": "",
            "server/http/__init__.py": "",
            "server/http/routes.py": "",
            "server/speech/__init__.py": "",
            "server/speech/plain.py": "import fastapi\n",
            "server/speech/relative.py": "from ..http import routes\n",
            "server/speech/lazy.py": "def f():\n    from server.http.routes import x\n",
            "server/speech/typed.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from server.app import create_app\n"
            ),
            "server/speech/clean.py": "from server.speech import plain\n",
        },
    )
    found = offending("speech", FRONT_DOORS + PROTOCOL_LIBRARIES, root)
    assert found == {
        "speech/plain.py": ["fastapi"],
        "speech/relative.py": ["server.http", "server.http.routes"],
        "speech/lazy.py": ["server.http.routes"],
        "speech/typed.py": ["server.app"],
    }


@pytest.mark.parametrize("package", ["engine", "audio", "text"])
def test_lower_layers_import_neither_services_nor_front_doors(package: str) -> None:
    assert offending(package, ("server.speech", *FRONT_DOORS)) == {}


def test_no_import_cycle_in_the_server() -> None:
    assert import_cycles(import_graph()) == []


CYCLES: dict[str, dict[str, str]] = {
    "a lazy import": {
        "server/first.py": "import server.second\n",
        "server/second.py": "def f():\n    import server.first\n",
    },
    "a type-checking import": {
        "server/first.py": "from server.second import B\n",
        "server/second.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from server.first import A\n",
    },
    "a relative import": {
        "server/first.py": "from . import second\n",
        "server/second.py": "from .first import A\n",
    },
    "importing a package's __init__": {
        "server/first.py": "from server import second\n",
        "server/second.py": "",
        "server/__init__.py": "from server.first import A\n",
    },
}


@pytest.mark.parametrize("kind", list(CYCLES))
def test_the_cycle_checker_sees(tmp_path: Path, kind: str) -> None:
    """The rule can fail: a circle closed by each kind of import is found."""
    root = write_tree(tmp_path, {"server/__init__.py": "", **CYCLES[kind]})
    assert len(import_cycles(import_graph(root))) == 1


def test_the_cycle_checker_passes_a_chain(tmp_path: Path) -> None:
    """Imports that point one way only are no circle, however many there are."""
    files = {"server/__init__.py": ""} | {f"server/m{i}.py": f"from server import m{i + 1}\n" for i in range(50)}
    root = write_tree(tmp_path, {**files, "server/m50.py": ""})
    assert import_cycles(import_graph(root)) == []


def test_no_front_door_imports_another() -> None:
    assert doors_importing_doors(import_graph()) == {}


def test_what_the_web_doors_share_imports_no_front_door() -> None:
    """server/web/ holds what more than one web front door needs (the JSON response, the
    WebSocket handshake, the read-ahead inbox): it stands below them all."""
    assert offending("web", FRONT_DOORS) == {}


def test_no_router_imports_another_router() -> None:
    """An HTTP router (a module under server/http/routes/ that makes an APIRouter) imports
    only what the routers share (responding, streaming, cached speech, uploads, headers),
    never another router."""
    modules = module_files(SERVER)
    routers = {
        module
        for module, path in modules.items()
        if module.startswith("server.http.routes.") and "APIRouter()" in path.read_text(encoding="utf-8")
    }
    assert {"server.http.routes.speech", "server.http.routes.captioned", "server.http.routes.clone"} <= routers
    graph = import_graph()
    assert {module: graph[module] & routers for module in routers if graph[module] & routers} == {}


def test_the_door_checker_sees_a_crossing(tmp_path: Path) -> None:
    """The rule can fail: a door importing another door, or the composition root, is found;
    the root importing every door, and a door importing itself and the services, are not."""
    root = write_tree(
        tmp_path,
        {
            "server/__init__.py": "",
            "server/app.py": "from server.http import routes\nfrom server.websocket import router\n",
            "server/http/__init__.py": "",
            "server/http/routes.py": "from server.http.plumbing import x\nfrom server.speech.synthesis import y\n",
            "server/http/plumbing.py": "",
            "server/http/status.py": "def f():\n    from ..websocket.router import counts\n",
            "server/speech/__init__.py": "",
            "server/speech/synthesis.py": "",
            "server/websocket/__init__.py": "",
            "server/websocket/router.py": "from server.app import create_app\n",
        },
    )
    assert doors_importing_doors(import_graph(root)) == {
        "server.http.status": {"server.websocket"},
        "server.websocket.router": {"server.app"},
    }


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
