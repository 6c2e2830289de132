"""How the suite is shared out among pytest-xdist's workers (`scripts/test` runs
`--dist loadgroup`). xdist schedules by node id, and a node id ending in `@name` puts the test
in the group `name`: a group runs whole on one worker.

xdist 3.8 adds that suffix by setting `item._nodeid`, which pytest 9 no longer reads (a node
id is now the structured `item._id`): its own `xdist_group` marker groups nothing. So the
suite sets the ids itself, in the form xdist's scheduler reads."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from _pytest.nodeid import NodeId

# Tests that must share one worker: the Ray tests start one local cluster per process (two
# would each claim the machine's cores), so they all run where the first one started it.
SHARED_WORKER_FOLDERS = {"cluster": "ray"}
WIDER_THAN_A_TEST = {"class", "module", "package"}


def shares_fixtures_with_its_module(item: pytest.Item) -> bool:
    """Whether the test uses a class-, module- or package-scoped fixture (a server, a backend):
    its module's tests that do must run on one worker, or each worker would build it again."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    return any(
        definitions[-1].scope in WIDER_THAN_A_TEST
        for name, definitions in info.name2fixturedefs.items()
        if definitions and name in info.names_closure
    )


def group_of(item: pytest.Item, tests_root: Path) -> str | None:
    """A folder in SHARED_WORKER_FOLDERS goes whole to one worker; a module's tests that share a
    fixture wider than a test go together, so it is built once; every other test is scheduled
    on its own (None), which spreads a module of independent slow tests over the workers."""
    relative = item.path.relative_to(tests_root)
    group = SHARED_WORKER_FOLDERS.get(relative.parts[0])
    if group is None and shares_fixtures_with_its_module(item):
        group = relative.as_posix()
    return group


def set_node_id(item: pytest.Item, node_id: str) -> None:
    item._id = NodeId.parse(node_id)


def assign_worker_groups(items: list[pytest.Item], tests_root: Path) -> None:
    """Give each test a distinct node id carrying its group. Schemathesis gives every operation's
    test of one function the same id, and xdist would run one of them and drop the rest without
    a word: those get their names (which carry the operation) back in their ids."""
    counts = Counter(item.nodeid for item in items)
    for item in items:
        node_id = item.nodeid
        if counts[node_id] > 1:
            node_id = f"{node_id.rsplit('::', 1)[0]}::{item.name}"
        group = group_of(item, tests_root)
        if group is not None:
            node_id = f"{node_id}@{group}"
        if node_id != item.nodeid:
            set_node_id(item, node_id)
