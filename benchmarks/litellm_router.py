"""The peer: LiteLLM Router's CPU per model call against an OpenAI-compatible server.

Runs in the benchmark virtualenv only (`make bench` builds `.venv-bench` from
requirements/bench.txt); it imports litellm and never courseforge, and courseforge never imports
litellm. `benchmarks/engine_overhead.py` starts it against its loopback server and compares.

A `Router` with two deployments, like a cascade with one fallback: `primary`
(`openai/gpt-oss-120b`) falls back to `fallback` (`openai/qwen3-max`), both through `api_base`,
with their prices set so every call's cost is computed (courseforge bills every call too).
The requests come from `--request FILE`: one JSON request body (`messages`, `response_format`,
`max_tokens`, `temperature`) or a list of them, sent in turn (engine_overhead.py writes the
requests one course made through courseforge, so both send the same mix); the default is one
lesson-sized request with a json_schema `response_format`. After `--warmup` calls, a run makes
`--calls` calls with `--concurrency` in flight and measures this process's CPU
(`time.process_time()`, every thread: LiteLLM's logging and callback threads included) and wall.

    python benchmarks/litellm_router.py --base-url http://127.0.0.1:PORT/v1 [--calls 1000]
        [--concurrency 50] [--runs 3] [--request FILE] [--stdin]

Prints one JSON line per run (`"run": i`) and, at the end, one with the medians
(`"summary": true`). With `--stdin` it warms up, prints `{"ready": true}`, then makes one run per
line read from standard input until end of file (so that another process can interleave its own
measurements with these, in one warm process).

No network but `--base-url`: the model cost map is the bundled one
(`LITELLM_LOCAL_MODEL_COST_MAP`), telemetry and callbacks are off.
"""

from __future__ import annotations

import os

# Before litellm is imported: it reads these at import time.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_TELEMETRY", "False")
os.environ.setdefault("LITELLM_LOG", "ERROR")
os.environ.setdefault("DISABLE_AIOHTTP_TRUST_ENV", "True")
for _proxy in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
    os.environ.pop(_proxy, None)

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

_T0 = time.perf_counter()
import litellm  # noqa: E402
from litellm import Router  # noqa: E402

IMPORT_S = time.perf_counter() - _T0
litellm.telemetry = False
litellm.suppress_debug_info = True
litellm.drop_params = False

#: (deployment name, provider model, USD per input token, USD per output token): the hosted
#: profile's gpt-oss-120b and qwen3-max prices.
DEPLOYMENTS = (
    ("primary", "openai/gpt-oss-120b", 0.03e-6, 0.17e-6),
    ("fallback", "openai/qwen3-max", 0.78e-6, 3.90e-6),
)

_LESSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["title", "content", "exercises"],
    "properties": {
        "title": {"type": "string", "maxLength": 120},
        "content": {"type": "string", "maxLength": 12000},
        "exercises": {
            "type": "array",
            "maxItems": 6,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["type", "question", "answer", "explanation"],
                "properties": {
                    "type": {"type": "string", "enum": ["multiple_choice", "short_answer"]},
                    "question": {"type": "string", "maxLength": 600},
                    "options": {"type": "array", "maxItems": 6, "items": {"type": "string"}},
                    "answer": {"type": "string", "maxLength": 600},
                    "explanation": {"type": "string", "maxLength": 1200},
                },
            },
        },
    },
}

#: Used without `--request`: a lesson-sized request (≈ 2,500 characters of prompt).
DEFAULT_REQUEST: dict[str, Any] = {
    "messages": [
        {
            "role": "system",
            "content": "You write one lesson of an online course as JSON matching the schema. "
            "Be accurate, concrete and concise; every exercise tests the lesson's outcomes.",
        },
        {
            "role": "user",
            "content": "Course: Photosynthesis for beginners. Section: The light reactions. "
            "Lesson: Where the energy comes from. Outcomes: explain how chlorophyll absorbs light; "
            "describe the products of the light reactions. "
            + "Key concepts: chlorophyll, thylakoid membrane, ATP, NADPH, water splitting. "
            * 25,
        },
    ],
    "response_format": {
        "type": "json_schema",
        "json_schema": {"name": "lesson", "schema": _LESSON_SCHEMA, "strict": True},
    },
    "max_tokens": 2400,
    "temperature": 0.4,
}


def make_router(base_url: str, *, timeout_s: float = 60.0) -> Router:
    """Two deployments through `base_url`; `primary` falls back to `fallback`."""
    model_list = [
        {
            "model_name": name,
            "litellm_params": {
                "model": model,
                "api_base": base_url,
                "api_key": "sk-bench",
                "input_cost_per_token": cost_in,
                "output_cost_per_token": cost_out,
            },
        }
        for name, model, cost_in, cost_out in DEPLOYMENTS
    ]
    return Router(
        model_list=model_list,
        fallbacks=[{"primary": ["fallback"]}],
        num_retries=2,
        timeout=timeout_s,
    )


async def _calls(
    router: Router, requests: list[dict[str, Any]], calls: int, concurrency: int
) -> tuple[int, float]:
    """Make `calls` calls (the requests in turn), `concurrency` in flight; (calls answered with
    content, their cost in USD)."""
    remaining = calls
    answered = 0
    cost = 0.0

    async def worker() -> None:
        nonlocal remaining, answered, cost
        while remaining > 0:
            remaining -= 1
            response = await router.acompletion(model="primary", **requests[remaining % len(requests)])
            if response.choices[0].message.content:
                answered += 1
            cost += float(getattr(response, "_hidden_params", {}).get("response_cost") or 0.0)

    await asyncio.gather(*(worker() for _ in range(min(concurrency, calls))))
    return answered, cost


async def measure(
    router: Router, requests: list[dict[str, Any]], calls: int, concurrency: int
) -> dict[str, Any]:
    cpu0, wall0 = time.process_time(), time.perf_counter()
    answered, cost = await _calls(router, requests, calls, concurrency)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {
        "calls": calls,
        "answered": answered,
        "concurrency": concurrency,
        "wall_s": round(wall, 4),
        "cpu_s": round(cpu, 4),
        "cpu_ms_per_call": round(cpu / calls * 1000, 4),
        "cost_usd": round(cost, 8),
    }


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The medians of `runs` (as `measure` returns them)."""

    def med(key: str) -> float:
        return float(statistics.median(r[key] for r in runs))

    return {
        "summary": True,
        "peer": f"litellm {litellm_version()} Router",
        "runs": len(runs),
        "calls": runs[0]["calls"],
        "concurrency": runs[0]["concurrency"],
        "wall_s": med("wall_s"),
        "cpu_s": med("cpu_s"),
        "cpu_ms_per_call": med("cpu_ms_per_call"),
        "cpu_ms_per_call_runs": [r["cpu_ms_per_call"] for r in runs],
        "import_s": round(IMPORT_S, 3),
    }


def load_requests(path: Path | None) -> list[dict[str, Any]]:
    """The request bodies in `path` (one object or a list), without the keys the Router sets."""
    if path is None:
        return [DEFAULT_REQUEST]
    data = json.loads(path.read_text())
    bodies = data if isinstance(data, list) else [data]
    if not bodies:
        raise SystemExit(f"{path}: no request")
    keep = ("messages", "response_format", "max_tokens", "temperature")
    return [{k: body[k] for k in keep if k in body} for body in bodies]


def litellm_version() -> str:
    from importlib.metadata import version

    return version("litellm")


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def _main(args: argparse.Namespace) -> None:
    requests = load_requests(args.request)
    router = make_router(args.base_url)
    if args.warmup:
        answered, _ = await _calls(router, requests, args.warmup, args.concurrency)
        if answered < args.warmup:
            raise SystemExit(f"warm-up: only {answered}/{args.warmup} calls answered with content")
    runs: list[dict[str, Any]] = []
    if args.stdin:
        _emit({"ready": True, "peer": f"litellm {litellm_version()} Router", "import_s": round(IMPORT_S, 3)})
        loop = asyncio.get_running_loop()
        while await loop.run_in_executor(None, sys.stdin.readline):
            runs.append(await measure(router, requests, args.calls, args.concurrency))
            _emit({"run": len(runs), **runs[-1]})
    else:
        for i in range(args.runs):
            runs.append(await measure(router, requests, args.calls, args.concurrency))
            _emit({"run": i + 1, **runs[-1]})
    if runs:
        _emit(summary(runs))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base-url", required=True, help="OpenAI-compatible base URL (…/v1)")
    parser.add_argument("--calls", type=int, default=1000, help="measured calls per run (1000)")
    parser.add_argument("--concurrency", type=int, default=50, help="calls in flight (50)")
    parser.add_argument("--warmup", type=int, default=200, help="unmeasured calls first (200)")
    parser.add_argument("--runs", type=int, default=3, help="measured runs; medians printed (3)")
    parser.add_argument("--request", type=Path, help="JSON request body to send (default: a lesson)")
    parser.add_argument("--stdin", action="store_true", help="one run per line read from stdin")
    args = parser.parse_args()
    if args.calls < 1 or args.runs < 1 or args.concurrency < 1 or args.warmup < 0:
        parser.error("--calls, --runs and --concurrency must be >= 1, --warmup >= 0")
    asyncio.run(_main(args))


if __name__ == "__main__":
    main()
