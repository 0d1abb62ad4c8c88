"""Lesson-call latency per section type and model, and the timeouts p95 x factor would give.

    courseforge eval evals/set -c evals/configs/hosted.yaml --sim evals/sim-realistic.yaml \\
        --reference-judge none -o OUT
    python benchmarks/lesson_latency.py OUT/store.db --sim evals/sim-realistic.yaml --factor 3

Latencies measured on a shared machine at the eval's time scale (0.01) are mostly scheduling:
scaled back, they say more about the load than about the models. So each answered lesson call
of the store's reports is timed from what does not depend on this machine: the answer's
recorded completion tokens at the simulator profile's published speed of its model (time to
first token + tokens / tokens-per-second), with the profile's jitter drawn uniformly (seeded).
The recorded latency scaled back is printed beside it, to show how far off it is. With
`--recorded` (a store of real-provider runs, `--time-scale 1`) the recorded latencies are used.
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import sqlite3
from pathlib import Path

from courseforge.config import load_config
from courseforge.sim.profiles import load_profile


def p_quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("store", type=Path, help="an eval's store.db")
    ap.add_argument("--sim", default="evals/sim-realistic.yaml")
    ap.add_argument("--time-scale", type=float, default=0.01, help="the eval's --sim-time-scale")
    ap.add_argument("--factor", type=float, default=3.0)
    ap.add_argument("--recorded", action="store_true", help="time calls by their recorded latency")
    args = ap.parse_args()
    profile = load_profile(args.sim)
    models = load_config("hosted", env={"OPENROUTER_API_KEY": "-"}).settings.models
    rng = random.Random(0)
    modelled: dict[tuple[str, str], list[float]] = collections.defaultdict(list)
    recorded: dict[tuple[str, str], list[float]] = collections.defaultdict(list)
    by_model: dict[str, list[float]] = collections.defaultdict(list)
    with sqlite3.connect(args.store) as db:
        bodies = [json.loads(b) for (b,) in db.execute("select body from reports")]
    for report in bodies:
        types = {
            d["task"].split(":")[1]: d["inputs"]["section_type"]
            for d in report["decisions"]
            if d["action"] == "route" and d["task"].startswith("lesson:")
        }
        for call in report["calls"]:
            if call["outcome"] != "ok" or not call["task"].startswith("lesson:"):
                continue
            lesson = call["task"].split(":")[1].split("#")[0].split("@")[0]
            mp = profile.for_model(models[call["model"]].name)
            jitter = 1 + mp.jitter * (2 * rng.random() - 1)
            seconds = (mp.ttft_ms / 1000 + call["output_tokens"] / mp.tokens_per_s) * jitter
            observed = call["latency_ms"] / 1000 / args.time_scale
            if args.recorded:
                seconds = observed
            key = (types.get(lesson, "?"), call["model"])
            modelled[key].append(seconds)
            by_model[call["model"]].append(seconds)
            recorded[key].append(observed)
    print(
        f"{'section type':14s} {'model':17s} {'calls':>5s} {'p50 s':>7s} {'p95 s':>7s} {'recorded p95 s':>15s}"
    )
    for key in sorted(modelled):
        v = modelled[key]
        print(
            f"{key[0]:14s} {key[1]:17s} {len(v):5d} {p_quantile(v, 0.5):7.1f} {p_quantile(v, 0.95):7.1f} "
            f"{p_quantile(recorded[key], 0.95):15.1f}"
        )
    print(f"per model, all section types: p95 and p95 x {args.factor:g}")
    for model, v in sorted(by_model.items()):
        p95 = p_quantile(v, 0.95)
        print(f"  {model:17s} calls {len(v):4d}  p95 {p95:6.1f} s  timeout {p95 * args.factor:6.1f} s")


if __name__ == "__main__":
    main()
