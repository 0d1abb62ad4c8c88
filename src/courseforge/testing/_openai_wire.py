"""The OpenAI-compatible wire, server side: what the loopback test server and the provider simulator
share — a local aiohttp server's lifecycle and the JSON bodies of `/v1/models`, a chat completion
and an error. Each server adds only its own routes and decisions."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, Self

from aiohttp import web


class LocalOpenAIServer:
    """An aiohttp app on `host:port` (port 0: the OS picks one, kept for a restart).

    Subclasses build their app, routes included, in `_app()`; use them as async contexts."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL, e.g. http://127.0.0.1:12345/v1."""
        if not self.port:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return f"http://{self.host}:{self.port}/v1"

    def _app(self) -> web.Application:
        raise NotImplementedError(f"{type(self).__name__} must build its app in _app()")

    async def start(self) -> None:
        # handler_cancellation: a client that gave up (timeout) cancels its hanging or delayed
        # request at once, so stopping the server never waits for it.
        runner = web.AppRunner(self._app(), handler_cancellation=True, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        await web.TCPSite(runner, self.host, self.port).start()
        addresses = runner.addresses
        if not addresses:
            await runner.cleanup()
            raise RuntimeError(f"{type(self).__name__} could not read its port")
        self.port = int(addresses[0][1])
        self._runner = runner

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


def models_body(names: Iterable[str], *, owned_by: str) -> dict[str, Any]:
    """The body of `GET /v1/models`."""
    return {"object": "list", "data": [{"id": n, "object": "model", "owned_by": owned_by} for n in names]}


def completion_body(
    *,
    completion_id: str,
    model: str,
    content: str | None,
    finish_reason: str,
    usage: Mapping[str, Any],
    created: int | None = None,
) -> dict[str, Any]:
    """A chat completion with one choice whose message content is `content`."""
    body: dict[str, Any] = {"id": completion_id, "object": "chat.completion"}
    if created is not None:
        body["created"] = created
    body["model"] = model
    body["choices"] = [
        {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish_reason}
    ]
    body["usage"] = dict(usage)
    return body


def error_response(
    status: int, message: str, *, kind: str | None = None, retry_after_s: float | None = None
) -> web.Response:
    """An OpenAI-style error; `retry_after_s` sets both `retry-after-ms` and `Retry-After`."""
    headers = {}
    if retry_after_s is not None:
        headers["retry-after-ms"] = str(round(retry_after_s * 1000))
        headers["Retry-After"] = str(max(0, math.ceil(retry_after_s)))
    error: dict[str, Any] = {"message": message}
    if kind is not None:
        error["type"] = kind
    error["code"] = status
    return web.json_response({"error": error}, status=status, headers=headers)
