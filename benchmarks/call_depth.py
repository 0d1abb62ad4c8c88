"""Hops of one model call: the frames between the pipeline asking for an answer and the provider.

A lesson of the bundled example is generated through the CLI's path (a durable job in a SQLite
store, so checkpointing is on) with a scripted provider model that, on its first lesson request,
captures the Python stack. Printed: every frame from the pipeline's lesson task
(`generate_lesson`) down to the provider's `complete`, innermost last, and their count.

    python benchmarks/call_depth.py [--example PATH] [--tier-model ID]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import traceback
from pathlib import Path
from typing import Any

from courseforge.config import load_config
from courseforge.pipeline import parse_analysis
from courseforge.providers import ChatModel, ChatRequest, ChatResponse
from courseforge.providers.embeddings import CachedEmbedder, HashingEmbedder
from courseforge.storage import SQLiteStore
from courseforge.testing import CourseAuthor, ScriptedModel

DEFAULT_EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "python-basics.json"
#: The frame the count starts from: the pipeline's own lesson task.
START = "generate_lesson"


class StackCapturing(ChatModel):
    """A scripted provider that remembers the stack of its first lesson request."""

    def __init__(self, model_id: str) -> None:
        self.model_id = model_id
        self._inner = ScriptedModel(CourseAuthor(), model_id=model_id)
        self.stack: list[traceback.FrameSummary] | None = None

    async def complete(self, request: ChatRequest) -> ChatResponse:
        if self.stack is None and request.tags.get("task", "").startswith("lesson:"):
            self.stack = traceback.extract_stack()
        return await self._inner.complete(request)


def _frames(stack: list[traceback.FrameSummary]) -> list[str]:
    names = [f"{Path(f.filename).parent.name}/{Path(f.filename).name}:{f.name}" for f in stack]
    start = max(i for i, n in enumerate(names) if n.endswith(f":{START}"))
    # Frames of asyncio itself (task steps, gather) are the event loop, not our layers.
    return [n for n in names[start:] if not n.startswith("asyncio/")]


async def main(example: Path) -> None:
    from courseforge.engine import Engine

    try:
        from courseforge.jobs import generate_durably  # type: ignore[attr-defined]
    except ImportError:
        from courseforge.durable import generate_durably  # type: ignore[attr-defined,no-redef]

    settings = load_config("hosted", env={"OPENROUTER_API_KEY": "k"}).settings
    gates = settings.gates.model_copy(update={"embedding_model": "hashing"})
    settings = settings.model_copy(update={"gates": gates})
    analysis = parse_analysis(example.read_bytes(), max_bytes=settings.max_input_bytes)
    models: dict[str, Any] = {m: StackCapturing(m) for m in settings.models}
    engine = Engine(settings, env={}, models=models, embedder=CachedEmbedder(HashingEmbedder()))
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(str(Path(tmp) / "jobs.db"))
        try:
            await generate_durably(
                settings, analysis, job_id=None, engine=engine, store=store, say=lambda _: None
            )
        finally:
            await engine.aclose()
            await store.close()
    stack = next(m.stack for m in models.values() if m.stack is not None)
    frames = _frames(stack)
    for i, name in enumerate(frames):
        print(f"{i:2d} {name}")
    print(f"hops from {START} to the provider: {len(frames) - 1}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--example", type=Path, default=DEFAULT_EXAMPLE)
    args = parser.parse_args()
    asyncio.run(main(args.example))
