"""Figures read back from an eval's store (`courseforge eval ... -o OUT` writes OUT/store.db):
what the eval's own tables do not break down.

    python benchmarks/eval_store.py OUT/store.db routes [--config NAME]   # start tier and why, final tier
    python benchmarks/eval_store.py OUT/store.db judges [--config NAME]   # judge calls: cost share by model
    python benchmarks/eval_store.py OUT/store.db task metadata_extras [--config NAME]
    python benchmarks/eval_store.py OUT/store.db gates [--config NAME]    # attempts each gate rejected
    python benchmarks/eval_store.py OUT/store.db quality [--config NAME]  # grounding, cost, lesson tokens
    python benchmarks/eval_store.py OUT/store.db exercises [--config NAME]  # exercises apart on OSS 20B?
    python benchmarks/eval_store.py OUT/store.db phases [--config NAME]  # each phase's spend against the cap
    python benchmarks/eval_store.py OUT/store.db shapes [--config NAME]  # lesson-phase calls by kind and tier
    python benchmarks/eval_store.py OUT/store.db agreement [--config NAME]  # gating vs reference judge
    python benchmarks/eval_store.py OUT/store.db costs [--config NAME]  # cost per course: spread, dearest

`exercises` prices, for every final lesson, its exercises where they are written now (in the
lesson's answer, at its final model's output price) against a separate call on the cheap tier
(the lesson's text and outcomes in, the exercises out), tokens counted with each model's
tokenizer. A bound from the final lessons' tokens, not a run of that pipeline: retries,
exercise-gate failures and the second call's own prompt framing are left out.

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
    # eval-<input>-<digest>-<config>-<config digest>-r<repeat>: "hosted" must not match "hosted-minilm".
    mine = re.compile(rf"-{re.escape(config)}-[0-9a-f]+-r\d+$") if config else None
    for job_id, body in rows:
        if mine is None or mine.search(job_id):
            yield {**json.loads(body), "_job": job_id}


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


def quality(bodies: list[dict[str, Any]]) -> None:
    """Means over courses of the report's quality figures, and the lesson phase's tokens."""
    keys = ("similarity_mean", "grounding_support_mean", "citation_coverage_mean", "human_review_rate")
    for key in keys:
        values = [r["quality"][key] for r in bodies if r["quality"].get(key) is not None]
        mean = sum(values) / len(values) if values else float("nan")
        print(f"  {key:24s} {mean:.4f}  ({len(values)} courses)")
    lessons = [r["by_phase"].get("lessons", {}) for r in bodies]
    print(f"  cost per course          ${sum(r['total_cost_usd'] for r in bodies) / len(bodies):.5f}")
    for key in ("input_tokens", "output_tokens", "cost_usd"):
        print(f"  lessons {key:16s} {sum(p.get(key, 0) for p in lessons) / len(bodies):.5f} per course")


def phases(bodies: list[dict[str, Any]]) -> None:
    """Each phase's spend per course as a share of the course's cap (`budget_usd`) and of what the
    course spent, against its own cap (`phase_budget_usd`) when it has one; budget-blocked calls."""
    names = sorted({p for r in bodies for p in r["by_phase"]})
    print(f"{len(bodies)} courses, mean cost ${sum(r['total_cost_usd'] for r in bodies) / len(bodies):.5f}")
    for name in names:
        spent = [float(r["by_phase"].get(name, {}).get("cost_usd", 0)) for r in bodies]
        of_cap = sorted(s / float(r["budget_usd"]) for s, r in zip(spent, bodies, strict=True))
        of_total = [s / float(r["total_cost_usd"] or 1) for s, r in zip(spent, bodies, strict=True)]
        caps = {str(r.get("phase_budget_usd", {}).get(name, "-")) for r in bodies}
        blocked = sum(
            1 for r in bodies for c in r["calls"] if c["phase"] == name and c["outcome"] == "budget_blocked"
        )
        print(
            f"  {name:12s} per course mean ${sum(spent) / len(spent):.5f} max ${max(spent):.5f}  "
            f"of the cap mean {sum(of_cap) / len(of_cap):.2%} p95 {of_cap[int(0.95 * (len(of_cap) - 1))]:.2%} "
            f"max {of_cap[-1]:.2%}  of the course's spend mean {sum(of_total) / len(of_total):.1%}  "
            f"cap {'/'.join(sorted(caps))}  budget-blocked calls {blocked}"
        )


def exercises(store: Path, bodies: list[dict[str, Any]], config: str | None) -> None:
    from courseforge.config import load_config
    from courseforge.ledger.tokens import count_text_tokens

    settings = load_config("hosted", env={"OPENROUTER_API_KEY": "-"}).settings
    models = settings.models
    cheap = models[settings.routing.tiers["cheap"]]
    with sqlite3.connect(store) as db:
        courses = [
            (j, json.loads(b))
            for j, b in db.execute("select job_id, body from courses")
            if not config or f"-{config}-" in j
        ]
    final = {(r["_job"], x["lesson_id"]): x["final_model"] for r in bodies for x in r["lessons"]}
    now = apart = 0.0
    lessons = ex_tokens = content_tokens = 0
    for job_id, course in courses:
        for section in course["sections"]:
            for lesson in section["lessons"]:
                model_id = final.get((job_id, lesson["id"]))
                if model_id is None:
                    continue
                model = models[model_id]
                ex = json.dumps(lesson["exercises"], ensure_ascii=False)
                n_ex, n_ex_cheap = count_text_tokens(ex, model.name), count_text_tokens(ex, cheap.name)
                n_in = count_text_tokens(lesson["content"], cheap.name) + 200
                now += n_ex * float(model.price_out_per_m) / 1e6
                apart += (
                    n_ex_cheap * float(cheap.price_out_per_m) / 1e6 + n_in * float(cheap.price_in_per_m) / 1e6
                )
                lessons += 1
                ex_tokens += n_ex
                content_tokens += count_text_tokens(lesson["content"], model.name)
    lesson_cost = sum(r["by_phase"].get("lessons", {}).get("cost_usd", 0) for r in bodies)
    # What grouping a section's lessons in one request could save at most: the prompt side of
    # the lesson calls (the shared prefix is repeated per lesson; part of it is served cached).
    prompt_cost = sum(
        c["input_tokens"] * float(models[c["model"]].price_in_per_m) / 1e6
        for r in bodies
        for c in r["calls"]
        if c["phase"] == "lessons" and c["task"].startswith("lesson:")
    )
    print(
        f"lesson calls' prompt tokens at the input price: ${prompt_cost:.5f} = {prompt_cost / lesson_cost:.1%} of the lesson phase"
    )
    print(
        f"{lessons} final lessons: exercises {ex_tokens / lessons:.0f} tokens, content {content_tokens / lessons:.0f}"
    )
    print(f"exercises in the lesson's answer: ${now:.5f}; apart on {cheap.name}: ${apart:.5f}")
    print(
        f"difference ${now - apart:.5f} = {(now - apart) / lesson_cost:.1%} of the lesson phase (${lesson_cost:.5f})"
    )


#: A rejected attempt's gate, read off the reason its feedback starts with (`gate: ...`).
_GATE_REASONS = (
    ("grounding", r"factual claims are supported"),
    ("citation_coverage", r"backed by a cited source"),
    ("similarity", r"drifted from|of another section better"),
    ("consistency", r"Samples of this lesson disagree"),
    ("answer_keys", r"answer key"),
    ("teaches", r"announc"),
    ("ending", r"cut off|empty heading|never (comes|given)"),
    ("length", r"content has \d+ words"),
    ("judge", r"judge"),
    ("exercise_outcomes", r"assesses outcome|does not teach"),
    ("safety", r"PII|toxic|profan"),
)


def gates(bodies: list[dict[str, Any]]) -> None:
    """Lesson attempts each gate rejected, and lessons regenerated as duplicates in phase 4
    (how many of those matched on the lexical measure alone, under the cosine bar)."""
    rejected: collections.Counter[str] = collections.Counter()
    regenerated: collections.Counter[str] = collections.Counter()
    attempts = lessons = 0
    for report in bodies:
        lessons += len(report["lessons"])
        for call in report["calls"]:
            if not call["task"].startswith("lesson:"):
                continue
            attempts += 1
            if call["outcome"] == "rejected" and call["reason"].startswith("gate:"):
                gate = next((g for g, p in _GATE_REASONS if re.search(p, call["reason"], re.I)), "other")
                rejected[gate] += 1
        for d in report["decisions"]:
            if d["action"] == "regenerate":
                regenerated[d.get("inputs", {}).get("kind", "?")] += 1
    print(f"{len(bodies)} courses, {lessons} lessons, {attempts} lesson calls")
    print(
        "attempts rejected, by gate: " + (", ".join(f"{g} {n}" for g, n in rejected.most_common()) or "none")
    )
    print(
        "regenerated as duplicates: "
        + (", ".join(f"{k} {n}" for k, n in regenerated.most_common()) or "none")
    )


def shapes(bodies: list[dict[str, Any]]) -> None:
    """The lesson phase per course: calls by kind (lesson, exercises, lesson_group, samples) and
    by tier, their cost, and the lessons' final tiers (issue 26, item 13's variants)."""
    n = len(bodies) or 1
    calls: collections.Counter[str] = collections.Counter()
    tiers: collections.Counter[str] = collections.Counter()
    cost: collections.Counter[str] = collections.Counter()
    tokens: collections.Counter[str] = collections.Counter()
    for report in bodies:
        for call in report["calls"]:
            if call["phase"] != "lessons":
                continue
            kind = call["task"].split(":")[0] + ("#sample" if "#s" in call["task"] else "")
            calls[kind] += 1
            tiers[call["tier"]] += 1
            cost[kind] += float(call["cost_usd"])
            tokens["in"] += call.get("input_tokens", 0)
            tokens["out"] += call.get("output_tokens", 0)
    total = sum(calls.values()) or 1
    print(
        f"{len(bodies)} courses; lesson phase per course: {sum(calls.values()) / n:.2f} calls, "
        f"${sum(cost.values()) / n:.5f}, {tokens['in'] / n:.0f} input / {tokens['out'] / n:.0f} output tokens"
    )
    for kind, k in calls.most_common():
        print(f"  {kind:16s} calls {k / n:6.2f} per course  ${cost[kind] / n:.5f} per course")
    print("calls by tier: " + ", ".join(f"{t} {k / total:.3f}" for t, k in sorted(tiers.items())))


def agreement(bodies: list[dict[str, Any]]) -> None:
    """The gating judge against the reference judge on the lessons both judged (the report's
    `judge_reference_samples` and disagreement rate, summed over courses)."""
    samples = disagreements = 0.0
    for report in bodies:
        q = report.get("quality") or {}
        k = q.get("judge_reference_samples") or 0
        samples += k
        disagreements += (q.get("judge_reference_disagreement_rate") or 0) * k
    rate = f"{disagreements / samples:.3f}" if samples else "n/a"
    print(f"{len(bodies)} courses, {samples:.0f} lessons judged by both, disagreement {rate}")


def costs(bodies: list[dict[str, Any]]) -> None:
    """Cost per course: mean, median, p95 and max, the dearest courses, and how many courses pass
    each alert line a deployment might set (`CourseforgeCourseCostHigh` reads the hourly mean)."""
    spent = sorted((float(r["total_cost_usd"]), r["_job"]) for r in bodies)
    values = [s for s, _ in spent]
    n = len(values)
    print(
        f"{n} courses, cost per course mean ${sum(values) / n:.5f} median ${values[n // 2]:.5f} "
        f"p95 ${values[int(0.95 * (n - 1))]:.5f} max ${values[-1]:.5f}"
    )
    for line in (0.02, 0.05, 0.30):
        print(f"  over ${line:.2f}: {sum(v > line for v in values)} of {n}")
    for value, job in spent[:-4:-1]:
        # eval-<input>-<input digest, 8 hex>-<config>-<config digest>-r<repeat>
        name = re.sub(r"^eval-(.+)-[0-9a-f]{8}-.+-[0-9a-f]+-r\d+$", r"\1", job)
        print(f"  ${value:.5f}  {name}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("store", type=Path)
    ap.add_argument(
        "what",
        choices=[
            "routes",
            "judges",
            "task",
            "quality",
            "exercises",
            "gates",
            "phases",
            "shapes",
            "agreement",
            "costs",
        ],
    )
    ap.add_argument("task", nargs="?", default="")
    ap.add_argument("--config", default=None)
    args = ap.parse_args()
    bodies = list(reports(args.store, args.config))
    if args.what == "routes":
        routes(bodies)
    elif args.what == "quality":
        quality(bodies)
    elif args.what == "phases":
        phases(bodies)
    elif args.what == "exercises":
        exercises(args.store, bodies, args.config)
    elif args.what == "gates":
        gates(bodies)
    elif args.what == "shapes":
        shapes(bodies)
    elif args.what == "agreement":
        agreement(bodies)
    elif args.what == "costs":
        costs(bodies)
    else:
        task_costs(bodies, "judges" if args.what == "judges" else args.task)


if __name__ == "__main__":
    main()
