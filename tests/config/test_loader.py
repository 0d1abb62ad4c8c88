"""Which config is chosen, how bad configs are reported, and that secrets never leak."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, get_args

import pytest

from courseforge.config import BUNDLED_PROFILES, load_config, masked
from courseforge.config.loader import settings_from, yaml_mapping
from courseforge.domain.tasks import TaskKind
from courseforge.errors import ConfigError


def test_no_key_selects_offline_profile_and_says_so() -> None:
    loaded = load_config(env={})
    assert loaded.settings.profile == "offline"
    assert loaded.source == "bundled:offline"
    assert "OPENROUTER_API_KEY is not set" in loaded.reason
    kinds = {p.kind for p in loaded.settings.providers.values()}
    assert kinds == {"local"}


def test_key_selects_hosted_profile_with_seed_models_and_prices() -> None:
    loaded = load_config(env={"OPENROUTER_API_KEY": "test-key-not-a-secret"})
    s = loaded.settings
    assert s.profile == "hosted"
    assert s.routing.tiers == {
        "cheap": "gpt-oss-20b",
        "mid": "gpt-oss-120b",
        "premium": "qwen3-max",
        "long_context": "gemini-2.5-flash",
    }
    prices = {m: (str(v.price_in_per_m), str(v.price_out_per_m)) for m, v in s.models.items()}
    assert prices == {
        "gpt-oss-20b": ("0.03", "0.13"),
        "gpt-oss-120b": ("0.03", "0.17"),
        "qwen3-max": ("0.78", "3.90"),
        "gemini-2.5-flash": ("0.30", "2.50"),
    }
    assert s.providers["openrouter"].base_url == "https://openrouter.ai/api/v1"


def test_openrouter_base_url_repoints_the_hosted_provider() -> None:
    env = {"OPENROUTER_API_KEY": "k", "OPENROUTER_BASE_URL": "http://127.0.0.1:9999/v1"}
    assert load_config(env=env).settings.providers["openrouter"].base_url == "http://127.0.0.1:9999/v1"


def test_explicit_config_beats_env_and_profiles_load_by_name(tmp_path: Path) -> None:
    for name in BUNDLED_PROFILES:
        assert load_config(name, env={}).settings.profile == name
    env = {"COURSEFORGE_CONFIG": "offline", "OPENROUTER_API_KEY": "k"}
    assert load_config(env=env).settings.profile == "offline"
    assert load_config("hosted", env=env).settings.profile == "hosted"


def test_invalid_config_names_every_bad_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "providers: {p: {kind: openai, base_url: x, bogus: 1}}\n"
        "models: {m: {provider: nope, name: n, price_in_per_m: -1}}\n"
        "routing: {tiers: {cheap: m}, ladder: [cheap, premium]}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(bad, env={})
    paths = [p for p, _ in info.value.problems]
    assert "providers.p.bogus" in paths
    assert "models.m.price_in_per_m" in paths
    assert any(p.startswith("routing") for p in paths)


def test_missing_and_unparseable_config_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.yaml", env={})
    broken = tmp_path / "broken.yaml"
    broken.write_text("providers: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken, env={})


def test_masked_config_never_contains_the_key() -> None:
    key = "test-provider-key-0123456789abcdef0123456789abcdef"
    settings = load_config(env={"OPENROUTER_API_KEY": key}).settings
    shown = masked(settings, env={"OPENROUTER_API_KEY": key})
    assert key not in repr(shown)
    assert shown["providers"]["openrouter"]["api_key"].startswith("test")
    unset = masked(settings, env={})
    assert unset["providers"]["openrouter"]["api_key"] == "(unset: $OPENROUTER_API_KEY)"


@pytest.mark.parametrize(
    ("routing", "field"),
    [
        ({"sorted": "price"}, "provider_routing.sorted"),
        ({"data_collection": "never"}, "provider_routing.data_collection"),
        ({"quantizations": ["fp9"]}, "provider_routing.quantizations"),
        ({"max_price": {"prompt": "1", "tokens": 2}}, "provider_routing.max_price"),
        ({"zdr": "yes"}, "provider_routing.zdr"),
    ],
)
def test_provider_routing_takes_only_openrouters_documented_fields(
    routing: dict[str, object], field: str
) -> None:
    raw = hosted_raw()
    raw["models"]["gpt-oss-20b"]["provider_routing"] = routing
    with pytest.raises(ConfigError) as info:
        settings_from(raw, "test.yaml", {"OPENROUTER_API_KEY": "k"})
    assert field in str(info.value)


def test_documented_provider_routing_is_accepted() -> None:
    raw = hosted_raw()
    routing = {
        "sort": "throughput",
        "max_price": {"prompt": 1, "completion": "2"},
        "quantizations": ["fp8", "bf16"],
        "only": ["deepinfra"],
        "ignore": ["x"],
        "data_collection": "deny",
        "zdr": True,
    }
    raw["models"]["gpt-oss-20b"]["provider_routing"] = routing
    settings = settings_from(raw, "test.yaml", {"OPENROUTER_API_KEY": "k"})
    assert settings.models["gpt-oss-20b"].provider_routing == routing


def hosted_raw() -> dict[str, Any]:
    text = resources.files("courseforge.config").joinpath("profiles/hosted.yaml").read_text("utf-8")
    return yaml_mapping(text, "hosted.yaml")


def test_reasoning_effort_takes_every_task_kind_and_names_an_unknown_key() -> None:
    """`reasoning.effort`'s keys come from `TaskKind`: a kind added there (exercises and
    lesson_group were missing from a hand-kept copy) can be given its own effort at once."""
    raw = hosted_raw()
    model = next(name for name, m in raw["models"].items() if "reasoning" in m)
    kinds = get_args(TaskKind)
    assert {"exercises", "lesson_group"} <= set(kinds)
    raw["models"][model]["reasoning"]["effort"] = dict.fromkeys(kinds, "high")
    settings = settings_from(raw, "test.yaml", {"OPENROUTER_API_KEY": "k"})
    reasoning = settings.models[model].reasoning
    assert reasoning is not None and reasoning.effort == dict.fromkeys(kinds, "high")

    raw["models"][model]["reasoning"]["effort"] = {"lesson": "low", "exercise": "low"}
    with pytest.raises(ConfigError) as info:
        settings_from(raw, "test.yaml", {"OPENROUTER_API_KEY": "k"})
    assert [p for p, _ in info.value.problems] == [f"models.{model}.reasoning"]
    assert "effort: exercise is neither a task kind nor a phase" in str(info.value)
    assert "lesson_group" in str(info.value)  # the keys it takes are listed
