"""Every gate measured on the outside labelled set (issue 24): precision, recall and seeded
bootstrap intervals per gate, per embedding model and per profile's policy, and the similarity
gate's separation of on-topic from related-but-wrong lessons as AUC.

    .venv/bin/python benchmarks/gates.py outside [--model all-MiniLM-L6-v2 --model all-mpnet-base-v2]
        [--profile hosted --profile offline] [--boot 1000] [--json OUT.json]

The set is `tests/quality/data/outside/items.jsonl` (built by benchmarks/outside_set/build.py
from Debian documentation packages). Each item goes through the one lesson-gate list
(`run_lesson_gates`, no judge: as `courseforge check` runs it); duplicate/distinct pairs go
through the course-wide redundancy check; each item's outcomes through the outcome-verb check.
Embeddings are cached on disk (`--cache`), so a second run costs no model time.

Definitions (a figure in a report is an API):
- a gate's *precision*: of the items it flagged, the share that are bad (any planted defect);
- its *recall*: of the items whose planted defect is its own (`expect`), the share it flagged;
- *false alarms*: good items (on-topic lessons, distinct pairs) flagged by any gate; reported
  with and without `length`, whose bounds are a profile's policy, not a judgement of quality;
- *caught*: bad items flagged by any gate;
- intervals: 2.5th-97.5th percentile over `--boot` resamples of the items (seed 24).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from courseforge.config import Settings, load_config
from courseforge.domain.drafts import ExerciseDraft, LessonDraft
from courseforge.providers.base import Embedder, Vector
from courseforge.providers.embeddings import make_embedder
from courseforge.quality.bloom import NOT_MEASURABLE, levels_of, main_verb
from courseforge.quality.calibrate import derive_thresholds
from courseforge.quality.gates import lesson_similarity
from courseforge.quality.lesson_gates import LessonUnderTest, run_lesson_gates
from courseforge.quality.redundancy import CourseLesson, course_duplicates

ITEMS = Path(__file__).resolve().parent.parent / "tests" / "quality" / "data" / "outside" / "items.jsonl"
SEED = 24


def cache_key(model: str, dtype: str = "auto") -> str:
    """The disk cache's name for `model`'s vectors computed in `dtype` (`gates.embedding_dtype`):
    bfloat16 vectors differ from float32 ones in the third decimal, so neither stands in for
    the other."""
    return f"{model}|{dtype}"


class DiskCachedEmbedder(Embedder):
    """Vectors kept in SQLite by (`key`, sha256 of text): benchmark reruns embed nothing twice.
    `key` names the model and dtype (`cache_key`); the inner embedder's name by default."""

    def __init__(self, inner: Embedder, path: Path, key: str | None = None) -> None:
        self.inner, self.name, self.dimensions = inner, inner.name, inner.dimensions
        self.key = key or inner.name
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path)
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS v (model TEXT, key TEXT, vec BLOB, PRIMARY KEY (model, key))"
        )
        self.seconds = 0.0
        self.embedded = 0

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        keys = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
        found: dict[str, Vector] = {}
        for key in set(keys):
            row = self.db.execute("SELECT vec FROM v WHERE model=? AND key=?", (self.key, key)).fetchone()
            if row:
                found[key] = tuple(np.frombuffer(row[0], dtype=np.float32).astype(float).tolist())
        missing = [(k, t) for k, t in dict(zip(keys, texts, strict=True)).items() if k not in found]
        if missing:
            started = time.process_time()
            vectors = await self.inner.embed([t for _, t in missing])
            self.seconds += time.process_time() - started
            self.embedded += len(missing)
            for (key, _), vec in zip(missing, vectors, strict=True):
                found[key] = tuple(vec)
                blob = np.asarray(vec, dtype=np.float32).tobytes()
                self.db.execute("INSERT OR REPLACE INTO v VALUES (?, ?, ?)", (self.key, key, blob))
            self.db.commit()
        return [found[k] for k in keys]


def items(path: Path = ITEMS) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


#: For a model the profile has no thresholds for: the seeds' 0.75 (written for mpnet), uncalibrated.
SEED_THRESHOLDS = {"pass_at": 0.75, "severe_below": 0.5}


def policy(profile: str, embedding_model: str, titled: bool | None = None) -> Settings:
    """The profile's gate policy for `embedding_model`; `titled` overrides its thresholds'
    `titled` (the scores change; the thresholds do not: compare with `--held-out`)."""
    settings = load_config(profile, env={"OPENROUTER_API_KEY": "x"}).settings
    similarity = dict(settings.gates.similarity)
    if embedding_model not in similarity:
        print(f"note: {profile} has no thresholds for {embedding_model}: the seeds' pass 0.75, uncalibrated")
        similarity[embedding_model] = type(next(iter(similarity.values())))(**SEED_THRESHOLDS)
    if titled is not None:
        similarity[embedding_model] = similarity[embedding_model].model_copy(update={"titled": titled})
    gates = settings.gates.model_copy(update={"embedding_model": embedding_model, "similarity": similarity})
    return settings.model_copy(update={"gates": gates})


@dataclass
class Verdict:
    item: dict[str, Any]
    failed: set[str] = field(default_factory=set)
    similarity: float | None = None
    #: similarity minus the best score among the other sections' outcomes (the rival margin).
    margin: float | None = None
    #: the similarity gate's verdict ("borderline": the policy sends the lesson to the judge).
    similarity_verdict: str = ""

    @property
    def bad(self) -> bool:
        return bool(self.item["label"] == "bad")


def _draft(item: dict[str, Any]) -> tuple[LessonDraft, list[list[int]]]:
    exercises = []
    tags = []
    for e in item["exercises"]:
        fields = {k: v for k, v in e.items() if k != "outcomes"}
        fields.setdefault("options", None)
        exercises.append(ExerciseDraft.model_construct(**fields, outcome=e["outcomes"][0]))
        tags.append(list(e["outcomes"]))
    # Unvalidated, as `courseforge check` builds it (`draft_of`): the schema's 200-character floor
    # is generation's business; a short cut lesson must still reach the gates.
    draft = LessonDraft.model_construct(content=item["content"], exercises=exercises, citations=[])
    return draft, tags


async def _thread(fn: Any, *args: Any) -> Any:
    return await asyncio.to_thread(fn, *args)


def outcome_verb_problem(text: str) -> bool:
    """The outcomes gate's verb test without a declared level: a measurable verb we know."""
    verb = main_verb(text)
    return verb is None or verb in NOT_MEASURABLE or not levels_of(verb)


def outcome_titles(data: Sequence[dict[str, Any]]) -> dict[str, str]:
    """Outcome text -> the heading of the real section it was written for, its numbering
    dropped (as `outside_set/course.py` titles the lessons): the title of the lesson that was
    planned to teach it. A related-but-wrong item carries the *next* section's outcomes, so it is
    framed by that section's title, as a lesson written off its plan would be."""
    return {
        o: re.sub(r"^[\dA]+(?:\.\d+)*\.?\s+", "", i["title"])
        for i in data
        if i["kind"] == "on_topic"
        for o in i["outcomes"]
    }


def course_rivals(data: Sequence[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """Per item id, the outcomes of the other sections of the course its outcomes come from
    (each source's real sections form one course): what `rivals` is in generation and `check`."""
    section_of: dict[str, tuple[str, str]] = {}
    for i in data:
        if i["kind"] == "on_topic":
            for o in i["outcomes"]:
                section_of[o] = (i["provenance"]["package"], i["id"])
    out: dict[str, dict[str, str]] = {}
    for i in data:
        homes = {section_of[o] for o in i["outcomes"] if o in section_of}
        if len(homes) != 1:
            continue
        ((source, section),) = homes
        # "R<n>", not "LO<n>": the item's own outcomes are LO1.., and a rival under the same
        # id was dropped as one of them (rounds 1-2 compared the first sections' items with
        # fewer rivals than the others).
        out[i["id"]] = {
            f"R{n}": o
            for n, (o, (src, sid)) in enumerate(section_of.items(), start=1)
            if src == source and sid != section
        }
    return out


async def judge(
    item: dict[str, Any],
    settings: Settings,
    embedder: Embedder,
    rivals: dict[str, str] | None = None,
    titles: dict[str, str] | None = None,
) -> Verdict:
    verdict = Verdict(item)
    if item["kind"] in ("duplicate", "distinct"):
        pair = [CourseLesson("A", item["content"]), CourseLesson("B", item["other"])]
        if await course_duplicates(pair, embedder, settings.gates.redundancy):
            verdict.failed.add("redundancy")
        return verdict
    draft, tags = _draft(item)
    outcomes = {f"LO{i + 1}": text for i, text in enumerate(item["outcomes"])}
    framing = {k: titles[t] for k, t in {**outcomes, **(rivals or {})}.items() if t in (titles or {})}
    lesson = LessonUnderTest(
        lesson_id=item["id"],
        draft=draft,
        outcome_numbers=list(range(1, len(outcomes) + 1)),
        outcomes=outcomes,
        **_assessed(tags),
        **({"rivals": rivals} if rivals and "rivals" in LessonUnderTest.__dataclass_fields__ else {}),
        **({"titles": framing} if "titles" in LessonUnderTest.__dataclass_fields__ else {}),
    )
    results = await run_lesson_gates(lesson, settings=settings, embedder=embedder, blocking=_thread)
    if rivals:
        thresholds = settings.gates.similarity[embedder.name]
        values = await lesson_similarity(
            item["content"],
            outcomes,
            embedder,
            rivals,
            framing if getattr(thresholds, "titled", False) else None,
        )
        if "rival" in values:
            verdict.margin = values["similarity"] - values["rival"][1]
    for r in results:
        if r.gate == "similarity":
            verdict.similarity = r.score
            verdict.similarity_verdict = r.verdict
        if not r.passed:
            verdict.failed.add(r.gate)
    if any(outcome_verb_problem(o) for o in item["outcomes"]):
        verdict.failed.add("outcomes")
    return verdict


def _assessed(tags: list[list[int]]) -> dict[str, Any]:
    """Every outcome an exercise is tagged with, where `LessonUnderTest` can carry them."""
    if "assessed" in LessonUnderTest.__dataclass_fields__:
        return {"assessed": tags}
    return {}


def _rates(verdicts: Sequence[Verdict], gates: Sequence[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    good = [v for v in verdicts if not v.bad]
    bad = [v for v in verdicts if v.bad]
    on_topic = [v for v in verdicts if v.item["kind"] == "on_topic"]
    out["false_alarm_any"] = _share(good, lambda v: bool(v.failed))
    out["false_alarm_no_length"] = _share(good, lambda v: bool(v.failed - {"length"}))
    out["on_topic_flagged_no_length"] = _share(on_topic, lambda v: bool(v.failed - {"length"}))
    out["caught"] = _share(bad, lambda v: bool(v.failed))
    for gate in gates:
        flagged = [v for v in verdicts if gate in v.failed]
        mine = [v for v in verdicts if v.item.get("expect") == gate]
        out[f"{gate}.precision"] = _share(flagged, lambda v: v.bad)
        out[f"{gate}.recall"] = _share(mine, lambda v, g=gate: g in v.failed)  # type: ignore[misc]
        out[f"{gate}.flags"] = float(len(flagged))
    return out


def _share(values: Sequence[Verdict], test: Any) -> float:
    return sum(1 for v in values if test(v)) / len(values) if values else float("nan")


def auc(positives: Sequence[float], negatives: Sequence[float]) -> float:
    """P(score of a random positive > that of a random negative), ties counting half."""
    if not positives or not negatives:
        return float("nan")
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    return float(wins / (len(positives) * len(negatives)))


def _similarity_auc(verdicts: Sequence[Verdict]) -> float:
    on = [v.similarity for v in verdicts if v.item["kind"] == "on_topic" and v.similarity is not None]
    rel = [v.similarity for v in verdicts if v.item["kind"] == "related" and v.similarity is not None]
    return auc(on, rel)


def _margin_auc(verdicts: Sequence[Verdict]) -> float:
    """The rival margin's separation of on-topic from related-but-wrong lessons."""
    on = [v.margin for v in verdicts if v.item["kind"] == "on_topic" and v.margin is not None]
    rel = [v.margin for v in verdicts if v.item["kind"] == "related" and v.margin is not None]
    return auc(on, rel)


def bootstrap(verdicts: Sequence[Verdict], gates: Sequence[str], reps: int) -> dict[str, tuple[float, float]]:
    rng = np.random.default_rng(SEED)
    n = len(verdicts)
    draws: dict[str, list[float]] = {}
    for _ in range(reps):
        sample = [verdicts[i] for i in rng.integers(0, n, n)]
        figures = {**_rates(sample, gates), "auc": _similarity_auc(sample), "margin_auc": _margin_auc(sample)}
        for key, value in figures.items():
            if not key.endswith(".flags"):
                draws.setdefault(key, []).append(value)
    return {k: (float(np.nanpercentile(v, 2.5)), float(np.nanpercentile(v, 97.5))) for k, v in draws.items()}


GATES = (
    "length",
    "similarity",
    "teaches",
    "ending",
    "answer_keys",
    "exercises",
    "exercise_outcomes",
    "safety",
    "redundancy",
    "outcomes",
)


async def run(
    models: Sequence[str],
    profiles: Sequence[str],
    reps: int,
    cache: Path,
    titled: bool | None = None,
    held_out: float | str | None = None,
    dtype: str = "auto",
) -> dict[str, Any]:
    data = items()
    report: dict[str, Any] = {"items": len(data), "dtype": dtype, "runs": []}
    rivals, titles = course_rivals(data), outcome_titles(data)
    for model in models:
        embedder = DiskCachedEmbedder(make_embedder(model, dtype=dtype), cache, cache_key(model, dtype))
        for profile in profiles:
            settings = policy(profile, model, titled)
            started = time.perf_counter()
            verdicts = [
                await judge(item, settings, embedder, rivals.get(item["id"]), titles) for item in data
            ]
            wall = time.perf_counter() - started
            rates = _rates(verdicts, GATES)
            rates["auc"] = _similarity_auc(verdicts)
            rates["margin_auc"] = _margin_auc(verdicts)
            report["runs"].append(
                {
                    "model": model,
                    "profile": profile,
                    "rates": rates,
                    "intervals": bootstrap(verdicts, GATES, reps),
                    "flags_per_good_lesson": {
                        v.item["id"]: sorted(v.failed) for v in verdicts if not v.bad and v.failed
                    },
                    "missed": [v.item["id"] for v in verdicts if v.bad and not v.failed],
                    "similarity": {
                        kind: _spread([v.similarity for v in verdicts if v.item["kind"] == kind])
                        for kind in ("on_topic", "related", "off_topic", "announce")
                    },
                    # Each similarity-labelled item's score: `courseforge calibrate` reads these rows.
                    "scores": [
                        {"id": v.item["id"], "score": v.similarity, "label": v.item["label"]}
                        for v in verdicts
                        if v.item.get("gate") == "similarity" and v.similarity is not None
                    ],
                    # The same rows with the rival margin as the score: `courseforge calibrate
                    # --max-false-alarms 0.05` on them gives `rival_margin` (its negative).
                    "margins": [
                        {"id": v.item["id"], "score": v.margin, "label": v.item["label"]}
                        for v in verdicts
                        if v.item.get("gate") == "similarity" and v.margin is not None
                    ],
                    "rival_margin_held_out": held_out_margin(verdicts),
                    # `courseforge calibrate --balanced` input: {"absolute": rows, "margin": rows}.
                    "calibration_rows": dict(
                        zip(("absolute", "margin"), calibration_rows(verdicts), strict=True)
                    ),
                    "titled": settings.gates.similarity[model].titled,
                    "to_judge": _to_judge(verdicts),
                    **(
                        {"held_out": await held_out_run(data, verdicts, settings, embedder, held_out, reps)}
                        if held_out is not None
                        else {}
                    ),
                    "embedded_texts": embedder.embedded,
                    "embedding_cpu_s": round(embedder.seconds, 2),
                    "wall_s": round(wall, 2),
                }
            )
    return report


def _to_judge(verdicts: Sequence[Verdict]) -> list[str]:
    """Real sections whose only flag (length aside) is a similarity score in the judge's band
    or a rival-borderline: generation asks the judge about them, and one it accepts still
    proceeds with a flag for a person (`gates.judge.flag_borderline`, seed 001) — so they count
    as flags in every figure; this list says which of the flags the judge could have settled."""
    return [
        v.item["id"]
        for v in verdicts
        if v.item["kind"] == "on_topic"
        and v.failed - {"length"} == {"similarity"}
        and v.similarity_verdict in ("fail", "borderline")
    ]


async def held_out_run(
    data: Sequence[dict[str, Any]],
    verdicts: Sequence[Verdict],
    settings: Settings,
    embedder: Embedder,
    budget: float | str,
    reps: int,
) -> dict[str, Any]:
    """Every item judged with similarity thresholds calibrated on the *other* sources' items
    (leave one source out), so no figure is measured on the items its thresholds were set on.
    Per held-out source, from the other two sources' similarity rows: with a number, `pass_at`
    and `severe_below` as `courseforge calibrate --max-false-alarms BUDGET` sets them on all
    rows, and `rival_margin` as the same command sets it on the margin rows (its negative);
    with "balanced", each criterion from the rows of the defect it is for, by `calibrate
    --balanced`: `pass_at`/`severe_below` on real sections against off-topic lessons (what an
    absolute mark can tell apart), `rival_margin` on real sections against related-but-wrong
    ones (`calibration_rows`)."""
    model = embedder.name
    base = settings.gates.similarity[model]
    rows = [v for v in verdicts if v.item.get("gate") == "similarity" and v.similarity is not None]
    rivals, titles = course_rivals(data), outcome_titles(data)
    out: list[Verdict] = []
    folds: dict[str, dict[str, float]] = {}
    for source in sorted({i["provenance"]["package"] for i in data}):
        train = [v for v in rows if v.item["provenance"]["package"] != source]
        if budget == "balanced":
            absolute, relative = calibration_rows(train)
            cal = derive_thresholds(absolute, balanced=True)
            margin = -derive_thresholds(relative, balanced=True).pass_at
        else:
            cal = derive_thresholds(
                [(float(v.similarity), not v.bad) for v in train], max_false_alarms=float(budget)
            )  # type: ignore[arg-type]
            margins = [(float(v.margin), not v.bad) for v in train if v.margin is not None]
            margin = -derive_thresholds(margins, max_false_alarms=float(budget)).pass_at
        folds[source] = {
            "pass_at": cal.pass_at,
            "severe_below": cal.severe_below,
            "rival_margin": round(margin, 4),
        }
        # model_copy: a calibrated margin may be negative (the lesson must beat its rivals).
        thresholds = base.model_copy(
            update={
                "pass_at": cal.pass_at,
                "severe_below": cal.severe_below,
                "rival_margin": margin,
                "pass_at_by_tier": {},
            }
        )
        gates = settings.gates.model_copy(
            update={"similarity": {**settings.gates.similarity, model: thresholds}}
        )
        fold = settings.model_copy(update={"gates": gates})
        for item in data:
            if item["provenance"]["package"] == source:
                out.append(await judge(item, fold, embedder, rivals.get(item["id"]), titles))
    rates = _rates(out, GATES)
    return {
        "budget": budget,
        "thresholds_by_held_out_source": folds,
        "rates": rates,
        "intervals": bootstrap(out, GATES, reps),
        "flags_per_good_lesson": {v.item["id"]: sorted(v.failed) for v in out if not v.bad and v.failed},
        "missed": [v.item["id"] for v in out if v.bad and not v.failed],
        "to_judge": _to_judge(out),
    }


def calibration_rows(
    verdicts: Sequence[Verdict],
) -> tuple[list[tuple[float, bool]], list[tuple[float, bool]]]:
    """(score, good) rows for the absolute mark — real sections against off-topic lessons —
    and (margin, good) rows for `rival_margin` — real sections against related-but-wrong ones."""
    absolute = [
        (float(v.similarity), not v.bad)
        for v in verdicts
        if v.item["kind"] in ("on_topic", "off_topic") and v.similarity is not None
    ]
    relative = [
        (float(v.margin), not v.bad)
        for v in verdicts
        if v.item["kind"] in ("on_topic", "related") and v.margin is not None
    ]
    return absolute, relative


def held_out_margin(verdicts: Sequence[Verdict], max_false_alarms: float = 0.05) -> dict[str, Any]:
    """The rival margin calibrated on two sources' good and bad similarity items and tested on
    the third's (leave one source out), so the figure is not measured on the items it was set
    on: per source the margin chosen, and pooled, the share of held-out real sections whose
    margin alone flags them and of held-out related/off-topic lessons it flags."""
    rows = [v for v in verdicts if v.item.get("gate") == "similarity" and v.margin is not None]
    folds: dict[str, Any] = {}
    flagged_good = flagged_bad = goods = bads = 0
    for source in sorted({v.item["provenance"]["package"] for v in rows}):
        train = [(float(v.margin), not v.bad) for v in rows if v.item["provenance"]["package"] != source]
        test = [v for v in rows if v.item["provenance"]["package"] == source]
        margin = -derive_thresholds(train, max_false_alarms=max_false_alarms).pass_at
        fails = [v for v in test if float(v.margin) < -margin]  # type: ignore[arg-type]
        folds[source] = round(margin, 3)
        flagged_good += sum(1 for v in fails if not v.bad)
        flagged_bad += sum(1 for v in fails if v.bad)
        goods += sum(1 for v in test if not v.bad)
        bads += sum(1 for v in test if v.bad)
    return {
        "margin_by_held_out_source": folds,
        "good_flagged": flagged_good / goods if goods else float("nan"),
        "bad_flagged": flagged_bad / bads if bads else float("nan"),
    }


def _spread(values: Sequence[float | None]) -> list[float]:
    xs = sorted(v for v in values if v is not None)
    if not xs:
        return []
    return [round(xs[0], 3), round(float(np.median(xs)), 3), round(xs[-1], 3)]


def print_report(report: dict[str, Any]) -> None:
    print(f"outside set: {report['items']} items, embedded in {report.get('dtype', 'auto')}")
    for run in report["runs"]:
        r, ci = run["rates"], run["intervals"]

        def cell(key: str, r: dict[str, float] = r, ci: dict[str, Any] = ci) -> str:
            lo, hi = ci.get(key, (float("nan"), float("nan")))
            return f"{r[key]:.3f} [{lo:.2f}, {hi:.2f}]"

        print(f"\n== {run['model']} / {run['profile']} policy ==")
        print(f"false alarms (good items, any gate):      {cell('false_alarm_any')}")
        print(f"false alarms (good items, length aside):  {cell('false_alarm_no_length')}")
        print(f"on-topic lessons flagged (length aside):  {cell('on_topic_flagged_no_length')}")
        print(f"planted defects caught (any gate):        {cell('caught')}")
        print(f"similarity AUC on-topic vs related:       {cell('auc')}")
        print(f"rival-margin AUC on-topic vs related:     {cell('margin_auc')}")
        print("similarity min/median/max: " + "; ".join(f"{k} {v}" for k, v in run["similarity"].items()))
        print(f"{'gate':<18} {'flags':>5}  {'precision [95% CI]':<22} {'recall [95% CI]':<22}")
        for gate in GATES:
            print(
                f"{gate:<18} {int(r[gate + '.flags']):>5}  {cell(gate + '.precision'):<22} {cell(gate + '.recall'):<22}"
            )
        print("good items flagged: " + "; ".join(f"{k} {v}" for k, v in run["flags_per_good_lesson"].items()))
        print("defects missed: " + ", ".join(run["missed"]))
        h = run["rival_margin_held_out"]
        print(
            "rival margin, set on two sources and tested on the third: "
            + ", ".join(f"{k} {v}" for k, v in h["margin_by_held_out_source"].items())
            + f"; held-out real sections flagged by it {h['good_flagged']:.3f}, related/off-topic {h['bad_flagged']:.3f}"
        )
        print(
            "real sections flagged only by the judge's band or a rival (the judge is asked; flagged either way): "
            + ", ".join(run["to_judge"])
        )
        if "held_out" in run:
            _print_held_out(run["held_out"])
        print(
            f"embedded {run['embedded_texts']} new texts in {run['embedding_cpu_s']} s CPU; run {run['wall_s']} s wall"
        )


def _print_held_out(h: dict[str, Any]) -> None:
    r, ci = h["rates"], h["intervals"]

    def cell(key: str) -> str:
        lo, hi = ci.get(key, (float("nan"), float("nan")))
        return f"{r[key]:.3f} [{lo:.2f}, {hi:.2f}]"

    print(f"-- held out: similarity thresholds calibrated on the other two sources ({h['budget']}) --")
    for source, t in h["thresholds_by_held_out_source"].items():
        print(f"   {source} scored with " + ", ".join(f"{k} {v}" for k, v in t.items()))
    print(f"   on-topic lessons flagged (length aside):  {cell('on_topic_flagged_no_length')}")
    print(f"   planted defects caught (any gate):        {cell('caught')}")
    print(
        f"   similarity precision / recall:            {cell('similarity.precision')} / {cell('similarity.recall')}"
    )
    print("   good items flagged: " + "; ".join(f"{k} {v}" for k, v in h["flags_per_good_lesson"].items()))
    print("   defects missed: " + ", ".join(h["missed"]))
    print("   flagged only by the judge's band or a rival: " + ", ".join(h["to_judge"]))


async def embedding_cpu(models: Sequence[str], chunks: int = 60, rounds: int = 2) -> dict[str, float]:
    """CPU seconds per text to embed the first `chunks` 120-word chunks of the set's real
    sections, per model (warmed, a cold cache each round, best of `rounds`)."""
    from courseforge.quality.gates import _chunks

    texts = [c for i in items() if i["kind"] == "on_topic" for c in _chunks(i["content"])][:chunks]
    out: dict[str, float] = {}
    for model in models:
        await make_embedder(model).warm()
        best = float("inf")
        for r in range(rounds):
            embedder = make_embedder(model)
            started = time.process_time()
            await embedder.embed([f"{t} ({r})" for t in texts])
            best = min(best, time.process_time() - started)
        out[model] = best / len(texts)
        print(f"{model}: {len(texts)} chunks, {1000 * out[model]:.1f} ms CPU per chunk (best of {rounds})")
    if len(out) > 1:
        first, *rest = list(out)
        for model in rest:
            print(f"{model} / {first}: x{out[model] / out[first]:.1f}")
    return out
