"""Paying once, measured on the simulator: the response cache and the provider prompt cache.

1. The same course generated twice as two durable jobs on one store (the response cache on, as
   by default): the provider requests and the cost of each run. Goal for the second: 0 and $0.
2. One course (10+ lessons) with the response cache off, on a simulator whose prompt cache has a
   minimum prefix of `--min-tokens` (OpenAI documents 1024, in 128-token blocks; the bundled
   profiles' default) and on one with a 64-token minimum in 64-token blocks (providers that
   cache short prefixes): the share of prompt tokens the provider served from its cache, and
   what that saved at a cache-read price of `--read-share` × the input price for the models
   whose config sets none (an assumption of this benchmark; qwen3-max keeps its documented 0.1×
   reads and 1.25× writes), the lesson calls' share, and the gates' figures (similarity mean,
   first-attempt pass rate), which a longer shared prefix must not worsen.

    python benchmarks/caching.py [--course python-basics] [--read-share 0.25] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from courseforge.config import Settings, load_config
from courseforge.engine import Engine, without_cache
from courseforge.jobs import generate_durably
from courseforge.pipeline import validate_analysis
from courseforge.providers.embeddings import CachedEmbedder, HashingEmbedder
from courseforge.sim import SimServer, load_profile
from courseforge.storage import open_store

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def sim_settings(base_url: str, read_share: Decimal | None = None) -> Settings:
    """The bundled hosted profile pointed at the simulator, gated with the hashing embedder."""
    settings = load_config(
        "hosted", env={"OPENROUTER_API_KEY": "sim", "OPENROUTER_BASE_URL": base_url}
    ).settings
    models = settings.models
    if read_share is not None:
        # A model with its own cache-read price (qwen3-max: 0.1x) keeps it.
        models = {
            k: m
            if m.price_cache_read_per_m is not None
            else m.model_copy(update={"price_cache_read_per_m": m.price_in_per_m * read_share})
            for k, m in models.items()
        }
    return settings.model_copy(
        update={"models": models, "gates": settings.gates.model_copy(update={"embedding_model": "hashing"})}
    )


def sent(sim: SimServer) -> int:
    return sum(sim.stats.values())


async def one_job(settings: Settings, analysis: Any, store: Any, job: str) -> Any:
    engine = Engine(settings, env={"OPENROUTER_API_KEY": "sim"}, embedder=CachedEmbedder(HashingEmbedder()))
    try:
        return await generate_durably(
            settings, analysis, job_id=job, engine=engine, store=store, say=lambda _: None
        )
    finally:
        await engine.aclose()


async def twice(analysis: Any, tmp: Path) -> dict[str, Any]:
    store = open_store(f"sqlite:///{tmp}/twice.db")
    await store.init()
    runs = []
    try:
        async with SimServer(load_profile("ideal"), time_scale=0.0) as sim:
            settings = sim_settings(sim.base_url)
            for job in ("first", "second"):
                before, t0 = sent(sim), time.perf_counter()
                course, report = await one_job(settings, analysis, store, job)
                runs.append(
                    {
                        "job": job,
                        "status": course.status if course else "failed",
                        "provider_requests": sent(sim) - before,
                        "cost_usd": float(report.total_cost_usd),
                        "cache_hits": report.cache_hits,
                        "saved_usd": report.summary["cache_saved_usd"],
                        "lessons": [(g.lesson_id, g.status) for g in report.lessons],
                        "wall_s": round(time.perf_counter() - t0, 2),
                    }
                )
    finally:
        await store.close()
    same_gates = runs[0]["lessons"] == runs[1]["lessons"]
    for r in runs:
        del r["lessons"]
    return {"runs": runs, "same_lesson_verdicts": same_gates}


async def prefix_share(
    analysis: Any, tmp: Path, min_tokens: int, block: int, read_share: Decimal
) -> dict[str, Any]:
    store = open_store(f"sqlite:///{tmp}/prefix-{min_tokens}.db")
    await store.init()
    profile = load_profile("ideal")
    defaults = profile.defaults.model_copy(
        update={"prompt_cache_min_tokens": min_tokens, "prompt_cache_block_tokens": block}
    )
    try:
        async with SimServer(profile.model_copy(update={"defaults": defaults}), time_scale=0.0) as sim:
            settings = without_cache(sim_settings(sim.base_url, read_share))
            course, report = await one_job(settings, analysis, store, f"prefix-{min_tokens}")
    finally:
        await store.close()
    sent_calls = [c for c in report.calls if c.outcome in ("ok", "rejected")]
    prompt = sum(c.input_tokens for c in sent_calls)
    lesson_calls = [c for c in sent_calls if c.task.startswith("lesson:")]
    lesson_prompt = sum(c.input_tokens for c in lesson_calls)
    return {
        "min_tokens": min_tokens,
        "block_tokens": block,
        "lessons": report.summary["lessons"],
        "prompt_tokens": prompt,
        "cached_tokens": report.summary["cached_input_tokens"],
        "share_cached": round(report.summary["cached_input_tokens"] / prompt, 4) if prompt else 0.0,
        "lesson_calls_share_cached": round(sum(c.cached_tokens for c in lesson_calls) / lesson_prompt, 4)
        if lesson_prompt
        else 0.0,
        "cost_usd": float(report.total_cost_usd),
        "prompt_cache_saved_usd": report.summary["prompt_cache_saved_usd"],
        "similarity_mean": report.quality.similarity_mean if report.quality else None,
        "first_attempt_pass_rate": report.quality.first_attempt_pass_rate if report.quality else None,
        "status": course.status if course else "failed",
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    data = json.loads((EXAMPLES / f"{args.course}.json").read_text("utf-8"))
    analysis = validate_analysis(data)
    with tempfile.TemporaryDirectory() as tmp:
        out = {"course": args.course, "twice": await twice(analysis, Path(tmp))}
        read_share = Decimal(str(args.read_share))
        out["prompt_cache"] = [
            await prefix_share(analysis, Path(tmp), args.min_tokens, 128, read_share),
            await prefix_share(analysis, Path(tmp), 64, 64, read_share),
        ]
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--course", default="python-basics")
    parser.add_argument("--min-tokens", type=int, default=1024)
    parser.add_argument("--read-share", type=float, default=0.25)
    parser.add_argument("--json", type=Path)
    result = asyncio.run(main(parser.parse_args()))
    first, second = result["twice"]["runs"]
    print(f"course {result['course']}, generated twice (response cache on):")
    for r in (first, second):
        print(
            f"  {r['job']:>6}: {r['provider_requests']} provider requests, ${r['cost_usd']:.6f}, "
            f"{r['cache_hits']} cache hits (saved ${r['saved_usd']:.6f}), {r['status']}, {r['wall_s']} s"
        )
    print(f"  same lesson verdicts both runs: {result['twice']['same_lesson_verdicts']}")
    for p in result["prompt_cache"]:
        print(
            f"provider prompt cache (min {p['min_tokens']} tokens, {p['block_tokens']}-token blocks), "
            f"{p['lessons']} lessons: {p['cached_tokens']}/{p['prompt_tokens']} prompt tokens cached "
            f"= {p['share_cached']:.1%} (lesson calls {p['lesson_calls_share_cached']:.1%}); "
            f"cost ${p['cost_usd']:.6f}, saved ${p['prompt_cache_saved_usd']:.6f}"
        )
    ns = parser.parse_args()
    if ns.json:
        ns.json.write_text(json.dumps(result, indent=2), "utf-8")
    sys.exit(0 if second["provider_requests"] == 0 and second["cost_usd"] == 0 else 1)
