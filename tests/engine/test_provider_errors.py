"""OpenRouter's errors in a course's chain (engine.calls): 401 and 402 stop the job at once
(no fallback, no further call), 403 moves on to the next model and is never sent to the model
that refused it again."""

from __future__ import annotations

from decimal import Decimal

import pytest

from courseforge.domain.tasks import TaskId
from courseforge.engine import CourseCalls, Runtime
from courseforge.errors import AuthFailed, JobStopped, ModerationRefused, OutOfCredits
from courseforge.ledger import Ledger
from courseforge.providers import ChatModel, ChatRequest, Message
from courseforge.providers.effects import CallSpec
from courseforge.providers.embeddings import HashingEmbedder
from courseforge.testing import ScriptedModel, sequence
from engine_helpers import hosted_settings

SETTINGS = hosted_settings()
GOOD = '{"answer": "forty-two"}'


def spec(lesson: str = "S1-L1", attempt: int = 1) -> CallSpec:
    request = ChatRequest([Message("user", "q")], max_tokens=100)
    return CallSpec("lessons", TaskId.lesson_task(lesson), "premium", attempt, request)


def course(chain: list[ChatModel]) -> tuple[CourseCalls, Ledger]:
    ledger = Ledger(Decimal("1"))
    runtime = Runtime(chains={"qwen3-max": chain}, embedder=HashingEmbedder())
    return CourseCalls(SETTINGS, runtime, ledger), ledger


@pytest.mark.parametrize(
    "error",
    [
        OutOfCredits("Insufficient credits"),
        AuthFailed("No auth credentials found", env_var="OPENROUTER_API_KEY"),
    ],
)
async def test_401_and_402_stop_the_job_without_fallback_or_another_call(error: Exception) -> None:
    primary = ScriptedModel(sequence([error, GOOD]), model_id="qwen3-max")
    fallback = ScriptedModel(sequence([GOOD]), model_id="gpt-oss-120b")
    calls, ledger = course([primary, fallback])
    with pytest.raises(JobStopped) as info:
        await calls.call(spec())
    assert info.value.error is error and "stopped:" in info.value.reason
    assert fallback.calls == 0  # no fallback to another paid model
    with pytest.raises(JobStopped):  # every later call of the course stops before it is sent
        await calls.call(spec("S1-L2"))
    assert primary.calls == 1
    assert [(r.model, r.outcome) for r in ledger.records] == [("qwen3-max", "error")]


async def test_403_moves_on_and_the_refusing_model_never_sees_that_prompt_again() -> None:
    refused = ModerationRefused("flagged", reasons=["violence"], flagged_input="battle")
    primary = ScriptedModel(sequence([refused, GOOD, GOOD]), model_id="qwen3-max")
    fallback = ScriptedModel(sequence([GOOD, GOOD]), model_id="gpt-oss-120b")
    calls, ledger = course([primary, fallback])
    result = await calls.call(spec())
    assert result.record.model == "gpt-oss-120b"
    await calls.call(spec(attempt=2))  # the same task again: straight to the fallback
    assert primary.calls == 1 and fallback.calls == 2
    other = await calls.call(spec("S1-L2"))  # another task's prompt may go to it
    assert other.record.model == "qwen3-max"
    assert "violence" in ledger.records[0].reason
