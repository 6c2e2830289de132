"""The last few speech requests with their latency breakdown, for people watching a server
(the playground's server panel reads them from GET /v1/requests/recent)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping
from typing import Any

DEFAULT_KEPT = 20


class RecentRequests:
    """A bounded list of finished requests' log fields, newest first when read. Fed by the
    speech service with exactly the fields it logs, so the two cannot disagree."""

    def __init__(self, kept: int = DEFAULT_KEPT) -> None:
        self._entries: deque[dict[str, Any]] = deque(maxlen=kept)

    def add(self, fields: Mapping[str, Any]) -> None:
        self._entries.append({**fields, "finished_at": round(time.time(), 3)})

    def newest_first(self) -> list[dict[str, Any]]:
        return list(reversed(self._entries))
