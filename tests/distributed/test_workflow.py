"""The workflow's runtime has the in-process runner's chains (`engine.model_chains`) and the
configured breaker cooldown: no Temporal server needed to build it."""

from __future__ import annotations

from courseforge.config import Settings
from courseforge.distributed.workflow import ActivityOptions, _Counters, temporal_runtime
from courseforge.engine.stacks import chain_ids
from engine_helpers import loopback_config


def test_temporal_runtime_tries_what_the_in_process_chain_tries() -> None:
    config = loopback_config("http://127.0.0.1:1/v1")
    config["providers"]["backup"] = {
        "kind": "openai",
        "base_url": "http://127.0.0.1:2/v1",
        "api_key_env": None,
    }
    config["models"]["large"]["second_provider"] = {"provider": "backup"}
    config["models"]["large"]["fallbacks"] = ["medium", "medium"]
    config["breakers"] = {"cooldown_s": 7.5}
    settings = Settings.model_validate(config)
    runtime = temporal_runtime(settings, ActivityOptions(), _Counters())
    chains = {m: [x.model_id for x in chain] for m, chain in runtime.chains.items()}  # type: ignore[attr-defined]
    assert chains == chain_ids(settings)
    assert chains["large"] == ["large", "large@second", "medium"]
    assert runtime.open_wait_s == 7.5
