"""Figures read back from an eval's store (`courseforge eval ... -o OUT` writes OUT/store.db):
what the eval's own tables do not break down.

    python benchmarks/eval_store.py OUT/store.db routes [--config NAME]   # start tier and why, final tier
    python benchmarks/eval_store.py OUT/store.db judges [--config NAME]   # judge calls: cost share by model
    python benchmarks/eval_store.py OUT/store.db task metadata_extras [--config NAME]

`--config` keeps the runs of one config (the name given with `-c NAME=PATH`, or the file's stem).
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def reports(store: Path, config: str | None) -> Iterator[dict[str, Any]]:
    with sqlite3.connect(store) as db:
        rows = list(db.execute("select job_id, body from reports"))
    for job_id, body in rows:
        if config is None or f"-{config}-" in job_id:
            yield json.loads(body)


def routes(bodies: list[dict[str, Any]]) -> None:
    start: collections.Counter[tuple[str, str]] = collections.Counter()
    moves: collections.Counter[tuple[str, str]] = collections.Counter()
    final: collections.Counter[str] = collections.Counter()
    for report in bodies:
        routed = {
            d["task"].split(":")[1]: (d["tier"], re.sub(r"[0-9.]+", "N", d["reason"]))
            for d in report["decisions"]
            if d["action"] == "route" and d["task"].startswith("lesson:")
        }
        for lesson in report["lessons"]:
            tier, why = routed.get(lesson["lesson_id"], ("?", "?"))
            start[tier, why] += 1
            moves[tier, lesson["final_tier"]] += 1
            final[lesson["final_tier"]] += 1
    total = sum(final.values())
    print(f"{len(bodies)} courses, {total} lessons")
    print("start tier, why:")
    for (tier, why), n in start.most_common():
        print(f"  {n:4d}  {tier:8s} {why}")
    print("start -> final tier:")
    for (a, b), n in moves.most_common():
        print(f"  {n:4d}  {a} -> {b}")
    print("final tier: " + ", ".join(f"{t} {n} ({n / total:.3f})" for t, n in final.most_common()))


def task_costs(bodies: list[dict[str, Any]], prefix: str) -> None:
    total = sum(r["total_cost_usd"] for r in bodies)
    cost: collections.Counter[tuple[str, str]] = collections.Counter()
    calls: collections.Counter[tuple[str, str]] = collections.Counter()
    failed: collections.Counter[tuple[str, str]] = collections.Counter()
    for report in bodies:
        for call in report["calls"]:
            kind = call["task"].split(":")[0]
            if kind == prefix or (prefix == "judges" and kind.startswith("judge")):
                key = (kind, call["model"])
                cost[key] += call["cost_usd"]
                calls[key] += 1
                failed[key] += call["outcome"] != "ok"
    print(f"{len(bodies)} courses, total ${total:.5f}")
    for key in sorted(cost):
        n = calls[key]
        print(
            f"  {key[0]:16s} {key[1]:17s} calls {n:4d} (not ok {failed[key]:3d})  ${cost[key]:.5f}  "
            f"per call ${cost[key] / n:.7f}  per course ${cost[key] / len(bodies):.7f}  "
            f"share {cost[key] / total:.3%}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("store", type=Path)
    ap.add_argument("what", choices=["routes", "judges", "task"])
    ap.add_argument("task", nargs="?", default="")
    ap.add_argument("--config", default=None)
    args = ap.parse_args()
    bodies = list(reports(args.store, args.config))
    if args.what == "routes":
        routes(bodies)
    else:
        task_costs(bodies, "judges" if args.what == "judges" else args.task)


if __name__ == "__main__":
    main()
