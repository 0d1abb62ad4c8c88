"""Batch mode against normal mode: the same courses on the simulator, each mode on a fresh
simulator with the same seed.

The bundled hosted profile is pointed at an in-process simulator (`--profile`, default
`realistic`, latency compressed by `--time-scale`; batches complete `--batch-delay` simulated
seconds after they are created), gated with the hashing embedder, the response cache off. One
engine runs all `--courses` courses at once in each mode (a service's shared engine: in batch
mode its courses share one batch per model per round). Printed per mode: total cost, calls,
batches, lesson verdicts, course statuses and wall time; then the cost ratio (batch / normal;
the issue's goal is <= 0.55) and whether every course passed the same gates.

    python benchmarks/batch_mode.py [--courses 20] [--profile realistic] [--time-scale 0.01]
                                    [--batch-delay 60] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

from courseforge.config import Settings, load_config
from courseforge.engine import Engine, without_cache
from courseforge.pipeline import validate_analysis
from courseforge.providers.embeddings import CachedEmbedder, HashingEmbedder
from courseforge.resilience import BREAKER_COOLDOWN_S
from courseforge.sim import SimServer, load_profile

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def settings_for(base_url: str, time_scale: float) -> Settings:
    env = {"OPENROUTER_API_KEY": "simulated", "OPENROUTER_BASE_URL": base_url}
    settings = load_config("hosted", env=env).settings
    batch = settings.batch.model_copy(update={"collect_s": 0.2, "max_collect_s": 2.0, "poll_s": 0.1})
    # The simulator's batch API prices nothing: half price is this benchmark's assumption (a
    # real run batches only the models whose synced `:batch` price is below the normal one).
    half = Decimal("0.5")
    models = {k: m.model_copy(update={"batch_price_multiplier": half}) for k, m in settings.models.items()}
    return without_cache(
        settings.model_copy(
            update={
                "gates": settings.gates.model_copy(update={"embedding_model": "hashing"}),
                "batch": batch,
                "models": models,
            }
        )
    )


def analyses(n: int) -> list[Any]:
    names = ["python-basics", "spanish-a1", "photosynthesis-sourced"]
    data = [json.loads((EXAMPLES / f"{name}.json").read_text("utf-8")) for name in names]
    return [validate_analysis({**data[i % len(data)], "course_id": f"batch-{i:03d}"}) for i in range(n)]


async def one_mode(args: argparse.Namespace, batch: bool) -> dict[str, Any]:
    profile = load_profile(args.profile)
    defaults = profile.defaults.model_copy(update={"batch_delay_s": args.batch_delay})
    profile = profile.model_copy(update={"defaults": defaults})
    async with SimServer(profile, seed=args.seed, time_scale=args.time_scale) as sim:
        settings = settings_for(sim.base_url, args.time_scale)
        engine = Engine(
            settings,
            env={"OPENROUTER_API_KEY": "simulated"},
            embedder=CachedEmbedder(HashingEmbedder()),
            breaker_cooldown_s=BREAKER_COOLDOWN_S * args.time_scale,
        )
        batcher = engine.batcher() if batch else None
        started = time.perf_counter()
        try:
            results = await asyncio.gather(
                *(engine.generate(a, batcher=batcher) for a in analyses(args.courses))
            )
        finally:
            await engine.aclose()
        wall = time.perf_counter() - started
        stats: Counter[str] = Counter()
        for (_, outcome), n in sim.stats.items():
            stats[outcome] += n
    reports = [r.report for r in results]
    return {
        "mode": "batch" if batch else "normal",
        "cost_usd": sum((r.total_cost_usd for r in reports), Decimal(0)),
        "calls": sum(len(r.calls) for r in reports),
        "batch_calls": sum(r.summary["batch_calls"] for r in reports),
        "batches": stats.get("batch_created", 0),
        "statuses": dict(Counter(r.status for r in reports)),
        "verdicts": {r.course_id: [(g.lesson_id, g.status) for g in r.lessons] for r in reports},
        "wall_s": round(wall, 2),
        "sim": dict(sorted(stats.items())),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    normal = await one_mode(args, batch=False)
    batched = await one_mode(args, batch=True)
    ratio = batched["cost_usd"] / normal["cost_usd"] if normal["cost_usd"] else Decimal(0)
    same = normal["verdicts"] == batched["verdicts"]
    return {"normal": normal, "batch": batched, "cost_ratio": float(ratio), "same_gates": same}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--courses", type=int, default=20)
    parser.add_argument("--profile", default="realistic")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--time-scale", type=float, default=0.01)
    parser.add_argument("--batch-delay", type=float, default=60.0)
    parser.add_argument("--json", type=Path)
    ns = parser.parse_args()
    out = asyncio.run(main(ns))
    for key in ("normal", "batch"):
        m = out[key]
        print(
            f"{m['mode']:>6}: {ns.courses} courses, ${m['cost_usd']:.6f}, {m['calls']} calls "
            f"({m['batch_calls']} answered by {m['batches']} batches), statuses {m['statuses']}, "
            f"wall {m['wall_s']} s"
        )
    print(
        f"cost ratio batch/normal: {out['cost_ratio']:.3f}; same lesson verdicts in every course: {out['same_gates']}"
    )
    if ns.json:
        for key in ("normal", "batch"):
            out[key]["cost_usd"] = str(out[key]["cost_usd"])
        ns.json.write_text(json.dumps(out, indent=2), "utf-8")
