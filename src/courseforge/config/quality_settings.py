"""Settings of the quality gates: judge, self-consistency, grounding, redundancy, safety, teaching.

Kept apart from `settings.py` so the gate keys can grow without touching the routing ones; each
class is one key under `gates:` in the YAML. Embedding-based bounds are per embedding model
(like `gates.similarity`), because a cosine means something different for every model.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "CompletenessSettings",
    "ConsistencySettings",
    "GroundingSettings",
    "JudgeSettings",
    "MetadataGateSettings",
    "RedundancySettings",
    "SafetySettings",
    "TeachesSettings",
]


class _S(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


JudgeDimension = Literal["correctness", "comprehensiveness", "readability"]


def _seed_floors() -> dict[JudgeDimension, float]:
    return {"correctness": 0.80, "comprehensiveness": 0.70, "readability": 0.70}


class JudgeSettings(_S):
    """LLM-as-judge: correctness, comprehensiveness, readability on 1-5."""

    enabled: bool = True
    #: Tier that judges; a tier whose model family differs from the generator's is preferred
    #: when `prefer_other_family` and one exists among `candidate_tiers`.
    tier: str = "cheap"
    prefer_other_family: bool = True
    #: Tiers the judge may be moved to for a different family (empty: every configured tier).
    candidate_tiers: list[str] = Field(default_factory=list)
    #: Reference judge of the calibration sample (a stronger model as the ground truth):
    #: this tier, unless its model is of the generator's family (then the dearest tier of
    #: another family at least as dear as the judge). Its verdict is recorded, never substituted.
    strong_tier: str | None = "premium"
    #: Share of lessons judged by both judges; deterministic per lesson.
    sample_rate: float = Field(default=0.1, ge=0, le=1)
    #: Judge every lesson, not only the borderline and sampled ones.
    always: bool = False
    #: Composite (0.6 correctness + 0.2 comprehensiveness + 0.2 readability) needed to pass.
    pass_composite: float = Field(default=3.5, ge=1, le=5)
    #: Composite needed per generator tier, over `pass_composite`: a premium lesson needs 4.0,
    #: the others keep 3.5. Tiers not named use `pass_composite`.
    pass_composite_by_tier: dict[str, float] = Field(default_factory=lambda: {"premium": 4.0})
    #: Correctness below this fails whatever the composite (kept for old configs; `floors`
    #: holds the per-dimension rule).
    min_correctness: int = Field(default=3, ge=1, le=5)
    #: Per-dimension floors, as shares of the judge's 5: a dimension scoring
    #: below `floor x 5` fails the lesson (correctness 0.80 = 4/5; comprehensiveness and
    #: readability 0.70 = 3.5/5, i.e. 4 on the integer scale).
    floors: dict[JudgeDimension, float] = Field(default_factory=_seed_floors)
    #: A borderline-similarity lesson the judge accepts proceeds with a flag
    #: (a person looks at it); one the judge has concerns about escalates at once (severe).
    flag_borderline: bool = True
    escalate_on_concerns: bool = True
    #: Similarity band [low, high) per embedding model in which the judge decides. Missing model:
    #: [severe_below, pass_at) of `gates.similarity`.
    borderline: dict[str, tuple[float, float]] = Field(default_factory=dict)
    #: Judge calls per verdict (a first answer plus re-asks after invalid output).
    max_attempts: int = Field(default=2, ge=1, le=5)
    max_tokens: int = Field(default=700, ge=128)


class ConsistencySettings(_S):
    """Self-consistency: sample a lesson 2-3 times; samples
    that disagree (pairwise cosine below the bound) mean the model is unsure: escalate."""

    #: Section types sampled (empty: none, unless `all_sections`).
    section_types: list[str] = Field(default_factory=list)
    all_sections: bool = False
    #: Also sample critical sections whatever their type.
    critical: bool = False
    #: Only attempts on these tiers are sampled (sampling the premium tier buys little).
    tiers: list[str] = Field(default_factory=lambda: ["cheap", "mid"])
    samples: int = Field(default=2, ge=2, le=3)
    #: Lowest pairwise cosine accepted, per embedding model (seed: 0.85 for mpnet).
    min_cosine: dict[str, float] = Field(default_factory=lambda: {"all-MiniLM-L6-v2": 0.80, "hashing": 0.35})


class GroundingSettings(_S):
    """Claims of a lesson checked against the input's source_material (only when it has some)."""

    enabled: bool = True
    #: Share of factual claims that must be supported.
    min_coverage: float = Field(default=0.8, ge=0, le=1)
    #: Share of factual claims supported by a source the lesson cites (citation coverage,
    #: reported and gated apart from support).
    min_citation_coverage: float = Field(default=0.8, ge=0, le=1)
    #: Per embedding model: cosine of claim to best passage sentence at/above `supported` is
    #: supported, below `unsupported` is not, in between is uncertain (the judge decides).
    supported: dict[str, float] = Field(default_factory=lambda: {"all-MiniLM-L6-v2": 0.62, "hashing": 0.45})
    unsupported: dict[str, float] = Field(default_factory=lambda: {"all-MiniLM-L6-v2": 0.40, "hashing": 0.2})
    #: Ask the judge about uncertain claims (in the pipeline; `check` reports them as uncertain).
    judge_uncertain: bool = True
    #: Tokens of source excerpts a lesson is shown: the sentences most relevant to it, best
    #: first (`pipeline/context.py`); the grounding gate and the judge grade against them.
    excerpt_tokens: int = Field(default=900, ge=50, le=900_000)
    #: Claims judged per lesson at most (the rest stay uncertain).
    max_judged_claims: int = Field(default=6, ge=0, le=40)


class RedundancySettings(_S):
    """Near-duplicate lessons and exercises across the course (phase 4)."""

    #: Phase 4's duplicate check in the pipeline (the `check` command's audit always runs it).
    enabled: bool = True
    #: Lesson cosine at/above which two lessons are duplicates, per embedding model. MiniLM,
    #: measured (tests/quality/test_labelled.py): paraphrased lessons 0.89-0.98, distinct lessons
    #: of one subject <= 0.60.
    lesson_cosine: dict[str, float] = Field(
        default_factory=lambda: {"all-MiniLM-L6-v2": 0.85, "hashing": 0.92}
    )
    #: Jaccard of word 3-shingles (0-100) that also makes a duplicate: a lesson with one sentence
    #: dropped scores 72-86, distinct lessons <= 2.
    lesson_lexical: float = Field(default=60, ge=0, le=100)
    #: Containment of word 3-shingles (0-100: the shorter lesson's shingles found in the other)
    #: that makes a duplicate whatever the Jaccard: copies with paragraphs dropped score 97-100
    #: (the outside set; Jaccard gave 44 for one cut by half), distinct lessons <= 32, and lessons
    #: of one template 60-88 (the simulator's, on the eval set), so the bar sits above them.
    lesson_containment: float = Field(default=90, ge=0, le=101)
    #: A pair over `lesson_cosine` but not `lesson_lexical` is not a duplicate when both carry
    #: at least 3 number-bearing tokens and share less than this share of them (Jaccard): one
    #: template about different facts (the Debian 9.x and 10.x release notes, MiniLM 0.92,
    #: share 8 %) rather than a paraphrase (the hand-made ones share 94-100 %). 0: off.
    lesson_distinct_facts: float = Field(default=0.5, ge=0, le=1)
    #: Exercise question cosine (MiniLM: reworded 0.97+, distinct <= 0.49) and rapidfuzz
    #: token-sort ratio (reworded 84-100, distinct <= 63) for duplicate exercises.
    exercise_cosine: dict[str, float] = Field(
        default_factory=lambda: {"all-MiniLM-L6-v2": 0.90, "hashing": 0.9}
    )
    exercise_lexical: float = Field(default=80, ge=0, le=100)


class MetadataGateSettings(_S):
    """Phase 2's metadata quality gate: completeness, coherence, alignment."""

    enabled: bool = True
    #: Share of the plan's checks met: every section planned, every key concept planned (named
    #: or, by cosine, at the similarity pass mark), every outcome measurable and mapped to a
    #: lesson.
    completeness: float = Field(default=0.85, ge=0, le=1)
    #: Cosine of title + description + strategy to the outcomes and the section titles, per
    #: embedding model. MiniLM, measured (tests/pipeline/test_metadata_gate.py): coherent plans
    #: 0.43-0.51, another course's title and description 0.03-0.17, another course's outcomes
    #: 0.11-0.35. The lexical hashing stand-in cannot separate them (0.14-0.25 both): 0, off.
    coherence: dict[str, float] = Field(default_factory=lambda: {"all-MiniLM-L6-v2": 0.38, "hashing": 0.0})
    #: Cosine of the outcomes (mean vector) to the analysis' goals, topic and audience. MiniLM:
    #: aligned 0.25-0.38, another course's outcomes 0.06-0.10. Hashing: 0, off.
    alignment: dict[str, float] = Field(default_factory=lambda: {"all-MiniLM-L6-v2": 0.17, "hashing": 0.0})
    #: Cosine of the non-critical audience detail to the analysis' topic and audience: below it
    #: the extras escalate a tier. MiniLM: this course's 0.95-0.97, another course's 0.10-0.31,
    #: "People." 0.08-0.15; hashing: 0.90-0.92 vs <= 0.14.
    extras: dict[str, float] = Field(default_factory=lambda: {"all-MiniLM-L6-v2": 0.45, "hashing": 0.3})


class CompletenessSettings(_S):
    """Phase 5 beyond counting: gap lessons, token bounds, course-level similarity."""

    #: Tier that identifies the missing lessons (a list of gaps needs no premium model).
    gap_tier: str = "mid"
    #: Most lessons phase 5 may add to one course.
    max_gap_lessons: int = Field(default=10, ge=0, le=50)
    #: Tokens of one lesson (content and exercises) outside [low, high] flag it.
    lesson_tokens: tuple[int, int] = (60, 3000)
    #: Tokens of the whole course's lessons outside [low, high] flag the course.
    course_tokens: tuple[int, int] = (300, 250_000)
    #: Mean lesson-to-outcome similarity the course needs, per embedding model. Missing model:
    #: the low end of the judge's borderline band for it (lessons the judge accepted there are
    #: accepted), else its `gates.similarity` pass mark. Below it, the lessons under it are
    #: regenerated on the top ladder tier, once (targeted regeneration).
    course_similarity: dict[str, float] = Field(default_factory=dict)


class SafetySettings(_S):
    """Zero tolerance: any PII or toxic hit fails the lesson (severe) and it is regenerated."""

    enabled: bool = True
    #: PII kinds checked: email, phone, card, ssn, iban, nino, address.
    pii: list[str] = Field(
        default_factory=lambda: ["email", "phone", "card", "ssn", "iban", "nino", "address"]
    )
    #: Region used to read phone numbers written without a country code.
    phone_region: str = "US"
    profanity: bool = True
    #: Offensive-language classifier (alt-profanity-check, an offline linear model); skipped,
    #: with a note in the gate's reasons, when the package is missing.
    classifier: bool = True
    #: Classifier probability at/above which a sentence addressing a person or group is toxic.
    classifier_threshold: float = Field(default=0.85, ge=0, le=1)
    #: Words never counted as profanity in course text (biology, history, tools).
    allow_words: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _known_kinds(self) -> SafetySettings:
        unknown = sorted(set(self.pii) - {"email", "phone", "card", "ssn", "iban", "nino", "address"})
        if unknown:
            raise ValueError(f"unknown PII kinds: {', '.join(unknown)}")
        return self


class TeachesSettings(_S):
    """The "teaches, not announces" gate (quality/teaching.py), measured on the outside set."""

    enabled: bool = True
    #: Most of a lesson's prose sentences that may talk about the lesson ("in this lesson we
    #: will …", "let's get started") rather than its subject. Outside set: real sections 0-0.15,
    #: announcement-only lessons 0.45-0.88.
    max_announce_share: float = Field(default=0.4, ge=0, le=1)
    #: Fewest pieces of worked content (code block, example, definition, fact) a lesson whose
    #: announcing share is above half of `max_announce_share` must show.
    min_worked: int = Field(default=2, ge=0)
