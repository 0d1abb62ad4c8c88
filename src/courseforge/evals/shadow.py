"""Shadow runs in the service: after a job completes, a share of jobs (`service.shadow.rate`,
chosen by a hash of the job id, so a restarted service chooses the same) is generated again
under `service.shadow.config`, and the pair — the real run as config `live`, the shadow as
config `shadow`, the job id as the input — is appended to `<dir>/runs.jsonl`; `eval.json` and
`index.html` there are rebuilt from every pair so far (the eval format, docs/evals.md).

What a shadow never does: change its job (it writes nothing of the job's: its calls are
checkpointed under `shadow:<job id>`, its result goes only to the shadow directory), delay its
job (it starts after the job is saved), or spend past the job's budget cap (its ledger's cap is
the smaller of the shadow config's and the live one's, or the input's own `budget_usd`). A
shadow cut off by a restart is dropped; its calls stay checkpointed. It has its own engine: its
providers' rate limits and breakers are not the live engine's.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..config import Settings
from ..domain import AnalysisResult
from ..engine import Checkpoints, Engine, GenerationResult
from ..files import write_text_atomic as write_atomic
from ..storage import Job, Store
from .configs import EvalConfig, load_eval_config
from .html import render_html
from .model import RunResult, run_result
from .summary import build_eval

__all__ = ["ShadowRunner", "chosen"]

log = logging.getLogger("courseforge.shadow")

LIVE, SHADOW = "live", "shadow"


def chosen(job_id: str, rate: float) -> bool:
    """Is `job_id` in the shadowed share? Stable across processes and restarts."""
    return int(hashlib.sha256(job_id.encode()).hexdigest()[:8], 16) / 0x1_0000_0000 < rate


def capped(shadow: Settings, live: Settings) -> Settings:
    """The shadow's settings with its per-course cap no higher than the live config's."""
    cap = min(shadow.budget.per_course_usd, live.budget.per_course_usd)
    return shadow.model_copy(update={"budget": shadow.budget.model_copy(update={"per_course_usd": cap})})


class ShadowRunner:
    def __init__(
        self,
        live: Settings,
        store: Store,
        *,
        env: Mapping[str, str] | None = None,
        engine: Engine | None = None,
        config: EvalConfig | None = None,
    ) -> None:
        shadow = live.service.shadow
        if shadow is None:
            raise ValueError("service.shadow is not configured")
        self.live = live
        self.store = store
        self.rate = shadow.rate
        self.dir = Path(shadow.dir).expanduser()
        self.config = config or load_eval_config(shadow.config, env, name=SHADOW)
        self.settings = capped(self.config.settings, live)
        self._env = env
        self._engine = engine
        self._slots = asyncio.Semaphore(shadow.max_concurrent)
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        #: Pairs written by this process (for metrics and tests).
        self.written = 0

    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = Engine(self.settings, env=os.environ if self._env is None else self._env)
        return self._engine

    def offer(self, job: Job, analysis: AnalysisResult, result: GenerationResult) -> bool:
        """Called when `job` has been run and saved; starts its shadow if the job is chosen and
        produced a course. Returns whether a shadow started."""
        if result.course is None or not chosen(job.id, self.rate):
            return False
        task = asyncio.create_task(self._shadow(job, analysis, result), name=f"shadow:{job.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def wait(self) -> None:
        """Until every started shadow has finished (tests, an orderly shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._engine is not None:
            await self._engine.aclose()

    async def _shadow(self, job: Job, analysis: AnalysisResult, live: GenerationResult) -> None:
        shadow_id = f"shadow:{job.id}"
        try:
            async with self._slots:
                checkpoints = await Checkpoints.load(self.store, shadow_id)
                result = await self.engine().generate(analysis, checkpoints=checkpoints)
            pair = [
                run_result(
                    input_name=job.id,
                    config=LIVE,
                    repeat=1,
                    job_id=job.id,
                    course=live.course,
                    report=live.report,
                ),
                run_result(
                    input_name=job.id,
                    config=SHADOW,
                    repeat=1,
                    job_id=shadow_id,
                    course=result.course,
                    report=result.report,
                ),
            ]
            await self._append(pair)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a shadow never fails the service
            log.warning("shadow of job %s failed: %s: %s", job.id, type(exc).__name__, exc)

    async def _append(self, pair: list[RunResult]) -> None:
        async with self._lock:
            self.dir.mkdir(parents=True, exist_ok=True)
            lines = "".join(json.dumps(r.model_dump(mode="json"), ensure_ascii=False) + "\n" for r in pair)
            with (self.dir / "runs.jsonl").open("a", encoding="utf-8") as fh:
                fh.write(lines)
            self.written += 1
            doc = self.document()
            write_atomic(self.dir / "eval.json", json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
            write_atomic(self.dir / "index.html", render_html(doc))

    def document(self) -> dict[str, Any]:
        """The eval document of every pair in `runs.jsonl` (a torn last line is skipped)."""
        runs: list[RunResult] = []
        path = self.dir / "runs.jsonl"
        with contextlib.suppress(FileNotFoundError), path.open(encoding="utf-8") as fh:
            for line in fh:
                with contextlib.suppress(ValueError):
                    runs.append(RunResult.model_validate_json(line))
        configs = [
            {"name": LIVE, "source": "the service's config", "digest": ""},
            {"name": SHADOW, "source": self.config.source, "digest": self.config.digest},
        ]
        meta = {
            "repeat": 1,
            "reference_judge": None,
            "provider_note": f"shadow runs of {self.rate:.0%} of the service's jobs",
            "input_names": list(dict.fromkeys(r.input for r in runs)),
        }
        return build_eval(runs, configs, meta=meta)
