"""`CourseAuthor`: a scripted double that writes schema-valid, on-topic answers for every
courseforge task by reading the prompt's BRIEF block. Pair it with `ScriptedModel` to run the
whole pipeline with no model; set `off_topic` to make chosen lessons drift (gates reject them).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ..domain.drafts import MAX_OUTCOMES
from ..pipeline.prompts import parse_brief
from ..providers import ChatRequest

__all__ = ["CourseAuthor"]

_BLOOM_VERBS = {
    "remember": "Identify",
    "understand": "Explain",
    "apply": "Apply",
    "analyze": "Compare",
    "evaluate": "Evaluate",
    "create": "Design",
}
#: Question templates, picked per lesson title: lessons never share an exercise question (phase 4
#: sends a lesson repeating another lesson's exercise back).
_QUESTIONS = (
    "Which statement best matches {title}?",
    "After studying {title}, which of these is true?",
    "What is the main idea of {title}?",
    "Pick the statement that summarises {title}.",
    "Which option restates the goal of {title}?",
)
_OFF_TOPIC = (
    "Medieval castles were built with thick stone walls, moats and drawbridges. Knights trained "
    "for years, and harvest festivals marked the turning of the agricultural calendar. "
)


#: What each lesson of a section dwells on, so lessons sharing their section's outcome differ.
_ANGLES = (
    "first steps",
    "worked examples",
    "common mistakes",
    "practice problems",
    "small projects",
    "review",
)


def _clip(text: str, limit: int) -> str:
    """`text` cut at a word boundary to at most `limit` characters."""
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0]


class CourseAuthor:
    """Callable script: `ScriptedModel(CourseAuthor())`."""

    def __init__(self, *, off_topic: Callable[[dict[str, Any]], bool] | None = None, words: int = 0) -> None:
        self._off_topic = off_topic or (lambda brief: False)
        self._words = words

    def __call__(self, request: ChatRequest) -> str:
        brief = parse_brief(request.messages)
        task = brief.get("task")
        if task == "metadata_core":
            return json.dumps(self.metadata_core(brief))
        if task == "metadata_extras":
            return json.dumps(self.metadata_extras(brief))
        if task == "lesson":
            return json.dumps(self.lesson(brief))
        if task == "exercises":
            return json.dumps({"exercises": self.exercises(brief)})
        if task == "lesson_group":
            return json.dumps({"lessons": [self.lesson(b) for b in brief["lessons"]]})
        if task == "judge":
            return json.dumps(self.judge(brief))
        if task == "gaps":
            return json.dumps(self.gaps(brief))
        raise ValueError(f"CourseAuthor cannot answer task {task!r}")

    def metadata_core(self, brief: dict[str, Any]) -> dict[str, Any]:
        topic = brief["topic"]
        concepts = [c for s in brief["sections"] for c in s["key_concepts"]]
        levels = ["understand", "apply", "analyze", "apply", "evaluate", "create"]
        # As the prompt asks: one outcome per section, about its key concepts (at least 3); a
        # course of more sections than MAX_OUTCOMES shares outcomes between sections.
        n_sections = len(brief["sections"])
        n_out = min(MAX_OUTCOMES, max(3, n_sections))
        outcomes = []
        for i in range(n_out):
            section = brief["sections"][i % n_sections]
            focus = section["key_concepts"][(i // n_sections) % len(section["key_concepts"])]
            text = f"{_BLOOM_VERBS[levels[i % 6]]} {focus} ({section['title']}) with a worked example"
            if n_sections > n_out:  # outcome i is about every section sharing it: i, i + 12, ...
                shared = [brief["sections"][j] for j in range(i, n_sections, n_out)]
                text = f"{_BLOOM_VERBS[levels[i % 6]]} " + ", ".join(x["key_concepts"][0] for x in shared)
                text = _clip(text, 200) + " with worked examples"
            outcomes.append({"text": text, "bloom_level": levels[i % 6]})
        sections = []
        for si, s in enumerate(brief["sections"]):
            lessons = []
            for j in range(s["lessons"]):
                concept = s["key_concepts"][j % len(s["key_concepts"])]
                lessons.append(
                    {
                        "title": f"{concept.capitalize()}: {_ANGLES[j % len(_ANGLES)]} ({s['title']}, part {j + 1})",
                        # The section's own outcome, and the extra ones written from its concepts.
                        "outcomes": sorted(
                            {
                                si % n_out + 1,
                                *(k + 1 for k in range(n_sections, n_out) if k % n_sections == si),
                            }
                        ),
                    }
                )
            sections.append(
                {"summary": f"This section covers {', '.join(s['key_concepts'])}.", "lessons": lessons}
            )
        return {
            "course_title": f"{topic}: a practical course",
            "description": f"A course on {topic} for {brief['audience']}, built around worked examples and practice.",
            "learning_outcomes": outcomes,
            "pedagogical_strategy": "Each lesson explains one idea with a worked example, then checks it with short exercises; later lessons build on earlier ones.",
            "domain_taxonomy": [topic, *concepts[:5]],
            "sections": sections,
        }

    def metadata_extras(self, brief: dict[str, Any]) -> dict[str, Any]:
        return {
            "target_audience": f"{brief['audience']} who want to learn {brief['topic']}.",
            "prerequisites": [],
            "time_estimate_minutes": 25 * int(brief["lessons"]),
            "style_guidelines": "Short paragraphs, one concrete example per idea, plain language.",
        }

    def gaps(self, brief: dict[str, Any]) -> dict[str, Any]:
        """Phase 5's missing lessons: one per empty section and untaught outcome, then enough
        more (in the sections with fewest lessons) to reach `needed`; outcome k belongs to
        section k, as `metadata_core` writes them."""
        sections, n_out = brief["sections"], max(1, len(brief["outcomes"]))
        counts = [len(s["lessons"]) for s in sections]
        planned: list[dict[str, Any]] = []

        def add(si: int, outcome: int) -> None:
            s = sections[si]
            counts[si] += 1
            concept = s["key_concepts"][counts[si] % len(s["key_concepts"])]
            angle = _ANGLES[counts[si] % len(_ANGLES)]
            planned.append(
                {
                    "section": si + 1,
                    "title": f"{concept.capitalize()}: {angle} ({s['title']}, part {counts[si]})",
                    "outcomes": [outcome],
                }
            )

        for number in brief.get("empty_sections", []):
            add(number - 1, (number - 1) % n_out + 1)
        for n in brief.get("untaught", []):
            if not any(n in p["outcomes"] for p in planned):
                add((n - 1) % len(sections), n)
        while len(planned) < brief.get("needed", 0):
            si = min(range(len(sections)), key=counts.__getitem__)
            add(si, si % n_out + 1)
        return {"lessons": planned}

    def judge(self, brief: dict[str, Any]) -> dict[str, Any]:
        """A satisfied reviewer: 4/4/4, every answer key right, every claim supported."""
        return {
            "correctness": 4,
            "comprehensiveness": 4,
            "readability": 4,
            "teaches_outcomes": True,
            "reasons": [],
            "exercises": [
                {"number": e["number"], "answer_correct": True, "problem": ""}
                for e in brief.get("exercises", [])
            ],
            "claims": [{"number": c["number"], "supported": True} for c in brief.get("claims", [])],
        }

    def lesson(self, brief: dict[str, Any]) -> dict[str, Any]:
        low, high = brief["words"]
        target = self._words or (low + high) // 2
        outcomes = brief["outcomes"]
        if self._off_topic(brief):
            body = _OFF_TOPIC
        else:
            focus = " ".join(o["text"] for o in outcomes)
            # Led by the lesson's own title, so the lessons of one section (which share their
            # outcome) stay distinct.
            title = brief["lesson_title"]
            # Shaped as teaching, not announcing (the `teaches` gate reads sentence form): a
            # statement, an example and a step, never "in this lesson we will".
            body = (
                f"{title}. A worked example of {title} follows. Here we {focus[0].lower()}{focus[1:]}. "
                f"For example, we practise {title} step by step. "
            )
            if brief.get("sources"):
                # A sourced lesson's own sentences speak to the learner (grounding counts no
                # instruction as a claim): its facts are the restated sources below.
                body = (
                    f"Practise {title} step by step. Try to {focus[0].lower()}{focus[1:]}. "
                    f"Check each step of {title} against the source, for example its first sentence. "
                )
        words = body.split()
        content_words = [words[i % len(words)] for i in range(target)]
        # With sources, the lesson restates them first (so grounding finds its claims supported).
        excerpts = " ".join(s["excerpt"] for s in brief.get("sources", [])[:1])
        # At most ~90 words of them (a long excerpt would run the lesson past its bounds).
        lead = excerpts.split()[:90] if excerpts and not self._off_topic(brief) else []
        content_words = content_words[: max(0, target - len(lead))]
        # Ends with its last complete sentence, as a writer would (the ending gate checks it).
        ends = [i for i, w in enumerate(content_words) if w.endswith(".")]
        if ends and len(lead) + ends[-1] + 1 >= low:
            content_words = content_words[: ends[-1] + 1]
        content = (" ".join(lead) + "\n\n" if lead else "") + " ".join(content_words)
        sources = [s["id"] for s in brief.get("sources", [])[:1]]
        if brief.get("exercises_apart"):  # asked in a call of their own
            return {"content": content, "citations": sources}
        return {"content": content, "exercises": self.exercises(brief), "citations": sources}

    def exercises(self, brief: dict[str, Any]) -> list[dict[str, Any]]:
        """One multiple-choice exercise per outcome (at most four), from the lesson's title (a
        lesson's brief, or an exercises brief asked apart from its lesson)."""
        section, outcomes = brief["section"], brief["outcomes"]
        return [
            {
                "type": "multiple_choice",
                "question": _QUESTIONS[sum(map(ord, brief["lesson_title"])) % len(_QUESTIONS)].format(
                    title=brief["lesson_title"]
                ),
                # Within the schema's bounds (options 160, answers 200 characters) even for long
                # titles and outcomes: the right option and the answer are the same words.
                "options": [
                    _clip(f"{brief['lesson_title']}: {o['text']}", 150),
                    _clip(f"{brief['lesson_title']} is unrelated to {section}", 150),
                    "None of the above",
                ],
                "answer": _clip(f"{brief['lesson_title']}: {o['text']}", 150),
                "explanation": _clip(
                    f"{brief['lesson_title']} shows how to {o['text'][0].lower()}{o['text'][1:]}.", 290
                ),
                "outcome": o["number"],
            }
            for o in outcomes[:4]
        ]
