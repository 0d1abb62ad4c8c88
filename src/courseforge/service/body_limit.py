"""Request body size limit as plain ASGI middleware: a declared Content-Length over the limit
is refused at once (413); a chunked body is counted as it arrives and cut off at the limit
(413 too, unless the app has started its answer). Refusals carry the API's error body."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .api_errors import WatchedSend, error_body

__all__ = ["BodySizeLimit"]


class _TooLarge(Exception):
    pass


class BodySizeLimit:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await self._refuse(
                        send, 400, "bad Content-Length", "header.Content-Length", "not an integer"
                    )
                    return
                if declared > self.max_bytes:
                    await self._refuse(send, 413, "request body too large", "body", self._why(declared))
                    return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        watched = WatchedSend(send)
        try:
            await self.app(scope, counting_receive, watched)
        except _TooLarge:
            if not watched.started:
                await self._refuse(send, 413, "request body too large", "body", self._why(received))

    def _why(self, size: int) -> str:
        return f"{size} bytes or more exceeds the limit of {self.max_bytes}"

    @staticmethod
    async def _refuse(send: Send, status: int, message: str, path: str, reason: str) -> None:
        raw = json.dumps(error_body(message, [(path, reason)])).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(raw)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": raw})
