"""API keys (API_KEYS): the protocol-free check every front door uses. HTTP and the
WebSockets present a bearer token or a query parameter; a raw-TCP front door presents
whatever its protocol can carry. The check compares against every key in constant time."""

from __future__ import annotations

import hmac

from server.errors import APIError, unauthorized

BEARER_HOW = "'Authorization: Bearer <key>'"


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def check_key(keys: tuple[bytes, ...], presented: str | None, how: str) -> APIError | None:
    """None when `keys` is empty or `presented` is one of them; otherwise the 401 to answer,
    telling the client `how` to send a key."""
    if not keys:
        return None
    if presented is None:
        return unauthorized(f"Missing API key: send {how}.")
    # Compare against every key without stopping early, each in constant time.
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(presented.encode(), key)
    return None if matched else unauthorized("Incorrect API key provided.")


def key_error(authorization: str | None, keys: tuple[bytes, ...]) -> APIError | None:
    """None when `keys` is empty or the Authorization header carries one of them; otherwise
    the 401 to answer."""
    return check_key(keys, bearer_token(authorization), BEARER_HOW)
