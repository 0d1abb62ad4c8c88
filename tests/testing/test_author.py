"""CourseAuthor's metadata keeps to the draft's bounds, however many sections a course has."""

from __future__ import annotations

import json

import pytest

from courseforge.domain.drafts import MAX_OUTCOMES, MetadataCoreDraft
from courseforge.testing import CourseAuthor


@pytest.mark.parametrize("n_sections", [1, 3, MAX_OUTCOMES, MAX_OUTCOMES + 1, 40])
def test_metadata_fits_the_schema_for_any_number_of_sections(n_sections: int) -> None:
    brief = {
        "task": "metadata_core",
        "topic": "A topic",
        "audience": "learners",
        "sections": [
            {"title": f"Section {i}", "key_concepts": [f"concept {i}a", f"concept {i}b"], "lessons": 1}
            for i in range(n_sections)
        ],
    }
    draft = MetadataCoreDraft.model_validate(CourseAuthor().metadata_core(brief))
    n_out = len(draft.learning_outcomes)
    assert 3 <= n_out <= MAX_OUTCOMES
    taught = {o for s in draft.sections for lesson in s.lessons for o in lesson.outcomes}
    assert taught == set(range(1, n_out + 1))  # every outcome taught, none out of range
    assert json.dumps(draft.model_dump())  # plain data
