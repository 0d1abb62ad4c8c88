"""Eval configs: `extends:` merges onto a profile or a file, `eval.tolerances` is read apart,
the digest names what the config asks (not where its calls go), and mistakes name the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from courseforge.errors import ConfigError
from courseforge.evals import deep_merge, load_eval_config

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "evals" / "configs"


def test_deep_merge_merges_mappings_and_replaces_the_rest() -> None:
    base = {"a": {"x": 1, "y": [1, 2]}, "b": 1}
    assert deep_merge(base, {"a": {"y": [3]}, "c": 2}) == {"a": {"x": 1, "y": [3]}, "b": 1, "c": 2}
    assert base == {"a": {"x": 1, "y": [1, 2]}, "b": 1}  # not mutated


def test_bundled_eval_configs_load_and_differ_where_they_say() -> None:
    hosted = load_eval_config(str(CONFIGS / "hosted.yaml"), env={})
    premium = load_eval_config(str(CONFIGS / "always-premium.yaml"), env={})
    worse = load_eval_config(str(CONFIGS / "worse.yaml"), env={})
    assert hosted.name == "hosted" and hosted.settings.gates.embedding_model == "hashing"
    assert set(premium.settings.routing.tiers[t] for t in ("cheap", "mid", "premium")) == {"qwen3-max"}
    assert premium.settings.gates.embedding_model == "hashing"  # inherited through hosted.yaml
    assert worse.settings.gates.lesson_max_words == 150
    assert hosted.tolerances["cost_per_course"] == pytest.approx(0.05)
    assert premium.tolerances == hosted.tolerances  # the eval block is inherited too
    assert len({hosted.digest, premium.digest, worse.digest}) == 3


def test_digest_ignores_base_url_but_not_routing(tmp_path: Path) -> None:
    a = load_eval_config("hosted", env={})
    b = load_eval_config("hosted", env={"OPENROUTER_BASE_URL": "http://127.0.0.1:9/v1"})
    assert b.settings.providers["openrouter"].base_url.startswith("http://127.0.0.1")
    assert a.digest == b.digest
    changed = tmp_path / "c.yaml"
    changed.write_text("extends: hosted\nrouting: {threshold_mid: 0.5}\n", "utf-8")
    assert load_eval_config(str(changed), env={}).digest != a.digest


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("extends: self.yaml\n", "extends"),
        ("extends: 3\n", "extends"),
        ("extends: hosted\neval: {tolerances: {cost_per_course: -1}}\n", "eval.tolerances.cost_per_course"),
        ("extends: hosted\neval: {other: 1}\n", "eval"),
        ("extends: hosted\nrouting: {threshold_mid: 7}\n", "routing.threshold_mid"),
        ("extends: missing.yaml\n", "missing.yaml"),
    ],
)
def test_mistakes_name_the_field(tmp_path: Path, text: str, where: str) -> None:
    path = tmp_path / "self.yaml"
    path.write_text(text, "utf-8")
    with pytest.raises(ConfigError) as info:
        load_eval_config(str(path), env={})
    assert any(where in p for p, _ in info.value.problems), info.value.problems


def test_the_response_cache_is_off_in_every_eval_run_whatever_the_config_says(tmp_path: Path) -> None:
    # A repeat served from the cache would report $0 for a course never redone.
    path = tmp_path / "cached.yaml"
    path.write_text(f"extends: {CONFIGS / 'hosted.yaml'}\ncache: {{mode: exact}}\n")
    assert load_eval_config(str(path), env={}).settings.cache.mode == "off"
    assert load_eval_config("hosted", env={}).settings.cache.mode == "off"
