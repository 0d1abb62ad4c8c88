"""Every package's public names exist, and imports only point down the layers of DESIGN.md."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import courseforge
from courseforge import errors

PACKAGES = [
    "courseforge.domain",
    "courseforge.config",
    "courseforge.providers",
    "courseforge.resilience",
    "courseforge.routing",
    "courseforge.quality",
    "courseforge.pipeline",
    "courseforge.testing",
    "courseforge.ledger",
    "courseforge.errors",
    "courseforge.storage",
    "courseforge.sim",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_names_exist_and_are_importable(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert exported, f"{name}.__all__ is empty"
    assert len(exported) == len(set(exported)), f"{name}.__all__ has duplicates"
    missing = [n for n in exported if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names missing: {missing}"
    namespace: dict[str, object] = {}
    exec(f"from {name} import *", namespace)  # what users get from a star import
    assert set(exported) <= set(namespace)


def test_error_tree_matches_its_docstring() -> None:
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, errors.CourseforgeError), name
    user = {errors.InputError, errors.ConfigError}
    run = {
        errors.ProviderError,
        errors.BudgetExceeded,
        errors.GateFailed,
        errors.CascadeExhausted,
        errors.GenerationFailed,
    }
    assert all(issubclass(c, errors.UserError) for c in user)
    assert all(issubclass(c, errors.RunError) and not issubclass(c, errors.UserError) for c in run)
    for cls in (errors.ProviderHTTPError, errors.ProviderTimeout, errors.BadResponse, errors.CircuitOpen):
        assert issubclass(cls, errors.ProviderError)
    assert issubclass(errors.RateLimited, errors.ProviderHTTPError)
    assert errors.RateLimited("x", retry_after_s=1.0).status == 429
    assert errors.ProviderHTTPError(503, "").retryable and not errors.ProviderHTTPError(400, "").retryable


def test_version() -> None:
    assert courseforge.__version__


SRC = Path(courseforge.__file__).resolve().parent
# DESIGN.md: cli, service -> engine -> pipeline -> quality, routing -> resilience -> providers;
# all may use ledger, storage, config, domain, errors; nothing imports upward.
RANK = {
    "providers": 0,
    "resilience": 1,
    "routing": 2,
    "quality": 2,
    "pipeline": 3,
    "runtime": 4,
    "engine": 4,
    # Durable jobs (checkpointing effects, job runner) and the Temporal workflow: engine level.
    "durable": 4,
    "distributed": 4,
    # The provider simulator: a tool beside the engine (reads prompts to write answers).
    "sim": 4,
    "cli": 5,
    # `courseforge check` and `calibrate`, registered on the cli app.
    "cli_quality": 5,
    # `courseforge worker` (the distributed engine), registered on the cli app.
    "cli_distributed": 5,
    "service": 5,
}
SHARED_MAY_USE = {
    "domain": set(),
    "errors": set(),
    "config": {"errors"},
    "ledger": {"config", "domain", "errors", "providers"},
    "storage": {"config", "domain", "errors", "ledger"},
}


def _package_of(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _our_imports(path: Path) -> set[str]:
    rel = path.relative_to(SRC)
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = list(rel.parts[:-1])
            base = base[: len(base) - (node.level - 1)]
            parts = base + [p for p in (node.module or "").split(".") if p]
            found.update([parts[0]] if parts else [a.name for a in node.names])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("courseforge."):
            found.add(node.module.split(".")[1])  # type: ignore[union-attr]
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("courseforge."))
    return found - {_package_of(path)}


@pytest.mark.parametrize(
    "path", sorted(p for p in SRC.rglob("*.py") if _package_of(p) not in ("testing", "__init__")), ids=str
)
def test_imports_point_down_the_layers(path: Path) -> None:
    package = _package_of(path)
    imports = _our_imports(path)
    if package in SHARED_MAY_USE:
        assert imports <= SHARED_MAY_USE[package], f"{package} imports {imports - SHARED_MAY_USE[package]}"
        return
    rank = RANK[package]
    upward = {i for i in imports if RANK.get(i, -1) > rank}
    assert not upward, f"{path.relative_to(SRC)} imports upward: {upward}"
