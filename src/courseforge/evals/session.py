"""One eval from start to written report: providers (or the simulator), the store, an engine
per config, the matrix of durable jobs, the reference judge, the document and its files."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..engine import Engine
from ..files import write_text_atomic as write_atomic
from ..storage import masked_url, open_store
from .configs import EvalConfig
from .html import render_html
from .model import RunResult
from .runs import EvalInput, ReferenceJudge, plan, run_matrix
from .summary import build_eval

__all__ = ["EvalPlan", "SimOptions", "on_simulator", "run_eval", "write_outputs"]

Say = Callable[[str], object]


@dataclass(frozen=True, slots=True)
class SimOptions:
    """Run every OpenAI-compatible provider of every config against an in-process simulator."""

    profile: str = "realistic"
    seed: int = 0
    time_scale: float = 0.01


@dataclass(frozen=True, slots=True)
class EvalPlan:
    inputs: Sequence[EvalInput]
    configs: Sequence[EvalConfig]
    out_dir: Path
    repeat: int = 1
    #: A model id of one of the configs; None: the first config's premium model; "" no judge.
    reference_judge: str | None = None
    #: Default: `sqlite:///<out_dir>/store.db` (the eval's jobs and checkpoints).
    store_url: str | None = None
    concurrency: int = 4
    sim: SimOptions | None = None
    #: Seed of the bootstrap resamples.
    seed: int = 0


def on_simulator(config: EvalConfig, base_url: str) -> EvalConfig:
    """`config` with every OpenAI-compatible provider pointed at `base_url` (its digest kept:
    where calls go is not part of a job's identity)."""
    s = config.settings
    providers = {
        name: p.model_copy(update={"base_url": base_url}) if p.kind == "openai" else p
        for name, p in s.providers.items()
    }
    return dataclasses.replace(config, settings=s.model_copy(update={"providers": providers}))


def _sim_env(configs: Sequence[EvalConfig], env: Mapping[str, str]) -> dict[str, str]:
    """The simulator needs no key; each provider's key variable gets a placeholder if unset."""
    out = dict(env)
    for c in configs:
        for p in c.settings.providers.values():
            if p.api_key_env and not out.get(p.api_key_env):
                out[p.api_key_env] = "simulator"
    return out


@contextlib.asynccontextmanager
async def _providers(
    plan_: EvalPlan, say: Say
) -> AsyncIterator[tuple[list[EvalConfig], dict[str, str], str]]:
    """The configs as they will run, their environment, and a note on where calls go."""
    if plan_.sim is None:
        yield list(plan_.configs), dict(os.environ), "configured providers"
        return
    from ..sim import SimServer, load_profile

    profile = load_profile(plan_.sim.profile)
    async with SimServer(profile, seed=plan_.sim.seed, time_scale=plan_.sim.time_scale) as server:
        note = f"simulator {profile.name} (seed {plan_.sim.seed}, time scale {plan_.sim.time_scale:g})"
        say(f"{note} on {server.base_url}")
        configs = [on_simulator(c, server.base_url) for c in plan_.configs]
        yield configs, _sim_env(configs, os.environ), note


async def run_eval(plan_: EvalPlan, *, say: Say = print) -> tuple[dict[str, Any], list[RunResult]]:
    """Run (or resume) the eval; returns the eval document and its runs (nothing written)."""
    url = plan_.store_url or f"sqlite:///{(plan_.out_dir / 'store.db').resolve()}"
    plan_.out_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(url)
    say(f"store: {masked_url(url)}")
    engines: dict[str, Engine] = {}
    try:
        await store.init()
        async with _providers(plan_, say) as (configs, env, note):
            engines = {c.name: Engine(c.settings, env=env) for c in configs}
            judge = None
            if plan_.reference_judge != "":
                model_id, owner = ReferenceJudge.pick(plan_.reference_judge, configs)
                judge = ReferenceJudge(model_id, owner.settings, engines[owner.name].runtime(), store)
                say(f"reference judge: {model_id} (from config {owner.name})")
            specs = plan(plan_.inputs, configs, plan_.repeat)
            say(f"{len(specs)} runs: {len(plan_.inputs)} inputs x {len(configs)} configs x {plan_.repeat}")
            runs = await run_matrix(
                specs, store, engines, judge=judge, concurrency=plan_.concurrency, say=say
            )
    finally:
        for engine in engines.values():
            await engine.aclose()
        await store.close()
    meta = {
        "created_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "repeat": plan_.repeat,
        "reference_judge": judge.model_id if judge else None,
        "provider_note": note,
        "bootstrap_seed": plan_.seed,
        "input_names": [i.name for i in plan_.inputs],
    }
    described = [{"name": c.name, "source": c.source, "digest": c.digest} for c in plan_.configs]
    return build_eval(runs, described, meta=meta, seed=plan_.seed), runs


def write_outputs(out_dir: Path, doc: Mapping[str, Any]) -> tuple[Path, Path]:
    """`eval.json` and `index.html` in `out_dir`, each written atomically."""
    data, page = out_dir / "eval.json", out_dir / "index.html"
    write_atomic(data, json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    write_atomic(page, render_html(doc))
    return data, page
