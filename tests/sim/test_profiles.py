"""Simulator profiles are data: bundled ones load, user files load, bad ones are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from courseforge.errors import ConfigError
from courseforge.sim import BUNDLED_SIM_PROFILES, load_profile


@pytest.mark.parametrize("name", BUNDLED_SIM_PROFILES)
def test_bundled_profiles_load(name: str) -> None:
    profile = load_profile(name)
    assert profile.name == name


def test_chaos_has_the_issue_rates_on_every_seed_model() -> None:
    chaos = load_profile("chaos")
    for model in ("openai/gpt-oss-20b", "openai/gpt-oss-120b", "qwen/qwen3-max", "google/gemini-2.5-flash"):
        f = chaos.for_model(model).faults
        assert (f.rate_limited, f.server_error, f.timeout, f.malformed, f.empty) == (
            0.10,
            0.10,
            0.05,
            0.05,
            0.02,
        )


def test_realistic_cites_its_latency_sources() -> None:
    realistic = load_profile("realistic")
    for model in realistic.models:
        assert realistic.for_model(model).source


def test_user_profile_overrides_merge_fault_rates(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(
        "name: mine\ndefaults: {ttft_ms: 10, faults: {rate_limited: 0.2}}\n"
        "models: {x: {faults: {empty: 0.1}, rpm: 30}}\n"
    )
    profile = load_profile(path)
    x = profile.for_model("x")
    assert (x.faults.rate_limited, x.faults.empty, x.rpm, x.ttft_ms) == (0.2, 0.1, 30, 10)
    assert profile.for_model("other").faults.empty == 0.0


def test_bad_profiles_name_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("defaults: {faults: {rate_limited: 0.7, server_error: 0.7}}\n")
    with pytest.raises(ConfigError) as caught:
        load_profile(path)
    assert "sum" in str(caught.value)
    with pytest.raises(ConfigError):
        load_profile(tmp_path / "missing.yaml")
