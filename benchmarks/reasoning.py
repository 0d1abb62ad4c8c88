"""Reasoning models on the simulator: one hosted course on a server whose models think as they
do on OpenRouter (the bundled `reasoning` profile) against the same course on one that does not
think (`ideal`, the same profile without the thinking), the response cache off.

Per run: calls sent, rejected calls, answers cut at max_tokens (the server's own count of
answers its thinking left too little room for), the share of output tokens spent reasoning
(the server's count: billed as output either way), cost, escalation rate. Goals (issue 23):
cut ≤ 2 % of answers, cost on `reasoning` ≤ 1.15× the cost on `ideal`.

    python benchmarks/reasoning.py [--course python-basics] [--seed 0] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from collections import Counter
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
COLUMNS = (
    "lessons",
    "calls",
    "rejected",
    "answers",
    "cut_at_max_tokens",
    "cut_share",
    "reasoning_share",
    "cost_usd",
    "escalation_rate",
    "status",
)


def sim_settings(base_url: str) -> Settings:
    """The bundled hosted profile pointed at the simulator, gated with the hashing embedder,
    the response cache off (every call is sent)."""
    settings = load_config(
        "hosted", env={"OPENROUTER_API_KEY": "sim", "OPENROUTER_BASE_URL": base_url}
    ).settings
    gates = settings.gates.model_copy(update={"embedding_model": "hashing"})
    return without_cache(settings.model_copy(update={"gates": gates}))


async def one_course(profile: str, analysis: Any, tmp: Path, seed: int) -> dict[str, Any]:
    store = open_store(f"sqlite:///{tmp}/{profile}.db")
    await store.init()
    try:
        async with SimServer(load_profile(profile), seed=seed, time_scale=0.0) as sim:
            settings = sim_settings(sim.base_url)
            engine = Engine(
                settings, env={"OPENROUTER_API_KEY": "sim"}, embedder=CachedEmbedder(HashingEmbedder())
            )
            try:
                course, report = await generate_durably(
                    settings, analysis, job_id=profile, engine=engine, store=store, say=lambda _: None
                )
            finally:
                await engine.aclose()
            outcomes: Counter[str] = Counter()
            for (_, outcome), n in sim.stats.items():
                outcomes[outcome] += n
            completion = sum(n for (_, kind), n in sim.tokens.items() if kind == "completion")
            reasoning = sum(n for (_, kind), n in sim.tokens.items() if kind == "reasoning")
    finally:
        await store.close()
    sent = [c for c in report.calls if c.outcome in ("ok", "rejected", "error")]
    answers = sum(outcomes.values())
    cut = outcomes["reasoning_cut"]
    return {
        "profile": profile,
        "lessons": report.summary.get("lessons"),
        "calls": len(sent),
        "rejected": sum(1 for c in sent if c.outcome == "rejected"),
        "answers": answers,
        "cut_at_max_tokens": cut,
        "cut_share": round(cut / answers, 4) if answers else 0.0,
        "reasoning_share": round(reasoning / completion, 4) if completion else 0.0,
        "cost_usd": float(report.total_cost_usd),
        "escalation_rate": report.summary.get("escalation_rate"),
        "status": course.status if course else "failed",
        "rejected_by_model": dict(Counter(c.model for c in sent if c.outcome == "rejected")),
    }


def table(runs: list[dict[str, Any]]) -> str:
    head = ["profile", *COLUMNS]
    rows = [head] + [[str(r[k]) for k in head] for r in runs]
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in rows)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    analysis = validate_analysis(json.loads((EXAMPLES / f"{args.course}.json").read_text("utf-8")))
    with tempfile.TemporaryDirectory() as tmp:
        runs = [await one_course(p, analysis, Path(tmp), args.seed) for p in ("ideal", "reasoning")]
    plain, thinking = runs
    ratio = thinking["cost_usd"] / plain["cost_usd"] if plain["cost_usd"] else None
    return {
        "course": args.course,
        "seed": args.seed,
        "runs": runs,
        "cost_ratio_reasoning_vs_ideal": round(ratio, 3) if ratio is not None else None,
        "calls_ratio": round(thinking["calls"] / plain["calls"], 3) if plain["calls"] else None,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--course", default="python-basics")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    out = asyncio.run(main(args))
    print(table(out["runs"]))
    print(
        f"cost ratio reasoning/ideal: {out['cost_ratio_reasoning_vs_ideal']}  calls ratio: {out['calls_ratio']}"
    )
    for run in out["runs"]:
        print(f"{run['profile']}: rejected by model {run['rejected_by_model']}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2), encoding="utf-8")
    sys.exit(0)
