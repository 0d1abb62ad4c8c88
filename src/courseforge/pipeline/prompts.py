"""Prompts for each generation task.

Each user message ends with a `BRIEF (JSON):` block holding every fact the task needs. Models
read it like the prose above it; scripted doubles and the provider simulator parse it to build
on-topic answers. Feedback from a rejected attempt is appended as its own paragraph.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..domain import AnalysisResult, LearningOutcome, SectionSpec
from ..domain.drafts import MAX_OUTCOMES
from ..providers import Message

__all__ = [
    "BRIEF_MARKER",
    "TEMPLATES_VERSION",
    "exercises_messages",
    "lesson_exercises_ask",
    "lesson_group_messages",
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


#: What the gates check of every lesson, stated in the shared prefix of a model whose provider
#: caches long prefixes (docs/providers.md): the lesson needs it anyway, and it makes the prefix
#: long enough (>= 1,024 tokens) to be cached.
LESSON_RUBRIC = """How each lesson is checked before it is accepted (write so that every check passes):
- On topic: the lesson text is compared with each of its outcomes; a lesson about something else, \
or one that only names its outcomes without teaching them, is rejected and written again.
- Teaches, not announces: explain the idea itself, with the reasoning a learner needs; do not \
describe what the lesson will cover or tell the learner what they are about to learn.
- Length: the content stays within the word range the rules give; a lesson that is too short \
to teach its outcomes, or so long that it wanders, is rejected.
- Structure: a short introduction, the explanation, a concrete worked example that a learner \
could follow step by step, a common mistake to avoid and why it is a mistake, and a one-paragraph \
summary; the text ends with a complete sentence.
- Exercises: each names the number of the outcome it assesses; together they assess every outcome \
of the lesson; each can be answered from the lesson's own text; a multiple-choice answer is one \
of its options copied exactly; each explanation justifies its own answer and not another.
- Coherence with the course: do not repeat what the other lessons of the section teach; use the \
terms the earlier lessons introduced; keep the level of the course's audience and difficulty.
- Accuracy: no invented facts, names, numbers or quotations; where sources are given, facts come \
from them and the sources used are listed in `citations`.
- Language and style: write in the course's language and follow its style guide throughout.
A lesson that fails a check is sent back with the reason, then written on a stronger model; a \
person reviews what still fails.

Exercise types, and what each needs:
- multiple_choice: a question, 3 to 5 options that are all plausible to a learner who skipped \
the lesson, the answer copied exactly from the options, and an explanation of why it is right \
and why the most tempting wrong option is wrong.
- true_false: a statement that is clearly true or clearly false from the lesson's text (never \
a trick of wording), the answer "true" or "false", and an explanation.
- short_answer: a question with one short expected answer (a word, a number, a phrase), the \
answer, and an explanation showing how to reach it.
- coding: a small task the learner can do with what the lesson taught, a model solution as the \
answer, and an explanation of the solution's key step (only where the course is about code).
- open: a question asking the learner to explain, compare or judge in a few sentences, a model \
answer naming what a good answer contains, and an explanation.
Mix the types where the lesson's outcomes allow it; pick the type that assesses the outcome's \
Bloom level: recall and understanding suit multiple_choice, true_false and short_answer; \
applying suits short_answer and coding; analysing, evaluating and creating suit open."""


def course_context(
    analysis: AnalysisResult,
    course_title: str,
    outline: Sequence[tuple[str, Sequence[str]]],
    style: str,
    rules: str = "",
    *,
    outcomes: Sequence[tuple[int, LearningOutcome]] = (),
    summaries: Sequence[str] = (),
    rubric: bool = False,
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
        if number <= len(summaries) and summaries[number - 1]:
            lines.append(f"   {summaries[number - 1]}")
    if outcomes and analysis.goals:
        lines += ["", "The course's goals:"] + [f"- {g}" for g in analysis.goals]
    if outcomes:
        lines += ["", "The course's learning outcomes (a lesson's exercises name these numbers):"]
        lines += [f"{n}. ({o.bloom_level}) {o.text}" for n, o in outcomes]
    if rules:
        lines += ["", "Every lesson follows these rules. " + rules]
    if rubric:
        lines += ["", LESSON_RUBRIC]
    return Message("system", "\n".join(lines))


def _lesson_rules(
    words: tuple[int, int], exercises: tuple[int, int], sourced: bool, *, exercises_apart: bool = False
) -> str:
    """What every lesson of a course is asked for (the same text for each lesson).
    `exercises_apart`: the lesson only; its exercises are asked for in a call of their own."""
    count = f"{exercises[0]}" if exercises[0] == exercises[1] else f"{exercises[0]} to {exercises[1]}"
    text = (
        f"The content is markdown of {words[0]} to {words[1]} words that teaches the lesson's outcomes "
        "directly: a short introduction, the explanation, a concrete worked example, a common mistake to "
        "avoid, and a one-paragraph summary; end with a complete sentence. "
    )
    if exercises_apart:
        text += (
            "Do not write exercises: they are written afterwards from the lesson's text, so state "
            "plainly every fact a learner will be asked about. Do not repeat the other lessons of the section."
        )
    else:
        text += (
            f"Then write {count} exercises; each names in `outcome` the number of the outcome it assesses, "
            "and together they assess every outcome of this lesson. A multiple_choice exercise has 3-5 "
            "options and its answer is one option copied exactly; every explanation justifies its "
            "own answer. Do not repeat the other lessons of the section."
        )
    if sourced:
        text += " Base facts on the sources and list the ids of the sources you used in `citations`."
    return text


#: Section types of a language course (the bundled spanish-a1 uses all five).
_LANGUAGE_SECTIONS = frozenset({"vocabulary", "grammar", "pronunciation", "reading", "discussion"})
#: Words that make a course one about code (its topic, section titles or key concepts).
_CODE_WORDS = re.compile(
    r"\b(python|javascript|typescript|java|sql|html|css|rust|golang|c\+\+|programming|code|coding|"
    r"functions?|variables?|loops?|algorithms?)\b",
    re.IGNORECASE,
)


def worked_example_kind(analysis: AnalysisResult) -> str:
    """The worked example a prose-first lesson of this course is asked for. Offered "a code
    block, a dialogue or a calculation, whichever fits", the offline model (a coder model) wrote
    Python code into a Spanish reading lesson (session 3's spanish-a1 run, accepted by every
    gate), so the kind is chosen by rule: a dialogue for a language course, code for a course
    about code, otherwise a calculation or a concrete case, without code."""
    if any(s.section_type in _LANGUAGE_SECTIONS for s in analysis.sections):
        return (
            "a short dialogue or set of example sentences in the language being taught, each line "
            "followed by its translation, and what it shows (no code)"
        )
    about = " ".join([analysis.topic] + [s.title + " " + " ".join(s.key_concepts) for s in analysis.sections])
    if _CODE_WORDS.search(about):
        return "one short code block followed by its output"
    return "a calculation or a concrete case worked through step by step (no code)"


def _prose_rules(words: tuple[int, int], sourced: bool, example: str) -> str:
    """What every lesson written as markdown (prose first, exercises asked after) is asked for.

    The target is the middle of the range, with a size per part: asked for the middle as a
    bare range, the offline model ran long (three of the four lessons flagged for length above
    500 words, issue 25); asked for a third into the range with part sizes, it ran short (3 of 8
    attempts at 217-246 words, none above 500); asked for the middle with part sizes, its ten
    lessons came to 290-438 words (session 2's fresh-clone run) and none was short; asked for
    two fifths (350 for 250-500), two of ten first attempts fell under 250 and were written
    again (session 3), which cost more tokens than the shorter target saved."""
    low, high = words
    target = (low + high) // 2
    explain = max(60, target // 3)
    text = (
        f"Answer with the lesson itself in markdown, about {target} words (never fewer than "
        f"{low} nor more than {high}; the words of code count too), teaching its "
        "outcomes directly from the first sentence: never announce what the lesson will cover or "
        "say 'let's get started'; explain it. Stay on the lesson's title and outcomes. Use these "
        "parts, in this order, each under its own `##` heading: an introduction of two or three "
        f"sentences; the explanation with the facts a learner needs (about {explain} words); a "
        f"worked example worked through step by step ({example}); a common mistake "
        "and how to avoid it (two to four sentences); and a summary of two or three sentences "
        "ending with a complete sentence. Stop after the summary. Every heading has text under "
        "it; every list is finished. Do not write exercises or questions: they are asked for "
        "after the lesson. Do not repeat the other lessons of the section."
    )
    if sourced:
        text += " Base facts on the sources."
    return text


def lesson_extend_ask(words: tuple[int, int], example: str) -> str:
    """The turn a prose-first lesson under the word floor gets (`ProseFirst.extend`; `{have}`
    and `{need}` are filled in by the provider): one more worked example, of the course's kind,
    placed before its summary. The offline model's first attempts scatter at the same target
    (120-531 words on spanish-a1, 223-642 on python-basics in session 4), and a short one was
    written again whole (40-190 s here) and could come back short again (spanish-a1's S2-L1:
    531, then 185 words, flagged)."""
    return (
        f"That lesson has {{have}} words; it needs at least {words[0]}. Write one more part for it, "
        "to go before its summary: another worked example, worked through step by step "
        f"({example}), about {{need}} words, under its own `##` heading. Answer with that part "
        "only: no summary, no exercises, no other part."
    )


def lesson_exercises_ask(outcomes: Sequence[int], exercises: tuple[int, int], sourced: bool = False) -> str:
    """The second turn of a prose-first lesson: its exercises, as JSON, on the lesson just written.

    Each question must stand on its own (the learner sees it without the lesson: "What is the
    output of the following code?" with no code was the same question in four lessons of one
    run, all regenerated as duplicates; in session 3's run the same code-less question in four
    lessons still sent four back in phase 4, so the ask now names that phrasing) and take its
    answer from the lesson's own words (the answerable check looks for it there)."""
    count = exercises[1]
    numbers = ", ".join(str(n) for n in outcomes)
    text = (
        f"Now write {count} exercises on the lesson you just wrote, as JSON. Each names in `outcome` "
        f"the number of the outcome it assesses; together they assess every outcome ({numbers}). "
        "Mix the types: a multiple_choice has 3-5 options and its answer is one option copied "
        "exactly; a true_false is a statement whose answer is true or false; a short_answer "
        "asks for a word, a value or a line of code. Each question is complete on its own, "
        "because the learner reads it without the lesson: a question about code, a sentence or "
        "a value quotes it in the question itself. Never write 'the following code' or 'this "
        "snippet' without the code after it: copy the lines it asks about into the question as "
        "a fenced code block, or ask about something the question names. Each asks about a "
        "different point of the lesson, and its answer is stated in the lesson, in the lesson's own words; every "
        "explanation is one sentence that justifies its own answer."
    )
    if sourced:
        text += " List in `citations` the ids of the sources the lesson used."
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
    course_outcomes: Sequence[tuple[int, LearningOutcome]] = (),
    summaries: Sequence[str] = (),
    prose_first: bool = False,
    exercises_apart: bool = False,
) -> list[Message]:
    """`sources`: the (id, title, excerpt) passages to show (the lesson's retrieved excerpts);
    None shows the first six sources' openings. `course_outcomes` (and the sections'
    `summaries`): the shared prefix also holds every outcome of the course, the sections'
    summaries and the gates' rubric — long enough for a provider's prompt cache (a model with
    `prompt_cache_min_tokens`). `prose_first`: ask for the lesson as markdown only (its
    exercises are asked for after it: `lesson_exercises_ask`). `exercises_apart`: the lesson
    without exercises (they are asked for in a call of their own: `exercises_messages`)."""
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
    if exercises_apart:
        brief["exercises_apart"] = True
    if sources is not None:
        if sources:
            brief["sources"] = [{"id": i, "title": t, "excerpt": x} for i, t, x in sources]
    elif analysis.source_material:
        brief["sources"] = [
            {"id": m.id, "title": m.title, "excerpt": m.text[:600]} for m in analysis.source_material[:6]
        ]
    numbers = ", ".join(str(n) for n, _ in outcomes)
    sourced = bool(analysis.source_material)
    rules = (
        _prose_rules(words, sourced, worked_example_kind(analysis))
        if prose_first
        else _lesson_rules(words, exercises, sourced, exercises_apart=exercises_apart)
    )
    ask = f"Write the lesson {lesson_title!r} in the section {section.title!r}, teaching its outcomes ({numbers})."
    if outline:  # the rules go in the shared prefix; only which lesson, and its brief, differ
        system = course_context(
            analysis,
            course_title,
            outline,
            style,
            rules,
            outcomes=course_outcomes,
            summaries=summaries,
            rubric=bool(course_outcomes),
        )
        return [system, Message("user", _with_brief(ask, brief, feedback))]
    return [_system(analysis, style), Message("user", _with_brief(f"{ask} {rules}", brief, feedback))]


def exercises_messages(
    *,
    analysis: AnalysisResult,
    section: SectionSpec,
    lesson_title: str,
    outcomes: Sequence[tuple[int, LearningOutcome]],
    content: str,
    exercises: tuple[int, int],
    style: str = "",
    feedback: str = "",
) -> list[Message]:
    """A lesson's exercises asked apart from it (`routing.exercises_tier`): the
    lesson's text and outcomes in, the exercises out (`{"exercises": [...]}`). The questions
    are `lesson_exercises_ask`'s, for a model that has not written the lesson."""
    brief: dict[str, Any] = {
        "task": "exercises",
        "topic": analysis.topic,
        "section": section.title,
        "lesson_title": lesson_title,
        "outcomes": [{"number": n, "text": o.text, "bloom_level": o.bloom_level} for n, o in outcomes],
        "lesson": content,
    }
    ask = lesson_exercises_ask([n for n, _ in outcomes], exercises).replace(
        "on the lesson you just wrote",
        f"on the lesson {lesson_title!r} below (its text is `lesson` in the brief)",
    )
    return [_system(analysis, style), Message("user", _with_brief(ask, brief, feedback))]


def lesson_group_messages(lessons: Sequence[Sequence[Message]], section_title: str) -> list[Message]:
    """A section's lessons in one request (`routing.group_lessons`), from each
    lesson's own messages: their shared system message once, then every lesson's brief in
    order; the answer is `{"lessons": [...]}`, one lesson object each, in the same order."""
    briefs = [parse_brief(m) for m in lessons]
    titles = "; ".join(repr(b.get("lesson_title", "")) for b in briefs)
    ask = (
        f"Write the {len(briefs)} lessons of the section {section_title!r} given in the brief, in "
        f"this order: {titles}. Answer with `lessons`, one object per lesson in the same order, "
        "each with its own content, exercises and citations. Each lesson follows the rules on "
        "its own and teaches its own outcomes; its exercises name only its own outcomes."
    )
    brief = {"task": "lesson_group", "section": section_title, "lessons": briefs}
    return [lessons[0][0], Message("user", _with_brief(ask, brief, ""))]
