"""Every package's public names exist (the layers are tested in test_architecture.py)."""

from __future__ import annotations

import importlib

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
    "courseforge.engine",
    "courseforge.jobs",
    "courseforge.cli",
    "courseforge.telemetry",
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
