"""`workflow_plan`'s answers when the `plan` query fails, with the Temporal client's own
exception types: "no such job" only for a workflow that does not exist, a timeout said as one."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode

from courseforge.distributed.client import ONE_QUERY_TIMEOUT_S, workflow_plan
from courseforge.errors import NotFound, RunError, UserError, WorkflowTimeout


class _Handle:
    def __init__(self, client: _Client) -> None:
        self.client = client

    async def query(self, name: str, *, rpc_timeout: timedelta) -> Any:
        self.client.asked.append((name, rpc_timeout))
        raise self.client.failure


class _Client:
    """A Temporal client whose every query fails with `failure`, as the real one raises it."""

    def __init__(self, failure: Exception) -> None:
        self.failure = failure
        self.asked: list[tuple[str, timedelta]] = []

    def get_workflow_handle(self, workflow_id: str) -> _Handle:
        return _Handle(self)


async def _plan(failure: Exception, **kwargs: Any) -> tuple[_Client, BaseException]:
    client = _Client(failure)
    with pytest.raises(Exception) as raised:
        await workflow_plan(client, "python-basics", **kwargs)  # type: ignore[arg-type]
    return client, raised.value


async def test_a_client_timeout_is_said_as_one_not_as_no_such_job() -> None:
    # The client's own deadline, as the SDK raised it against a dev server with no worker.
    client, error = await _plan(RPCError("Timeout expired", RPCStatusCode.CANCELLED, b""), timeout_s=3)
    assert isinstance(error, WorkflowTimeout) and not isinstance(error, UserError)
    assert str(error) == "the workflow 'python-basics' did not answer in 3 s"
    assert error.workflow_id == "python-basics" and error.timeout_s == 3
    assert client.asked == [("plan", timedelta(seconds=3))]


async def test_a_server_deadline_is_a_timeout_too() -> None:
    _client, error = await _plan(RPCError("context deadline exceeded", RPCStatusCode.DEADLINE_EXCEEDED, b""))
    assert isinstance(error, WorkflowTimeout)
    assert error.timeout_s == ONE_QUERY_TIMEOUT_S == 60


async def test_no_such_job_only_for_a_workflow_that_does_not_exist() -> None:
    not_found = RPCError("workflow not found for ID: python-basics", RPCStatusCode.NOT_FOUND, b"")
    _client, error = await _plan(not_found)
    assert isinstance(error, NotFound) and error.headline == "no such job"
    assert error.problems == [("job", "workflow 'python-basics': workflow not found for ID: python-basics")]


@pytest.mark.parametrize(
    "failure",
    [
        RPCError("connection refused", RPCStatusCode.UNAVAILABLE, b""),
        WorkflowQueryFailedError("unknown queryType plan"),
    ],
)
async def test_other_failures_are_run_errors_naming_the_query(failure: Exception) -> None:
    _client, error = await _plan(failure)
    assert isinstance(error, RunError) and not isinstance(error, WorkflowTimeout | UserError)
    assert str(error).startswith("workflow 'python-basics': the plan query failed: ")
