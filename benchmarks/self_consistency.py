"""Self-consistency on the simulator: what it catches, what it costs.

The bundled hosted profile (self-consistency on for critical lessons: 2 samples per cheap/mid
attempt) is pointed at the in-process simulator with an injection profile (`--off-topic`,
`--truncated` per request, on every model; no latency). Each course runs twice on the same
simulator seed: with self-consistency as the profile ships it, and with it off (the baseline).
Printed per arm: lessons, sampled lessons, off-topic and truncated answers the simulator
injected, attempts the consistency gate rejected, off-topic text in the final courses,
calls, cost; and the on/off ratios of calls and cost (measured in the same run).
`--samples 3` adds a third arm drawing 3 samples instead of the profile's 2 (seed 001's count),
with its ratios to the hosted arm.

    python benchmarks/self_consistency.py [--seeds 3] [--off-topic 0.15] [--truncated 0.05] [--samples 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from courseforge.config import Settings, load_config
from courseforge.engine import Engine
from courseforge.pipeline import validate_analysis
from courseforge.providers.embeddings import CachedEmbedder, HashingEmbedder
from courseforge.sim import FaultRates, ModelProfile, SimProfile, SimServer

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
OFF_TOPIC_MARK = "Medieval castles were built"


def settings_for(base_url: str, sampled: bool, samples: int | None = None) -> Settings:
    settings = load_config(
        "hosted", env={"OPENROUTER_API_KEY": "sim", "OPENROUTER_BASE_URL": base_url}
    ).settings
    cs = settings.gates.consistency
    if not sampled:
        cs = cs.model_copy(update={"critical": False, "section_types": [], "all_sections": False})
    elif samples is not None:
        cs = cs.model_copy(update={"samples": samples})
    gates = settings.gates.model_copy(update={"embedding_model": "hashing", "consistency": cs})
    return settings.model_copy(update={"gates": gates})


async def run_arm(
    sampled: bool, seeds: int, off_topic: float, truncated: float, samples: int | None = None
) -> dict[str, Any]:
    totals: dict[str, Any] = {
        "courses": 0,
        "lessons": 0,
        "sampled_calls": 0,
        "injected_off_topic": 0,
        "injected_truncated": 0,
        "consistency_rejections": 0,
        "samples_not_kept": 0,
        "similarity_rejections": 0,
        "off_topic_in_final": 0,
        "calls": 0,
        "cost_usd": Decimal(0),
        "failed": 0,
    }
    names = ["python-basics", "spanish-a1", "photosynthesis-sourced"]
    for seed in range(seeds):
        profile = SimProfile(
            name="injections",
            defaults=ModelProfile(
                ttft_ms=0, tokens_per_s=1e6, faults=FaultRates(off_topic=off_topic, truncated=truncated)
            ),
        )
        async with SimServer(profile, seed=seed, time_scale=0.0) as server:
            settings = settings_for(f"{server.base_url}", sampled, samples)
            engine = Engine(
                settings, env={"OPENROUTER_API_KEY": "sim"}, embedder=CachedEmbedder(HashingEmbedder())
            )
            try:
                for name in names:
                    data = json.loads((EXAMPLES / f"{name}.json").read_text("utf-8"))
                    result = await engine.generate(validate_analysis(data))
                    report = result.report
                    totals["courses"] += 1
                    totals["failed"] += result.course is None
                    totals["calls"] += len(report.calls)
                    totals["cost_usd"] += report.total_cost_usd
                    totals["sampled_calls"] += sum(1 for c in report.calls if "#s" in c.task)
                    for c in report.calls:
                        if c.outcome == "rejected" and "samples of this lesson disagree" in c.reason.lower():
                            totals["consistency_rejections"] += 1
                        if c.outcome == "rejected" and c.reason.startswith("self-consistency"):
                            totals["samples_not_kept"] += 1
                        if c.outcome == "rejected" and "similarity" in c.reason:
                            totals["similarity_rejections"] += 1
                    if result.course is not None:
                        lessons = result.course.lessons()
                        totals["lessons"] += len(lessons)
                        totals["off_topic_in_final"] += sum(OFF_TOPIC_MARK in x.content for x in lessons)
            finally:
                await engine.aclose()
            counts = server.fault_counts()
            totals["injected_off_topic"] += counts.get("off_topic", 0)
            totals["injected_truncated"] += counts.get("truncated", 0)
    return totals


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--off-topic", type=float, default=0.15)
    ap.add_argument("--truncated", type=float, default=0.05)
    ap.add_argument("--samples", type=int, default=None, help="also run an arm with this many samples")
    args = ap.parse_args()
    off = await run_arm(False, args.seeds, args.off_topic, args.truncated)
    on = await run_arm(True, args.seeds, args.off_topic, args.truncated)
    arms = [("self-consistency off (baseline)", off), ("self-consistency on (hosted)", on)]
    more = None
    if args.samples is not None:
        more = await run_arm(True, args.seeds, args.off_topic, args.truncated, args.samples)
        arms.append((f"self-consistency on, {args.samples} samples", more))
    for label, arm in arms:
        print(label)
        for key, value in arm.items():
            print(f"  {key}: {value}")
    print(f"calls on/off: {on['calls'] / off['calls']:.3f}")
    print(f"cost on/off: {float(on['cost_usd'] / off['cost_usd']):.3f}")
    if more is not None:
        print(f"calls {args.samples} samples / hosted: {more['calls'] / on['calls']:.3f}")
        print(f"cost {args.samples} samples / hosted: {float(more['cost_usd'] / on['cost_usd']):.3f}")


if __name__ == "__main__":
    asyncio.run(main())
