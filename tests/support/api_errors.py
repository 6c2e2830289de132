"""The error a service call answers with, for tests that call the services without a server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from server.errors import APIError


def refusal(call: Coroutine[Any, Any, Any] | Callable[[], Any]) -> APIError:
    """The APIError that `call` raises: a coroutine is run to its end, anything else is called.
    Fails the test when it raises none."""
    with pytest.raises(APIError) as raised:
        if asyncio.iscoroutine(call):
            asyncio.run(call)
        else:
            call()
    return raised.value
