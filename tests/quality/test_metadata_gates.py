"""The metadata gates (phase 2) on facts worked by hand: the completeness share is the mean of
the plan's checks, and each failure carries its reasons, threshold and its gate's advice."""

from __future__ import annotations

from courseforge.config import load_config
from courseforge.quality.base import advice_for, uncertainty
from courseforge.quality.metadata_gates import MetadataFacts, run_metadata_gates

SETTINGS = load_config("hosted", env={"OPENROUTER_API_KEY": "k"}).settings
ALL_MET = [(1.0, "sections"), (1.0, "concepts"), (1.0, "verbs"), (1.0, "mapped")]


def test_a_sound_plan_passes_every_gate_with_no_reasons() -> None:
    results = run_metadata_gates(MetadataFacts(ALL_MET, 0.9, 0.9), SETTINGS, 0.5)
    assert [r.gate for r in results] == ["metadata_completeness", "metadata_coherence", "metadata_alignment"]
    assert all(r.passed and not r.reasons for r in results)
    assert uncertainty(results) == 0.0


def test_completeness_is_the_mean_share_and_names_only_the_checks_that_fell_short() -> None:
    checks = [
        (1.0, "sections"),
        (0.5, "key concepts not planned: loops"),
        (1.0, "verbs"),
        (0.6, "unmapped: [3]"),
    ]
    [completeness, *_] = run_metadata_gates(MetadataFacts(checks, 0.9, 0.9), SETTINGS, 0.5)
    assert completeness.score == 0.775  # (1 + 0.5 + 1 + 0.6) / 4
    assert not completeness.passed and completeness.threshold == SETTINGS.gates.metadata.completeness
    assert list(completeness.reasons) == ["key concepts not planned: loops", "unmapped: [3]"]
    assert "measurable verb" in advice_for(completeness)


def _with_tables(coherence: dict[str, float], alignment: dict[str, float]):  # type: ignore[no-untyped-def]
    meta = SETTINGS.gates.metadata.model_copy(update={"coherence": coherence, "alignment": alignment})
    gates = SETTINGS.gates.model_copy(update={"metadata": meta, "embedding_model": "hashing"})
    return SETTINGS.model_copy(update={"gates": gates})


def test_the_cosine_gates_hold_the_embedding_models_threshold_else_the_pass_mark() -> None:
    settings = _with_tables({"hashing": 0.6}, {})
    results = run_metadata_gates(MetadataFacts(ALL_MET, 0.59, 0.41), settings, 0.4)
    _, coherence, alignment = results
    assert (coherence.passed, coherence.threshold) == (False, 0.6)
    assert "disagree with the outcomes and sections (cosine 0.59 < 0.60)" in coherence.reasons[0]
    assert "title, description and strategy" in advice_for(coherence)
    assert (alignment.passed, alignment.threshold) == (True, 0.4)  # no entry for the model
    failing = run_metadata_gates(MetadataFacts(ALL_MET, 0.9, 0.39), settings, 0.4)[2]
    assert not failing.passed and "goals, topic and audience" in advice_for(failing)
