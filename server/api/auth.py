"""Bearer keys (API_KEYS): the check itself, used by the request gate for /v1/* and the
API docs, and by /health to decide how much it tells."""

from __future__ import annotations

import hmac

from server.errors import APIError, unauthorized


def key_error(authorization: str | None, keys: tuple[bytes, ...]) -> APIError | None:
    """None when `keys` is empty or the Authorization header carries one of them; otherwise
    the 401 to answer."""
    if not keys:
        return None
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return unauthorized("Missing API key: send 'Authorization: Bearer <key>'.")
    presented = token.strip().encode()
    # Compare against every key without stopping early, each in constant time.
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(presented, key)
    return None if matched else unauthorized("Incorrect API key provided.")
