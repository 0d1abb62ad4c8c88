"""What an offline judge adds on the outside set (issue 24): the embedded local model as the
judge, on the items the policy sends it, and on the wrong answer keys no rule reads.

    .venv/bin/python benchmarks/outside_judge.py [--limit N] [--skip N] [--profile offline] [--json OUT]

The sample, in this order (each kind interleaved good/bad so a short `--limit` still has both):
1. every similarity-labelled item whose similarity verdict under the hosted policy (MiniLM) is
   "borderline" or lies in the judge's band — what generation would hand the judge;
2. every wrong-key item the rule gates miss, each beside its correct twin (the same section
   with the right key) — what the judge would see only in the calibration sample.

Each item is judged once by the profile's judge tier (temperature 0, the pipeline's own
`judge_messages` and schema, re-asked once on invalid JSON) and scored by `JudgeGate` at the
profile's bars. A good item the judge fails is a false alarm it adds; a bad item it passes is a
miss. CPU and wall per call are printed: on a shared, loaded machine read them as such.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from outside_gates import DiskCachedEmbedder, cache_key, course_rivals, items, judge, policy

from courseforge.config import load_config
from courseforge.domain.drafts import ExerciseDraft, LessonDraft
from courseforge.pipeline.judging import JUDGE_SCHEMA, judge_messages
from courseforge.pipeline.parsing import parser_for
from courseforge.providers.base import ChatRequest
from courseforge.providers.embeddings import make_embedder
from courseforge.providers.local_llama import LocalLlamaModel
from courseforge.quality.base import GateContext
from courseforge.quality.judge import JudgeDraft, JudgeGate


async def sample(cache: Path) -> list[dict[str, Any]]:
    """The items the policy sends to the judge, then the missed wrong keys with their twins."""
    data = items()
    by_id = {i["id"]: i for i in data}
    settings = policy("hosted", "all-MiniLM-L6-v2")
    band = settings.gates.judge.borderline.get("all-MiniLM-L6-v2")
    embedder = DiskCachedEmbedder(make_embedder("all-MiniLM-L6-v2"), cache, cache_key("all-MiniLM-L6-v2"))
    rivals = course_rivals(data)
    routed: list[dict[str, Any]] = []
    missed_keys: list[dict[str, Any]] = []
    for item in data:
        verdict = await judge(item, settings, embedder, rivals.get(item["id"]))
        in_band = bool(band and verdict.similarity is not None and band[0] <= verdict.similarity < band[1])
        if item.get("gate") == "similarity" and (verdict.similarity_verdict == "borderline" or in_band):
            routed.append({**item, "why": "borderline similarity"})
        if item["kind"] == "wrong_key" and "answer_keys" not in verdict.failed:
            twin = by_id["on_topic:" + item["id"].split(":", 1)[1]]
            missed_keys += [{**item, "why": "wrong key no rule reads"}, {**twin, "why": "its correct twin"}]
    return _interleave(routed) + missed_keys


def _interleave(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    good = [r for r in rows if r["label"] == "good"]
    bad = [r for r in rows if r["label"] == "bad"]
    out: list[dict[str, Any]] = []
    while good or bad:
        out += [good.pop(0)] if good else []
        out += [bad.pop(0)] if bad else []
    return out


def _draft(item: dict[str, Any]) -> LessonDraft:
    exercises = [
        ExerciseDraft.model_construct(
            **{k: v for k, v in e.items() if k != "outcomes"} | {"options": e.get("options")},
            outcome=e["outcomes"][0],
        )
        for e in item["exercises"]
    ]
    return LessonDraft.model_construct(content=item["content"], exercises=exercises, citations=[])


async def run(limit: int, profile: str, cache: Path, skip: int = 0) -> dict[str, Any]:
    settings = load_config(profile, env={}).settings
    js = settings.gates.judge
    tier = js.tier
    model_id = settings.routing.tiers[tier]
    ms = settings.models[model_id]
    model = LocalLlamaModel.from_settings(model_id, ms, Path(settings.cache_dir).expanduser())
    gate = JudgeGate(js.pass_composite, js.min_correctness, js.floors)
    parse = parser_for(JudgeDraft)
    rows: list[dict[str, Any]] = []
    chosen = (await sample(cache))[skip : skip + limit]
    print(
        f"{len(chosen)} items, judge {model_id} ({profile} profile, tier {tier}); load {os.getloadavg()[0]:.1f}"
    )
    for item in chosen:
        draft = _draft(item)
        outcomes = {f"LO{i + 1}": o for i, o in enumerate(item["outcomes"])}
        wall, cpu = time.perf_counter(), time.process_time()
        verdict: JudgeDraft | None = None
        feedback = ""
        for _ in range(2):
            request = ChatRequest(
                judge_messages(draft, outcomes, feedback=feedback),
                json_schema=JUDGE_SCHEMA,
                schema_name="judge",
                max_tokens=min(ms.max_output_tokens, js.max_tokens),
                temperature=0.0,
            )
            answer = await model.complete(request)
            try:
                verdict = parse(answer.text)
                break
            except ValueError as err:
                feedback = str(err)[:200]
        row: dict[str, Any] = {
            "id": item["id"],
            "why": item["why"],
            "label": item["label"],
            "wall_s": round(time.perf_counter() - wall, 1),
            "cpu_s": round(time.process_time() - cpu, 1),
        }
        if verdict is None:
            row["passed"] = None
        else:
            result = gate.check(draft, GateContext(values={"judge": verdict}))
            row |= {
                "passed": result.passed,
                "composite": result.score,
                "teaches_outcomes": verdict.teaches_outcomes,
                "keys_judged_right": [e.answer_correct for e in verdict.exercises],
                "reasons": list(result.reasons)[:2],
            }
        rows.append(row)
        print(json.dumps(row, ensure_ascii=False), flush=True)
    await model.aclose()
    return {"profile": profile, "model": model_id, "rows": rows, "summary": summarise(rows)}


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for why in dict.fromkeys(r["why"] for r in rows):
        mine = [r for r in rows if r["why"] == why and r["passed"] is not None]
        good = [r for r in mine if r["label"] == "good"]
        bad = [r for r in mine if r["label"] == "bad"]
        out[why] = {
            "judged": len(mine),
            "unanswered": sum(1 for r in rows if r["why"] == why and r["passed"] is None),
            "good_accepted": f"{sum(1 for r in good if r['passed'])}/{len(good)}",
            "bad_rejected": f"{sum(1 for r in bad if not r['passed'])}/{len(bad)}",
        }
    out["wall_s_per_call_median"] = sorted(r["wall_s"] for r in rows)[len(rows) // 2] if rows else None
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--limit", type=int, default=12, help="items judged (the sample's first N)")
    parser.add_argument("--profile", default="offline", help="the profile whose judge tier judges")
    parser.add_argument("--cache", type=Path, default=Path("~/.cache/courseforge/bench-embeddings.sqlite"))
    parser.add_argument("--skip", type=int, default=0, help="start after the sample's first N items")
    parser.add_argument("--list", action="store_true", help="only print the sample")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.list:
        for row in asyncio.run(sample(args.cache.expanduser())):
            print(row["why"], row["label"], row["id"])
        sys.exit(0)
    report = asyncio.run(run(args.limit, args.profile, args.cache.expanduser(), args.skip))
    print(json.dumps(report["summary"], indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1), "utf-8")
