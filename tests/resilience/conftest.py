"""Shared fixtures: fake time, recorded events, seeded randomness, a one-message request."""

from __future__ import annotations

import random

import pytest

from courseforge.providers.base import ChatRequest, Message
from courseforge.resilience import FakeClock, RecordingHooks

SEED = 20260818


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def hooks() -> RecordingHooks:
    return RecordingHooks()


@pytest.fixture
def rng() -> random.Random:
    return random.Random(SEED)


@pytest.fixture
def request_() -> ChatRequest:
    return ChatRequest(
        messages=[Message("user", "Explain photosynthesis to a ten-year-old.")], max_tokens=100
    )
