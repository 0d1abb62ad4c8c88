"""Running an eval: every (input, config, repeat) as a durable job of the store
(`jobs.generate_durably`), a bounded number at once, then the reference judge on each course.

Job ids are `eval-<input>-<input digest>-<config>-<config digest>-r<repeat>`: running the same
eval again resumes the unfinished jobs (their finished calls replay from the store's
checkpoints, never paid twice) and reuses the completed ones; an edited input or a changed
config has another digest, so it never reuses another's results. The reference judge's calls are checkpointed under
`<job id>:judge` the same way.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from ..config import Settings
from ..domain import AnalysisResult, Course, Lesson
from ..engine import Checkpoints, CourseCalls, Engine, Runtime
from ..errors import UserError
from ..jobs import generate_durably, input_digest
from ..ledger import Ledger
from ..pipeline.assemble import draft_of
from ..pipeline.judging import judge_lesson
from ..pipeline.state import PipelineContext
from ..quality.judge import composite
from ..storage import Store
from .configs import EvalConfig
from .model import RunResult, run_result

__all__ = ["EvalInput", "ReferenceJudge", "RunSpec", "job_id_for", "plan", "run_matrix"]

#: The tier name the reference judge's model is put on (beside the config's own tiers).
REFERENCE_TIER = "reference"
Say = Callable[[str], object]


@dataclass(frozen=True, slots=True)
class EvalInput:
    name: str
    analysis: AnalysisResult

    @property
    def digest(self) -> str:
        """Of the input as a job stores it: an edited file under the same name is a new job."""
        return input_digest(self.analysis.model_dump(mode="json", exclude_unset=True))[:8]


@dataclass(frozen=True, slots=True)
class RunSpec:
    input: EvalInput
    config: EvalConfig
    repeat: int

    @property
    def job_id(self) -> str:
        return job_id_for(self.input, self.config, self.repeat)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:60] or "x"


def job_id_for(item: EvalInput, config: EvalConfig, repeat: int) -> str:
    return f"eval-{_slug(item.name)}-{item.digest}-{_slug(config.name)}-{config.digest}-r{repeat}"


def plan(inputs: Sequence[EvalInput], configs: Sequence[EvalConfig], repeat: int) -> list[RunSpec]:
    """Every run, repeat-major then input then config: an eval cut short has every config's
    figures on the same inputs."""
    return [RunSpec(i, c, r) for r in range(1, repeat + 1) for i in inputs for c in configs]


class ReferenceJudge:
    """One judge model for every config's lessons, so their scores compare: `model_id` (a model
    of `settings`) put on its own tier, asked through `settings`'s judge settings."""

    def __init__(self, model_id: str, settings: Settings, runtime: Runtime, store: Store) -> None:
        tiers = {**settings.routing.tiers, REFERENCE_TIER: model_id}
        routing = settings.routing.model_copy(update={"tiers": tiers})
        self.settings = settings.model_copy(update={"routing": routing})
        self.model_id = model_id
        self.runtime = runtime
        self.store = store

    @classmethod
    def pick(cls, model_id: str | None, configs: Sequence[EvalConfig]) -> tuple[str, EvalConfig]:
        """The judge's model (default: the first config's premium tier) and the config that
        defines it; a model no config defines is a UserError naming `--reference-judge`."""
        first = configs[0].settings
        if model_id is None:
            tiers = first.routing.tiers
            return tiers.get("premium") or tiers[first.routing.ladder[-1]], configs[0]
        for config in configs:
            if model_id in config.settings.models:
                return model_id, config
        known = sorted({m for c in configs for m in c.settings.models})
        raise UserError(
            "unknown reference judge",
            [("--reference-judge", f"{model_id!r} is not a model of any config; models: {', '.join(known)}")],
        )

    async def score(self, course: Course, job_id: str) -> tuple[dict[str, float], Decimal]:
        """Lesson id -> composite, and what judging cost (replayed verdicts count: the figure
        is the same whether the eval ran at once or was resumed)."""
        cap = Decimal(str(self.settings.budget.per_course_usd))
        ledger = Ledger(cap)
        checkpoints = await Checkpoints.load(self.store, f"{job_id}:judge")
        effects = CourseCalls(self.settings, self.runtime, ledger, checkpoints=checkpoints)
        ctx = PipelineContext(self.settings, effects, cap)
        texts = {o.id: o.text for o in course.metadata.learning_outcomes}
        number = {o.id: i + 1 for i, o in enumerate(course.metadata.learning_outcomes)}

        async def one(lesson: Lesson) -> tuple[str, float | None]:
            verdict = await judge_lesson(
                ctx,
                phase="eval_judge",
                lesson_id=lesson.id,
                lesson=draft_of(lesson, number),
                outcomes={o: texts[o] for o in lesson.outcome_ids if o in texts},
                tier=REFERENCE_TIER,
            )
            return lesson.id, None if verdict is None else round(composite(verdict), 4)

        found = await asyncio.gather(*(one(lesson) for lesson in course.lessons()))
        return {k: v for k, v in found if v is not None}, ledger.spent


async def run_matrix(
    specs: Sequence[RunSpec],
    store: Store,
    engines: Mapping[str, Engine],
    *,
    judge: ReferenceJudge | None,
    concurrency: int = 4,
    say: Say = print,
) -> list[RunResult]:
    """Run (or resume, or reuse) every spec, `concurrency` at once; results in `specs` order.
    `engines`: config name -> its engine (shared by that config's jobs)."""
    slots = asyncio.Semaphore(max(1, concurrency))
    total = len(specs)
    done = 0

    async def one(spec: RunSpec) -> RunResult:
        nonlocal done
        async with slots:
            prefix = f"[{spec.config.name} · {spec.input.name} · r{spec.repeat}]"
            course, report = await generate_durably(
                spec.config.settings,
                spec.input.analysis,
                job_id=spec.job_id,
                say=lambda line: say(f"{prefix} {line}"),
                engine=engines[spec.config.name],
                store=store,
            )
            composites: dict[str, float] = {}
            judge_cost = Decimal(0)
            if judge is not None and course is not None:
                composites, judge_cost = await judge.score(course, spec.job_id)
            done += 1
            say(f"{prefix} {report.status}, ${float(report.total_cost_usd):.4f} ({done}/{total})")
            return run_result(
                input_name=spec.input.name,
                config=spec.config.name,
                repeat=spec.repeat,
                job_id=spec.job_id,
                course=course,
                report=report,
                composites=composites,
                judge_model=judge.model_id if judge else "",
                judge_cost_usd=float(judge_cost),
            )

    return list(await asyncio.gather(*(one(s) for s in specs)))
