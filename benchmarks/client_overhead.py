"""Client CPU per call: OpenAICompatModel against a raw aiohttp POST loop.

The LoopbackServer runs in a separate (spawned) process, so `time.process_time()` in this
process counts client work only: building the body, HTTP over loopback, parsing the answer.
Each round makes `--calls` calls at `--concurrency` in flight, raw and ours alternating; the
figure printed is the median over rounds of (process CPU seconds / calls).

    python benchmarks/client_overhead.py [--calls 2000] [--concurrency 50] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import statistics
import time
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from typing import Any

import aiohttp

from courseforge.providers import ChatRequest, Message, OpenAICompatModel
from courseforge.testing import LoopbackReply, LoopbackServer

SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "maxLength": 80},
        "content": {"type": "string", "maxLength": 4000},
    },
    "required": ["title", "content"],
}
ANSWER = json.dumps({"title": "Adding fractions", "content": "Fractions with a common denominator. " * 25})
USAGE = {"prompt_tokens": 420, "completion_tokens": 260, "prompt_tokens_details": {"cached_tokens": 0}}


def _reply(_req: dict[str, Any]) -> LoopbackReply:
    return LoopbackReply.completion(ANSWER, model="bench", usage=USAGE)


def _serve(conn: Connection) -> None:
    """Child process: serve until killed, after sending the port to the parent."""

    async def main() -> None:
        async with LoopbackServer(_reply, record=False) as server:
            conn.send(server.port)
            await asyncio.Event().wait()

    asyncio.run(main())


async def _run(call: Callable[[], Awaitable[object]], calls: int, concurrency: int) -> tuple[float, float]:
    """(CPU seconds, wall seconds) for `calls` calls with `concurrency` in flight."""
    remaining = calls

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await call()

    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.process_time() - cpu0, time.perf_counter() - wall0


async def _bench(base_url: str, calls: int, concurrency: int, rounds: int) -> None:
    messages = [Message("system", "You write short lessons."), Message("user", "Teach adding fractions.")]
    request = ChatRequest(messages=messages, json_schema=SCHEMA, max_tokens=800, timeout_s=30)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=128)) as session:
        model = OpenAICompatModel(
            model_id="bench", model_name="bench", base_url=base_url, api_key="sk-bench", session=session
        )
        raw_body = json.dumps(model.build_payload(request)).encode()
        raw_headers = {"Content-Type": "application/json", "Authorization": "Bearer sk-bench"}
        url = f"{base_url}/chat/completions"

        async def raw_call() -> object:
            async with session.post(url, data=raw_body, headers=raw_headers) as resp:
                return json.loads(await resp.read())["choices"][0]["message"]["content"]

        async def our_call() -> object:
            return await model.complete(request)

        await _run(raw_call, 200, concurrency)  # warm up connections and code paths
        await _run(our_call, 200, concurrency)
        results: dict[str, list[tuple[float, float]]] = {"raw aiohttp": [], "OpenAICompatModel": []}
        for _ in range(rounds):
            results["raw aiohttp"].append(await _run(raw_call, calls, concurrency))
            results["OpenAICompatModel"].append(await _run(our_call, calls, concurrency))

    print(f"{calls} calls x {rounds} rounds, {concurrency} concurrent, server in another process")
    medians: dict[str, float] = {}
    for name, samples in results.items():
        per_call_ms = [cpu / calls * 1000 for cpu, _ in samples]
        medians[name] = statistics.median(per_call_ms)
        rate = statistics.median(calls / wall for _, wall in samples)
        spread = f"{min(per_call_ms):.3f}-{max(per_call_ms):.3f}"
        print(f"  {name:18} {medians[name]:.3f} ms CPU/call (rounds {spread}), {rate:,.0f} calls/s wall")
    ratio = medians["OpenAICompatModel"] / medians["raw aiohttp"]
    print(f"  ratio ours/raw     {ratio:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=_serve, args=(child,), daemon=True)
    server.start()
    try:
        if not parent.poll(30):
            raise SystemExit("loopback server did not start")
        port = parent.recv()
        asyncio.run(_bench(f"http://127.0.0.1:{port}/v1", args.calls, args.concurrency, args.rounds))
    finally:
        server.terminate()
        server.join(5)


if __name__ == "__main__":
    main()
