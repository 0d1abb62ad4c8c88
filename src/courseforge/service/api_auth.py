"""The /v1 bearer-token dependency: the token's tenant becomes the request's caller."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Header

from .api_errors import ApiError
from .tenants import TenantDirectory, set_caller

__all__ = ["bearer_auth"]


def bearer_auth(directory: TenantDirectory) -> Callable[..., Awaitable[None]]:
    """A FastAPI dependency: 401 without a token `directory` accepts; else the caller is set."""

    async def require_token(authorization: Annotated[str | None, Header()] = None) -> None:
        # async: it runs in the request's own context, so the caller it sets is the endpoint's.
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise ApiError(
                401, "missing bearer token", [("header.Authorization", "expected 'Bearer <token>'")]
            )
        caller = directory.caller_for(token.strip())
        if caller is None:
            raise ApiError(401, "invalid token", [("header.Authorization", "token not accepted")])
        set_caller(caller)

    return require_token
