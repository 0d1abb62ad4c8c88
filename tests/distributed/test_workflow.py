"""The workflow's runtime has the in-process runner's chains (`engine.model_chains`) and the
configured breaker cooldown: no Temporal server needed to build it."""

from __future__ import annotations

from courseforge.config import Settings
from courseforge.distributed.workflow import ActivityOptions, _Counters, temporal_runtime
from courseforge.engine.stacks import chain_ids
from engine_helpers import LARGE_CHAIN, chained_config


def test_temporal_runtime_tries_what_the_in_process_chain_tries() -> None:
    settings = Settings.model_validate(chained_config(breakers={"cooldown_s": 7.5}))
    runtime = temporal_runtime(settings, ActivityOptions(), _Counters())
    chains = {m: [x.model_id for x in chain] for m, chain in runtime.chains.items()}  # type: ignore[attr-defined]
    assert chains == chain_ids(settings)
    assert chains["large"] == LARGE_CHAIN
    assert runtime.open_wait_s == 7.5
