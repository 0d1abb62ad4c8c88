"""The safety gate's toxicity classifier computes exactly what alt-profanity-check does."""

from __future__ import annotations

import pytest

profanity_check = pytest.importorskip("profanity_check")

from courseforge.quality.safety import _classifier  # noqa: E402

SENTENCES = [
    "Photosynthesis converts light energy into chemical energy.",
    "The Calvin cycle fixes carbon dioxide into sugars.",
    "You are a stupid idiot and everyone hates you.",
    "Shut up, you worthless piece of garbage.",
    "Variables hold values; print shows them on the screen.",
    "Damn, this loop never ends!",
    "¿Dónde está la biblioteca? Está al lado del parque.",
    "",
    "I will hurt you if you do that again, you moron.",
    "Loops repeat work; for loops walk over the items of a list.",
]


def test_same_probabilities_as_the_library() -> None:
    ours = _classifier()
    assert ours is not False
    theirs = [float(p) for p in profanity_check.predict_prob(SENTENCES)]
    assert ours(SENTENCES) == pytest.approx(theirs, abs=1e-12)
    assert max(theirs) > 0.85 > min(theirs)  # the set has clean and toxic sentences
