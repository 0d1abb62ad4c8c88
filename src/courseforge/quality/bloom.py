"""Bloom's taxonomy verbs: which main verb of a learning outcome is measurable, and at which level.

Published Bloom verb lists disagree at the edges (is "compare" understand or analyze?), so a verb
may sit at more than one level here; a verb fits an outcome when its declared level lists it.
The table is English only: `OutcomesGate(verbs=None)` skips the check for other languages.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["BLOOM_VERBS", "EXAMPLES", "NOT_MEASURABLE", "levels_of", "main_verb"]


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


BLOOM_VERBS: Mapping[str, frozenset[str]] = {
    "remember": _words(
        "define describe identify label list match name outline recall recite recognize reproduce "
        "recognise select state record recount"
    ),
    "understand": _words(
        "classify compare contrast describe discuss distinguish estimate explain exemplify extend "
        "generalize generalise illustrate infer interpret paraphrase predict rephrase restate "
        "summarize summarise translate"
    ),
    "apply": _words(
        "apply calculate carry choose complete compute conduct construct convert demonstrate "
        "execute implement modify operate perform practice practise prepare produce show "
        "solve sketch use write "
        # Observable actions teachers write for technical outcomes (issue 24: refused before on
        # outcomes written for a project's own tutorial and for the outside set).
        "configure install record store format instantiate unpack raise fit plot draw loop"
    ),
    "analyze": _words(
        "analyze analyse attribute break categorize compare contrast debug deconstruct diagnose "
        "differentiate discriminate distinguish examine investigate organize outline relate "
        "organise categorise separate test trace detect"
    ),
    "evaluate": _words(
        "appraise argue assess check choose critique decide defend evaluate judge justify measure "
        "prioritize prioritise rank rate recommend review select support test validate verify weigh"
    ),
    "create": _words(
        "assemble build compose construct create design develop devise formulate generate invent "
        "make plan produce propose write"
    ),
}

#: A few typical verbs per level, for feedback ("use a verb such as ...").
EXAMPLES: Mapping[str, str] = {
    "remember": "define, list, recall",
    "understand": "explain, summarize, classify",
    "apply": "use, solve, calculate",
    "analyze": "analyze, compare, debug",
    "evaluate": "evaluate, justify, critique",
    "create": "design, build, compose",
}

#: Verbs that name an inner state nobody can observe; an outcome built on them cannot be assessed.
NOT_MEASURABLE = _words(
    "understand know learn appreciate comprehend grasp realize realise master believe become "
    "familiarize familiarise gain be see"
)

_ALL_VERBS = frozenset().union(*BLOOM_VERBS.values())
# "Students will be able to", "By the end of this lesson, learners should", "You can", ...
_LEAD_IN = re.compile(
    r"^\s*(?:by the end of (?:this|the) \w+,?\s*)?"
    r"(?:(?:the )?(?:students?|learners?|participants?|you|they)\s+(?:will|should|can|shall|must)\s+)?"
    r"(?:be able to\s+)?",
    re.IGNORECASE,
)
_WORD = re.compile(r"[a-z]+")
#: How many words after the lead-in may precede the main verb ("Correctly and quickly identify").
_SCAN_WORDS = 4


def _base_forms(word: str) -> list[str]:
    """The word and its likely base forms (identifies → identify, writes → write, uses → use)."""
    forms = [word]
    if word.endswith("ies"):
        forms.append(word[:-3] + "y")
    if word.endswith("es"):
        forms.append(word[:-2])
    if word.endswith("s"):
        forms.append(word[:-1])
    return forms


def main_verb(text: str) -> str | None:
    """The outcome's main verb in base form, or None when none of the first words is a verb we
    know (measurable or not)."""
    rest = _LEAD_IN.sub("", text, count=1).lower()
    for word in _WORD.findall(rest)[:_SCAN_WORDS]:
        for form in _base_forms(word):
            if form in _ALL_VERBS or form in NOT_MEASURABLE:
                return form
    return None


def levels_of(verb: str) -> list[str]:
    """The Bloom levels that list `verb`, lowest first."""
    return [level for level, verbs in BLOOM_VERBS.items() if verb in verbs]
