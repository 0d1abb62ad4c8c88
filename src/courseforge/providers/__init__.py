"""Models behind one interface: OpenAI-compatible HTTP, in-process llama.cpp, embeddings."""

from .base import ChatModel, ChatRequest, ChatResponse, Embedder, Message, OutputMode, Usage
from .jsontext import extract_json
from .openai_compat import OpenAICompatModel

__all__ = [
    "ChatModel",
    "ChatRequest",
    "ChatResponse",
    "Embedder",
    "Message",
    "OpenAICompatModel",
    "OutputMode",
    "Usage",
    "extract_json",
]
