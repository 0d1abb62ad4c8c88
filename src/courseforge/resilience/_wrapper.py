"""What every resilience wrapper shares: it is a ChatModel around a ChatModel."""

from __future__ import annotations

from ..providers.base import ChatModel

__all__ = ["WrapperModel"]


class WrapperModel(ChatModel):
    """Keeps the inner model's `model_id` (so ledgers and breakers see one name through any
    stack) and passes `aclose` down. Subclasses implement `complete`."""

    def __init__(self, inner: ChatModel) -> None:
        self.inner = inner
        self.model_id = inner.model_id

    async def aclose(self) -> None:
        await self.inner.aclose()
