"""The pure helpers of benchmarks/engine_overhead.py (no timing asserted anywhere)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def eo() -> ModuleType:
    return _load("engine_overhead")


def test_verdict_is_the_measured_ratio_against_half(eo: ModuleType) -> None:
    assert eo.verdict(2.0, 8.0) == (0.25, "PASS")
    assert eo.verdict(4.0, 8.0) == (0.5, "PASS")
    ratio, result = eo.verdict(6.0, 8.0)
    assert (ratio, result) == (0.75, "FAIL")
    assert eo.verdict(1.0, None) == (None, "NO PEER")
    assert eo.verdict(1.0, 0.0) == (None, "NO PEER")


def test_no_constant_peer_figure_is_left(eo: ModuleType) -> None:
    assert not hasattr(eo, "LITELLM_ROUTER_MS")
    assert eo.TARGET_RATIO == 0.5


def test_peer_bodies_keep_what_the_router_does_not_set(eo: ModuleType) -> None:
    sent = {
        "model": "openai/gpt-oss-120b",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 900,
        "temperature": 0.4,
        "response_format": {"type": "json_schema", "json_schema": {"name": "lesson", "schema": {}}},
        "usage": {"include": True},
    }
    (body,) = eo.peer_bodies([sent])
    assert body == {k: sent[k] for k in ("messages", "response_format", "max_tokens", "temperature")}


def test_median(eo: ModuleType) -> None:
    assert eo.median([3.0, 1.0, 2.0]) == 2.0
    assert eo.median([1.0, 2.0]) == 1.5


def test_peer_script_never_imports_courseforge() -> None:
    source = (BENCHMARKS / "litellm_router.py").read_text()
    assert "courseforge" not in "\n".join(
        line for line in source.splitlines() if line.lstrip().startswith(("import ", "from "))
    )
