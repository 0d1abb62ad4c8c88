"""Models behind one interface: OpenAI-compatible HTTP, in-process llama.cpp, embeddings."""

from .base import ChatModel, ChatRequest, ChatResponse, Embedder, Message, OutputMode, Usage

__all__ = [
    "ChatModel",
    "ChatRequest",
    "ChatResponse",
    "Embedder",
    "Message",
    "OutputMode",
    "Usage",
]
