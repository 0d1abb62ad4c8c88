"""Models behind one interface: OpenAI-compatible HTTP, in-process llama.cpp, embeddings."""

from .base import (
    ChatModel,
    ChatRequest,
    ChatResponse,
    Embedder,
    Message,
    OutputMode,
    ProseFirst,
    Usage,
    Vector,
)
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
    "ProseFirst",
    "Usage",
    "Vector",
    "extract_json",
]
