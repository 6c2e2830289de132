"""Bearer-key check for /v1/*, enabled when API_KEYS is set."""

from __future__ import annotations

import hmac

from fastapi import Request

from server.errors import unauthorized


def require_api_key(request: Request) -> None:
    keys: tuple[bytes, ...] = request.app.state.api_keys
    if not keys:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("Missing API key: send 'Authorization: Bearer <key>'.")
    presented = token.strip().encode()
    # Compare against every key without stopping early, each in constant time.
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(presented, key)
    if not matched:
        raise unauthorized("Incorrect API key provided.")
