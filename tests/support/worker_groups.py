"""How the suite is shared out among pytest-xdist's workers (`scripts/test` runs
`--dist loadgroup`). xdist schedules by node id, and a node id ending in `@name` puts the test
in the group `name`: a group runs whole on one worker.

xdist 3.8 adds that suffix by setting `item._nodeid`, which pytest 9 no longer reads (a node
id is now the structured `item._id`): its own `xdist_group` marker groups nothing. So the
suite sets the ids itself, in the form xdist's scheduler reads."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from _pytest.nodeid import NodeId

# Tests that must share one worker: the Ray tests start one local cluster per process (two
# would each claim the machine's cores), so they all run where the first one started it.
SHARED_WORKER_FOLDERS = {"cluster": "ray"}
WIDER_THAN_A_MODULE = {"package", "session"}
WIDER_THAN_A_TEST = {"class", "module", "package", "session"}


def fixtures_used(item: pytest.Item) -> list[Any]:
    """The fixture definitions the test uses, directly or through other fixtures."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return []
    return [
        definitions[-1]
        for name, definitions in info.name2fixturedefs.items()
        if definitions and name in info.names_closure
    ]


def folder_fixture_of(item: pytest.Item, tests_root: Path) -> str | None:
    """The folder whose conftest gives this test a session- or package-scoped fixture (a
    server, a process taken through SIGTERM): every test of the folder that uses one runs on
    one worker, so it is built once. The top conftest's own (checkpoints, the shared server)
    are cheap enough to build on every worker."""
    top = tests_root.name
    for definition in fixtures_used(item):
        folder = str(definition.baseid)
        if definition.scope in WIDER_THAN_A_MODULE and folder.startswith(f"{top}/"):
            return folder.removeprefix(f"{top}/")
    return None


def shares_fixtures_with_its_module(item: pytest.Item) -> bool:
    """Whether the test uses a class- or module-scoped fixture: its module's tests that do must
    run on one worker, or each worker would build it again."""
    return any(definition.scope in WIDER_THAN_A_TEST - WIDER_THAN_A_MODULE for definition in fixtures_used(item))


def groups_of(items: list[pytest.Item], tests_root: Path) -> list[str | None]:
    """Each test's group: a folder in SHARED_WORKER_FOLDERS goes whole to one worker; tests
    that share a folder's fixture go together, and with them the rest of their modules' tests
    that share a module's fixture; other tests that share a module's fixture go together by
    module; every other test is scheduled on its own (None), which spreads a module of
    independent slow tests over the workers."""
    groups: list[str | None] = []
    for item in items:
        relative = item.path.relative_to(tests_root)
        group = SHARED_WORKER_FOLDERS.get(relative.parts[0]) or folder_fixture_of(item, tests_root)
        if group is None and shares_fixtures_with_its_module(item):
            group = relative.as_posix()
        groups.append(group)
    # A module whose tests share a folder's fixture: its module-wide fixtures go there too.
    folder_of_module = {
        item.path: group
        for item, group in zip(items, groups, strict=True)
        if group is not None and not group.endswith(".py")
    }
    return [
        folder_of_module.get(item.path, group) if group is not None and group.endswith(".py") else group
        for item, group in zip(items, groups, strict=True)
    ]


def set_node_id(item: pytest.Item, node_id: str) -> None:
    item._id = NodeId.parse(node_id)


def assign_worker_groups(items: list[pytest.Item], tests_root: Path) -> None:
    """Give each test a distinct node id carrying its group. Schemathesis gives every operation's
    test of one function the same id, and xdist would run one of them and drop the rest without
    a word: those get their names (which carry the operation) back in their ids."""
    counts = Counter(item.nodeid for item in items)
    for item, group in zip(items, groups_of(items, tests_root), strict=True):
        node_id = item.nodeid
        if counts[node_id] > 1:
            node_id = f"{node_id.rsplit('::', 1)[0]}::{item.name}"
        if group is not None:
            node_id = f"{node_id}@{group}"
        if node_id != item.nodeid:
            set_node_id(item, node_id)
