"""What a chain that failed on a flaky provider does next (resilience/degrade.py)."""

from __future__ import annotations

import pytest

from courseforge.errors import BadResponse, CircuitOpen, ProviderError, ProviderHTTPError, ProviderTimeout
from courseforge.providers import ChatRequest, Message
from courseforge.resilience import FORCE_TAG
from courseforge.resilience.degrade import best_model, degraded_delay_s, forced, should_force
from courseforge.testing import ScriptedModel

FLAKY = CircuitOpen(model="a", reopens_in_s=0.5, down=False)
DOWN = CircuitOpen(model="b", reopens_in_s=40.0, down=True)


@pytest.mark.parametrize(
    ("errors", "force"),
    [
        ([FLAKY], True),
        ([FLAKY, ProviderHTTPError(503, "busy")], True),
        ([ProviderTimeout("slow"), FLAKY], True),
        ([FLAKY, DOWN], False),  # a down model: the seed rule, wait for its probe
        ([ProviderHTTPError(503, "busy")], False),  # only transient failures: retries were spent
        ([FLAKY, ProviderHTTPError(401, "bad key")], False),  # not transient
        ([FLAKY, BadResponse("x", kind="empty")], False),  # bad content is the cascade's
    ],
)
def test_should_force(errors: list[ProviderError], force: bool) -> None:
    assert should_force(errors) is force


def test_best_model_is_the_one_that_succeeds_most_earlier_on_a_tie() -> None:
    chain = [ScriptedModel(lambda r: "x", model_id=m) for m in ("a", "b", "c")]
    rates = {"a": 0.4, "b": 0.7, "c": 0.7}
    assert best_model(chain, rates.__getitem__).model_id == "b"


def test_forced_send_delays_and_tag() -> None:
    assert degraded_delay_s(1, "k") == 0.0
    second = degraded_delay_s(2, "lessons|lesson:S1-L1|1|mid")
    assert 0.0 <= second <= 0.5 and second == degraded_delay_s(2, "lessons|lesson:S1-L1|1|mid")
    assert 0.0 <= degraded_delay_s(3, "k") <= 1.0
    request = ChatRequest([Message("user", "q")], tags={"phase": "lessons"})
    assert forced(request).tags == {"phase": "lessons", FORCE_TAG: "1"}
