"""What an eval records: one `RunResult` per (input, config, repeat), the figures it is judged
on (`FIGURES`), and how one run's figures are read off its course and report.

`eval.json` (docs/evals.md) is `{"schema": "courseforge.eval/1", ..., "runs": [RunResult...],
"configs": {...}, "inputs": {...}, "differences": [...]}`; the dashboard reads it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..domain import Course, Report

__all__ = ["FIGURES", "SCHEMA", "Figure", "LessonScore", "RunResult", "run_result"]

SCHEMA = "courseforge.eval/1"


@dataclass(frozen=True, slots=True)
class Figure:
    name: str
    label: str
    better: Literal["lower", "higher"]
    #: relative: a tolerance is a fraction of the baseline (cost, time); absolute: in the
    #: figure's own unit (rates 0-1, scores 1-5).
    tolerance_kind: Literal["relative", "absolute"]
    #: Allowed worsening before a regression is reported, unless the config or a flag says;
    #: None: not gated unless a tolerance is given (wall time depends on the machine's load,
    #: which a later eval on the same code does not share).
    default_tolerance: float | None


#: The per-run figures compared between configs and against a baseline, in report order.
FIGURES: tuple[Figure, ...] = (
    Figure("cost_per_course", "cost per course (USD)", "lower", "relative", 0.05),
    Figure("failure_rate", "failed courses", "lower", "absolute", 0.02),
    Figure("wall_s", "wall time (s)", "lower", "relative", None),
    Figure("wall_over_critical", "wall / critical path", "lower", "relative", None),
    Figure("first_attempt_pass_rate", "first-attempt pass rate", "higher", "absolute", 0.02),
    Figure("escalation_rate", "escalation rate", "lower", "absolute", 0.05),
    Figure("review_rate", "human-review rate", "lower", "absolute", 0.02),
    Figure("similarity_mean", "similarity mean", "higher", "absolute", 0.01),
    Figure("judge_composite", "reference-judge composite (1-5)", "higher", "absolute", 0.1),
)
FIGURE_BY_NAME = {f.name: f for f in FIGURES}


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LessonScore(_M):
    lesson_id: str
    #: The similarity gate's score of the final text (the config's own embedder).
    similarity: float | None = None
    #: The reference judge's composite (0.6 correctness + 0.2 comprehensiveness + 0.2
    #: readability, 1-5); None when the judge did not answer.
    composite: float | None = None
    final_tier: str = ""
    status: str = ""


class RunResult(_M):
    input: str
    config: str
    repeat: int
    job_id: str
    #: approved | needs_review | failed
    status: str
    failure_reason: str = ""
    lessons: int = 0
    cost_per_course: float = 0.0
    #: 1.0 when the course failed, else 0.0 (its mean over runs is the failure rate).
    failure_rate: float = 0.0
    wall_s: float = 0.0
    critical_path_s: float = 0.0
    wall_over_critical: float | None = None
    first_attempt_pass_rate: float | None = None
    escalation_rate: float | None = None
    review_rate: float | None = None
    #: Same-tier retry decisions per lesson (the seeds' retry rate; not a compared figure).
    retry_rate: float | None = None
    similarity_mean: float | None = None
    judge_composite: float | None = None
    judge_model: str = ""
    #: What the reference judge cost (not part of the course's cost).
    judge_cost_usd: float = 0.0
    cost_by_phase: dict[str, float] = Field(default_factory=dict)
    cost_by_model: dict[str, float] = Field(default_factory=dict)
    calls_by_model: dict[str, int] = Field(default_factory=dict)
    calls_by_tier: dict[str, int] = Field(default_factory=dict)
    #: Lessons by the tier of their final text.
    lessons_by_tier: dict[str, int] = Field(default_factory=dict)
    #: Gate -> lessons whose final verdict failed it.
    gate_failures: dict[str, int] = Field(default_factory=dict)
    #: Calls answered from the store instead of the provider, summed over the job's runs' last.
    replayed_calls: int = 0
    lesson_scores: list[LessonScore] = Field(default_factory=list)

    def figure(self, name: str) -> float | None:
        value = getattr(self, name)
        return None if value is None else float(value)


def run_result(
    *,
    input_name: str,
    config: str,
    repeat: int,
    job_id: str,
    course: Course | None,
    report: Report,
    composites: Mapping[str, float] | None = None,
    judge_model: str = "",
    judge_cost_usd: float = 0.0,
) -> RunResult:
    """One run's figures, read off its report (docs/report.md defines each) and the reference
    judge's composites (lesson id -> score)."""
    q = report.quality
    composites = composites or {}
    similarity = {lg.lesson_id: g.score for lg in report.lessons for g in lg.gates if g.gate == "similarity"}
    scores = [
        LessonScore(
            lesson_id=lg.lesson_id,
            similarity=similarity.get(lg.lesson_id),
            composite=composites.get(lg.lesson_id),
            final_tier=lg.final_tier,
            status=lg.status,
        )
        for lg in report.lessons
    ]
    judged = [s.composite for s in scores if s.composite is not None]
    critical = report.critical_path_s
    return RunResult(
        input=input_name,
        config=config,
        repeat=repeat,
        job_id=job_id,
        status=report.status,
        failure_reason=report.failure_reason,
        lessons=len(course.lessons()) if course else 0,
        cost_per_course=float(report.total_cost_usd),
        failure_rate=1.0 if course is None else 0.0,
        wall_s=report.wall_time_s,
        critical_path_s=critical,
        wall_over_critical=round(report.wall_time_s / critical, 4) if critical > 0 else None,
        first_attempt_pass_rate=q.first_attempt_pass_rate if q else None,
        escalation_rate=q.escalation_rate if q else None,
        review_rate=q.human_review_rate if q else None,
        retry_rate=(
            round(sum(1 for d in report.decisions if d.action == "retry") / len(report.lessons), 4)
            if report.lessons
            else None
        ),
        similarity_mean=q.similarity_mean if q else None,
        judge_composite=round(sum(judged) / len(judged), 4) if judged else None,
        judge_model=judge_model if judged else "",
        judge_cost_usd=judge_cost_usd,
        cost_by_phase={k: float(v.cost_usd) for k, v in report.by_phase.items()},
        cost_by_model={k: float(v.cost_usd) for k, v in report.by_model.items()},
        calls_by_model={k: v.calls for k, v in report.by_model.items()},
        calls_by_tier=dict(sorted(Counter(c.tier for c in report.calls).items())),
        lessons_by_tier=dict(
            sorted(Counter(lg.final_tier for lg in report.lessons if lg.final_tier).items())
        ),
        gate_failures=dict(q.gate_failures) if q else {},
        replayed_calls=int(report.summary.get("replayed_calls", 0)),
        lesson_scores=scores,
    )
