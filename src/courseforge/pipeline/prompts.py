"""Prompts for each generation task.

Each user message ends with a `BRIEF (JSON):` block holding every fact the task needs. Models
read it like the prose above it; scripted doubles and the provider simulator parse it to build
on-topic answers. Feedback from a rejected attempt is appended as its own paragraph.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..domain import AnalysisResult, LearningOutcome, SectionSpec
from ..domain.drafts import MAX_OUTCOMES
from ..providers import Message

__all__ = [
    "BRIEF_MARKER",
    "TEMPLATES_VERSION",
    "lesson_messages",
    "metadata_core_messages",
    "metadata_extras_messages",
    "parse_brief",
]

BRIEF_MARKER = "BRIEF (JSON):"
#: Part of every response-cache key: bump it when a prompt changes in a way its messages do not
#: show (how an answer is parsed or repaired), so answers kept for the old prompts stop matching.
TEMPLATES_VERSION = "2026-12-01"

_SYSTEM = (
    "You are an expert instructional designer writing a course for {audience} "
    "(level: {difficulty}, language: {language}). Be accurate, concrete and concise. "
    "Follow Bloom's taxonomy: outcomes start with a measurable verb. {style}"
)


def _system(analysis: AnalysisResult, style: str = "") -> Message:
    style = style or (analysis.style_guidelines or "")
    return Message(
        "system",
        _SYSTEM.format(
            audience=analysis.target_audience,
            difficulty=analysis.difficulty,
            language=analysis.language,
            style=f"Style: {style}" if style else "",
        ).strip(),
    )


def _with_brief(text: str, brief: Mapping[str, Any], feedback: str) -> str:
    parts = [text.strip()]
    if feedback:
        parts.append(f"Your previous attempt was rejected: {feedback}")
    parts.append(f"{BRIEF_MARKER}\n{json.dumps(brief, ensure_ascii=False)}")
    return "\n\n".join(parts)


def parse_brief(messages: Sequence[Message]) -> dict[str, Any]:
    """The BRIEF block of the last user message (for doubles and the simulator)."""
    for message in reversed(messages):
        if message.role == "user" and BRIEF_MARKER in message.content:
            raw = message.content.rsplit(BRIEF_MARKER, 1)[1].strip()
            parsed: dict[str, Any] = json.loads(raw)
            return parsed
    return {}


def metadata_core_messages(
    analysis: AnalysisResult, lesson_counts: Sequence[int], feedback: str = ""
) -> list[Message]:
    sections = [
        {
            "number": i + 1,
            "title": s.title,
            "section_type": s.section_type,
            "key_concepts": s.key_concepts,
            "lessons": lesson_counts[i],
            **({"guidance": s.guidance} if s.guidance else {}),
        }
        for i, s in enumerate(analysis.sections)
    ]
    brief = {
        "task": "metadata_core",
        "topic": analysis.topic,
        "audience": analysis.target_audience,
        "difficulty": analysis.difficulty,
        "goals": analysis.goals,
        "sections": sections,
    }
    n = len(analysis.sections)
    per_section = (
        f"one per section, in section order ({n} in all), each naming all of that section's "
        "key concepts, so that outcome i is taught by every lesson of section i"
        if 3 <= n <= MAX_OUTCOMES
        else "3 in all, about the sections' key concepts"
        if n < 3
        else f"3 to {MAX_OUTCOMES}, each about the key concepts of the sections that teach it"
    )
    text = (
        f"Design the course on {analysis.topic!r}. Give: a course title; a description (2-4 "
        f"sentences); learning outcomes ({per_section}), each one sentence starting with a "
        "measurable verb (identify, explain, apply, compare, evaluate, design, ...) with its "
        "Bloom level; the "
        "pedagogical strategy (how the course teaches and assesses, in 2-5 sentences); a domain "
        "taxonomy (2-12 topic terms); and for EVERY section in the brief, in the same order, a "
        "one-sentence summary and exactly the requested number of lessons, each with a title and "
        "the numbers (1-based) of the outcomes it teaches. Every outcome must be taught by at "
        "least one lesson."
    )
    return [_system(analysis), Message("user", _with_brief(text, brief, feedback))]


def metadata_extras_messages(analysis: AnalysisResult, lessons: int, feedback: str = "") -> list[Message]:
    brief = {
        "task": "metadata_extras",
        "topic": analysis.topic,
        "audience": analysis.target_audience,
        "difficulty": analysis.difficulty,
        "lessons": lessons,
        "sections": [s.title for s in analysis.sections],
    }
    text = (
        f"For a {lessons}-lesson course on {analysis.topic!r}, describe the target audience in "
        "one or two sentences, list up to 8 prerequisites (may be empty for beginners), estimate "
        "the total study time in minutes (lessons and exercises), and write short style "
        "guidelines for the lesson authors."
    )
    return [_system(analysis), Message("user", _with_brief(text, brief, feedback))]


def course_context(
    analysis: AnalysisResult,
    course_title: str,
    outline: Sequence[tuple[str, Sequence[str]]],
    style: str,
    rules: str = "",
) -> Message:
    """The system message every lesson of a course shares, byte for byte: who the course is
    for, its title, its outline (each section with its lesson titles) and the rules every lesson
    follows. Shared, it is a prefix a local model decodes once and a hosted provider serves from
    its prompt cache (docs/caching.md); what differs per lesson comes after it, in the user
    message (which lesson, then its brief)."""
    base = _system(analysis, style).content
    lines = [
        base,
        "",
        f"You are writing one lesson of the course {course_title!r} on {analysis.topic!r}.",
        "Outline:",
    ]
    for number, (section, lessons) in enumerate(outline, start=1):
        lines.append(f"{number}. {section}: " + "; ".join(lessons))
    if rules:
        lines += ["", "Every lesson follows these rules. " + rules]
    return Message("system", "\n".join(lines))


def _lesson_rules(words: tuple[int, int], exercises: tuple[int, int], sourced: bool) -> str:
    """What every lesson of a course is asked for (the same text for each lesson)."""
    count = f"{exercises[0]}" if exercises[0] == exercises[1] else f"{exercises[0]} to {exercises[1]}"
    text = (
        f"The content is markdown of {words[0]} to {words[1]} words that teaches the lesson's outcomes "
        "directly: a short introduction, the explanation, a concrete worked example, a common mistake to "
        "avoid, and a one-paragraph summary; end with a complete sentence. Then write "
        f"{count} exercises; each names in `outcome` the number of the outcome it assesses, and "
        "together they assess every outcome of this lesson. A multiple_choice exercise has 3-5 "
        "options and its answer is one option copied exactly; every explanation justifies its "
        "own answer. Do not repeat the other lessons of the section."
    )
    if sourced:
        text += " Base facts on the sources and list the ids of the sources you used in `citations`."
    return text


def lesson_messages(
    *,
    analysis: AnalysisResult,
    course_title: str,
    section: SectionSpec,
    section_summary: str,
    lesson_title: str,
    outcomes: Sequence[tuple[int, LearningOutcome]],
    sibling_titles: Sequence[str],
    words: tuple[int, int],
    style: str,
    outline: Sequence[tuple[str, Sequence[str]]] = (),
    feedback: str = "",
    exercises: tuple[int, int] = (1, 4),
    sources: Sequence[tuple[str, str, str]] | None = None,
) -> list[Message]:
    """`sources`: the (id, title, excerpt) passages to show (the lesson's retrieved excerpts);
    None shows the first six sources' openings."""
    brief: dict[str, Any] = {
        "task": "lesson",
        "course_title": course_title,
        "topic": analysis.topic,
        "section": section.title,
        "section_type": section.section_type,
        "section_summary": section_summary,
        "key_concepts": section.key_concepts,
        "lesson_title": lesson_title,
        "outcomes": [{"number": n, "text": o.text, "bloom_level": o.bloom_level} for n, o in outcomes],
        "other_lessons_in_section": list(sibling_titles),
        "words": list(words),
    }
    if section.guidance:
        brief["guidance"] = section.guidance
    if sources is not None:
        if sources:
            brief["sources"] = [{"id": i, "title": t, "excerpt": x} for i, t, x in sources]
    elif analysis.source_material:
        brief["sources"] = [
            {"id": m.id, "title": m.title, "excerpt": m.text[:600]} for m in analysis.source_material[:6]
        ]
    numbers = ", ".join(str(n) for n, _ in outcomes)
    rules = _lesson_rules(words, exercises, bool(analysis.source_material))
    ask = f"Write the lesson {lesson_title!r} in the section {section.title!r}, teaching its outcomes ({numbers})."
    if outline:  # the rules go in the shared prefix; only which lesson, and its brief, differ
        system = course_context(analysis, course_title, outline, style, rules)
        return [system, Message("user", _with_brief(ask, brief, feedback))]
    return [_system(analysis, style), Message("user", _with_brief(f"{ask} {rules}", brief, feedback))]
