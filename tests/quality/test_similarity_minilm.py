"""Slow: the real all-MiniLM-L6-v2 against lesson-length texts, with the hosted profile's
thresholds. Run with `-s` to see the measured cosines (they calibrate `gates.similarity`).

Each topic has one outcome, a lesson that teaches it, and a lesson on a related but different
subject (same field, wrong outcome); the other topics' lessons are the off-topic cases.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from courseforge.config.loader import load_config
from courseforge.config.settings import GateSettings
from courseforge.domain.drafts import (
    ExerciseDraft,
    LessonDraft,
    LessonPlanDraft,
    MetadataCoreDraft,
    OutcomeDraft,
    SectionPlanDraft,
)
from courseforge.pipeline import CourseState, PipelineContext, validate_analysis
from courseforge.pipeline.metadata import _drop_surplus_outcomes, _retitle_misplaced, _unfitted_sections
from courseforge.providers.embeddings import CachedEmbedder, make_embedder
from courseforge.quality import SimilarityGate, evaluate_lesson, lesson_similarity
from courseforge.quality.base import GateContext
from engine_helpers import EmbedOnly

pytestmark = pytest.mark.embedding_model


@dataclass(frozen=True)
class Topic:
    key: str
    outcome: str
    on_topic: str
    related: str
    #: Further outcomes the on-topic lesson also teaches, and one it does not.
    also_taught: tuple[str, str]
    neglected: str


LISTCOMP = """\
## List comprehensions

A list comprehension builds a new list from an existing one in a single, readable expression.
The basic form is `[expression for item in iterable]`. For example, `squares = [n * n for n in
numbers]` takes every number in `numbers`, squares it, and collects the results into a new list,
leaving the original list unchanged.

You can filter items by adding a condition at the end: `[n for n in numbers if n % 2 == 0]` keeps
only the even numbers. Transforming and filtering combine naturally: `[name.upper() for name in
names if name.startswith("a")]` keeps the names that start with "a" and converts each one to
upper case.

Compare this with the equivalent loop:

```python
result = []
for name in names:
    if name.startswith("a"):
        result.append(name.upper())
```

The comprehension says the same thing in one line, and because it produces the list directly
there is no empty list to set up and no `append` call to forget. Read it from left to right as
"the upper-cased name, for every name in names, if the name starts with a".

Use a comprehension when the transformation is simple enough to read at a glance. If you need
several nested conditions or side effects such as printing or writing to a file, a regular for
loop is clearer. A common mistake is to put the `if` clause before the `for`; Python expects the
filter after the loop clause. Another is to use a comprehension only for its side effects, which
builds a list nobody uses. Practise by rewriting three loops from your own code as comprehensions
that transform and filter a list, and check that each produces the same result as the loop.
"""

DICTIONARIES = """\
## Dictionaries

A dictionary stores pairs of keys and values, so you can look a value up by its key instead of by
its position. You create one with curly braces: `ages = {"ana": 31, "ben": 27}`. Reading
`ages["ana"]` gives 31, and assigning `ages["carl"] = 40` adds a new pair.

Keys must be immutable values such as strings, numbers or tuples, and each key appears only once:
assigning to an existing key replaces its value. Looking up a key that is missing raises a
`KeyError`, so when a key may be absent use `ages.get("dora")`, which returns `None`, or
`ages.get("dora", 0)` to supply a default.

You can loop over a dictionary in three ways. `for key in ages` visits the keys, `ages.values()`
gives the values, and `ages.items()` gives `(key, value)` pairs that you can unpack:
`for name, age in ages.items(): print(name, age)`. Since Python 3.7 dictionaries remember the
order in which keys were inserted.

To remove a pair use `del ages["ben"]` or `ages.pop("ben")`, which also returns the value. The
`in` operator checks for a key: `"ana" in ages` is `True`. Dictionaries are the right tool when
you need fast lookups by a name or an identifier, for example counting how often each word
appears in a text: start with an empty dictionary and add one to the count of each word as you
read it. Practise by building a dictionary of your friends' birthdays and printing the ones in
the current month.
"""

GREETINGS = """\
## Saludos y despedidas: greeting people in Spanish

Spanish speakers greet each other differently depending on the time of day and on how well they
know each other. In the morning, until about noon, say "Buenos días". In the afternoon and early
evening say "Buenas tardes", and after dark "Buenas noches", which works both as a greeting and
as a way of saying good night.

With friends, family and people your own age, the informal "Hola" is always safe, often followed
by "¿Qué tal?" or "¿Cómo estás?" (how are you?). With a stranger, an older person, or in a
shop, office or business meeting, use the formal "¿Cómo está usted?" and a time-of-day greeting:
"Buenos días, señora. ¿Cómo está usted?" A typical answer is "Muy bien, gracias, ¿y usted?"

When you are introduced to someone, say "Mucho gusto" or "Encantado" (a man) / "Encantada" (a
woman), which mean "pleased to meet you".

To say goodbye, "Adiós" is universal. "Hasta luego" (see you later) is the most common farewell
in everyday life, "Hasta mañana" means see you tomorrow, and "Nos vemos" is a relaxed, informal
way to say see you. In Spain friends often greet each other with two kisses on the cheek, while
in a formal setting a handshake is expected.

Practise with a partner: act out meeting a new colleague at 9 a.m. (formal), then running into
a friend in the evening (informal), and end each conversation with a suitable farewell.
"""

NUMBERS = """\
## Los números: counting from one to one hundred in Spanish

Spanish numbers from one to ten are uno, dos, tres, cuatro, cinco, seis, siete, ocho, nueve and
diez. Learn them by heart first, because the larger numbers are built from them.

Eleven to fifteen have their own forms: once, doce, trece, catorce, quince. From sixteen to
nineteen the numbers combine "diez y" with a unit and are written as one word: dieciséis,
diecisiete, dieciocho, diecinueve. The twenties work the same way: veinte, veintiuno, veintidós,
veintitrés, and so on up to veintinueve.

From thirty onwards the tens are separate words joined to the units with "y": treinta y uno,
cuarenta y dos, cincuenta y cinco. The tens are treinta, cuarenta, cincuenta, sesenta, setenta,
ochenta and noventa, and one hundred is "cien".

"Uno" changes before a masculine noun to "un" (un libro) and becomes "una" before a feminine
noun (una casa); the same happens in veintiún libros and veintiuna casas. Numbers are used for
prices, phone numbers and ages: Spanish says "tengo veinte años", literally "I have twenty
years", to give an age.

Practise by reading prices aloud from a menu, saying your phone number digit by digit, and
counting backwards from fifty in tens and units.
"""

PHOTOSYNTHESIS = """\
## How plants turn light into food

Photosynthesis is the process by which plants, algae and some bacteria capture the energy of
sunlight and store it as chemical energy in sugar. It takes place in the chloroplasts of leaf
cells, which contain the green pigment chlorophyll.

The overall reaction is: carbon dioxide + water + light energy → glucose + oxygen, or
6 CO2 + 6 H2O → C6H12O6 + 6 O2. Plants take in carbon dioxide from the air through small pores
called stomata and draw water up from the soil through their roots.

Photosynthesis happens in two linked stages. In the light-dependent reactions, in the thylakoid
membranes, chlorophyll absorbs light. That energy splits water molecules, releasing oxygen as a
by-product, and is captured in two energy carriers, ATP and NADPH. In the second stage, the
Calvin cycle in the stroma, the plant uses ATP and NADPH to fix carbon dioxide into
three-carbon sugars, which are then built into glucose.

So light energy becomes chemical energy in two steps: first into ATP and NADPH, then into the
bonds of glucose. The plant later uses that glucose for growth or stores it as starch, and
animals that eat plants depend on this stored energy too.

The rate of photosynthesis depends on light intensity, carbon dioxide concentration and
temperature. Check your understanding: explain in your own words why a plant kept in the dark
stops producing oxygen, and where the energy in a spoonful of sugar originally came from.
"""

RESPIRATION = """\
## Cellular respiration

Every living cell needs a steady supply of energy, and it gets that energy by breaking down
glucose in a process called cellular respiration. In plants and animals alike most of this
happens in the mitochondria, often called the powerhouses of the cell.

The overall reaction is: glucose + oxygen → carbon dioxide + water + energy, or
C6H12O6 + 6 O2 → 6 CO2 + 6 H2O + ATP. The energy released is stored in ATP, the molecule cells
spend to power muscle contraction, active transport and building new molecules.

Respiration happens in three stages. Glycolysis, in the cytoplasm, splits one glucose molecule
into two molecules of pyruvate and yields a small amount of ATP. The Krebs cycle, in the
mitochondrial matrix, breaks pyruvate down further and releases carbon dioxide. Finally the
electron transport chain on the inner mitochondrial membrane uses oxygen to produce most of the
ATP, about 30 to 32 molecules per glucose in total.

When oxygen is scarce, for example in a sprinting athlete's muscles, cells fall back on
anaerobic respiration, which produces lactic acid and far less ATP. Yeast does something similar
and produces ethanol and carbon dioxide, which is why bread rises and grape juice ferments.

Check your understanding: describe where in the cell each stage takes place and why an athlete
breathes heavily after a race.
"""

COMPOUND_INTEREST = """\
## Compound interest: how savings grow

When you keep money in a savings account, the bank pays you interest. With compound interest,
the interest you earn is added to your balance, and in the next period you earn interest on that
interest too. Over many years this makes savings grow much faster than simple interest would.

The future value of a deposit is given by the compound interest formula
A = P(1 + r/n)^(nt), where P is the principal (the amount you deposit), r the annual interest
rate as a decimal, n the number of times interest is compounded per year, and t the number of
years. A is the amount in the account at the end.

Worked example: you deposit P = 1,000 dollars at an annual rate of 5 % (r = 0.05), compounded
monthly (n = 12), for t = 10 years. Then r/n = 0.05 / 12 ≈ 0.004167 and nt = 120, so
A = 1000 × (1.004167)^120 ≈ 1,647.01 dollars. The interest earned is A − P ≈ 647.01 dollars.
With annual compounding (n = 1) the same deposit would grow to 1000 × 1.05^10 ≈ 1,628.89 dollars,
so more frequent compounding earns a little more.

Common mistakes are entering the rate as 5 instead of 0.05, forgetting to divide the rate by n,
and multiplying by t instead of raising to the power nt. Practise: calculate the future value of
2,500 dollars saved at 4 % compounded quarterly for 6 years, then compare it with the same
deposit compounded annually.
"""

BUDGET = """\
## Making a monthly budget

A budget is a plan for how you will spend the money you earn each month. It helps you pay your
bills on time, avoid debt and put something aside for the future.

Start by listing your income after tax: your salary and any other regular money you receive.
Then list your fixed expenses, the ones that are the same every month, such as rent, insurance,
a phone contract and loan repayments. Next estimate your variable expenses — groceries,
transport, eating out, clothes and entertainment — by looking at your bank statements for the
last three months.

A popular guideline is the 50/30/20 rule: about 50 % of your income goes to needs, 30 % to
wants and 20 % to savings or paying off debt. If your needs take more than half, look for
savings there first, for instance a cheaper phone plan or sharing a flat.

Track your spending during the month with an app or a simple spreadsheet and compare it with
your plan at the end of the month. Most people underestimate small everyday purchases like
coffee and snacks, which add up quickly. Keep an emergency fund of three to six months of
expenses for surprises such as a broken car or a lost job.

Practise by writing down last month's income and spending, sorting each item into needs, wants
and savings, and deciding on one change for next month.
"""

TOPICS = (
    Topic(
        "listcomp",
        "Write Python list comprehensions that transform and filter the items of an existing list.",
        LISTCOMP,
        DICTIONARIES,
        (
            "Decide when a regular for loop is clearer than a list comprehension.",
            "Rewrite a for loop that appends to a list as an equivalent list comprehension.",
        ),
        "Use dictionaries to count how often each word appears in a text.",
    ),
    Topic(
        "spanish",
        "Use common Spanish greetings and farewells appropriately in formal and informal situations.",
        GREETINGS,
        NUMBERS,
        (
            "Choose between formal usted and informal tú forms when greeting someone.",
            "Introduce yourself to a new colleague in Spanish.",
        ),
        "Count from one to one hundred in Spanish.",
    ),
    Topic(
        "photosynthesis",
        "Explain how plants convert light energy into chemical energy during photosynthesis.",
        PHOTOSYNTHESIS,
        RESPIRATION,
        (
            "Describe the role of the Calvin cycle in fixing carbon dioxide into sugar.",
            "Identify the factors that limit the rate of photosynthesis.",
        ),
        "Describe the stages of cellular respiration in the mitochondria.",
    ),
    Topic(
        "interest",
        "Calculate the future value of a savings deposit using the compound interest formula.",
        COMPOUND_INTEREST,
        BUDGET,
        (
            "Compare the growth of savings under annual and monthly compounding.",
            "Identify common mistakes when applying the compound interest formula.",
        ),
        "Build a monthly budget using the 50/30/20 rule.",
    ),
)


@dataclass(frozen=True)
class Measured:
    on: float
    related: float
    off: float  # the highest of the other topics' lessons
    also_taught: tuple[float, float]
    neglected: float


async def _measure(embedder: CachedEmbedder) -> dict[str, Measured]:
    async def sim(text: str, outcome: str) -> float:
        values = await lesson_similarity(text, {"LO1": outcome}, embedder)
        return float(values["similarity"])

    measured = {}
    for topic in TOPICS:
        others = [t for t in TOPICS if t is not topic]
        off = [await sim(text, topic.outcome) for t in others for text in (t.on_topic, t.related)]
        measured[topic.key] = Measured(
            on=await sim(topic.on_topic, topic.outcome),
            related=await sim(topic.related, topic.outcome),
            off=max(off),
            also_taught=(
                await sim(topic.on_topic, topic.also_taught[0]),
                await sim(topic.on_topic, topic.also_taught[1]),
            ),
            neglected=await sim(topic.on_topic, topic.neglected),
        )
    return measured


@pytest.fixture(scope="module")
def minilm() -> CachedEmbedder:
    return make_embedder("all-MiniLM-L6-v2")


@pytest.fixture(scope="module")
def measured(minilm: CachedEmbedder) -> dict[str, Measured]:
    return asyncio.run(_measure(minilm))


@pytest.fixture(scope="module")
def hosted_gates() -> GateSettings:
    return load_config("hosted", env={}).settings.gates


def test_report_measured_cosines(measured: dict[str, Measured]) -> None:
    print("\ntopic           on   related  off(max)  also-taught  neglected")
    for key, m in measured.items():
        also = "/".join(f"{s:.2f}" for s in m.also_taught)
        print(f"{key:14} {m.on:5.2f} {m.related:8.2f} {m.off:9.2f}  {also:>11} {m.neglected:10.2f}")


@pytest.mark.parametrize("key", [t.key for t in TOPICS])
def test_on_topic_beats_off_topic_by_a_clear_margin(measured: dict[str, Measured], key: str) -> None:
    m = measured[key]
    assert m.on >= m.off + 0.4
    assert m.on >= m.related + 0.2
    # The lesson also serves its secondary outcomes better than one it ignores.
    assert min(m.also_taught) > m.neglected


@pytest.mark.parametrize("key", [t.key for t in TOPICS])
def test_hosted_thresholds_pass_on_topic_and_fail_off_topic(
    measured: dict[str, Measured], hosted_gates: GateSettings, key: str
) -> None:
    gate = SimilarityGate(hosted_gates.similarity["all-MiniLM-L6-v2"])
    assert (gate.thresholds.pass_at, gate.thresholds.severe_below) == (0.34, 0.34)
    m = measured[key]
    on = gate.check(None, GateContext(values={"similarity": m.on}))
    off = gate.check(None, GateContext(values={"similarity": m.off}))
    assert on.verdict == "pass"
    assert off.verdict == "severe"


async def test_evaluate_lesson_end_to_end(minilm: CachedEmbedder, hosted_gates: GateSettings) -> None:
    topic = TOPICS[2]
    exercise = ExerciseDraft(
        type="true_false",
        question="Plants release oxygen when they split water.",
        answer="true",
        explanation="The light-dependent reactions split water and release oxygen.",
        outcome=1,
    )
    good = LessonDraft(content=topic.on_topic, exercises=[exercise])
    results = await evaluate_lesson(good, {"LO3": topic.outcome}, minilm, hosted_gates)
    assert [r.verdict for r in results] == ["pass", "pass", "pass"]
    drifted = LessonDraft(content=BUDGET, exercises=[exercise])
    results = await evaluate_lesson(drifted, {"LO3": topic.outcome}, minilm, hosted_gates)
    assert results[2].verdict == "severe"
    assert results[2].reasons[0].startswith("The lesson drifted from outcome LO3 ('Explain how plants")


async def test_outcomes_that_miss_sections_are_caught_with_minilm(minilm: CachedEmbedder) -> None:
    """The outcomes the 1.5B model wrote for python-basics in an offline run: generic ones that
    left "Making decisions", "Repeating work" and "Functions" without an outcome (their lessons
    then failed the similarity gate on every attempt); outcomes written per section fit all."""
    settings = load_config("offline", env={}).settings
    analysis = validate_analysis(json.loads(Path("examples/python-basics.json").read_text()))
    state = CourseState(analysis=analysis, course_id="c", lesson_counts=[2] * 5)
    ctx = PipelineContext(settings, EmbedOnly(minilm), Decimal(1))  # type: ignore[arg-type]

    def draft(texts: list[str]) -> MetadataCoreDraft:
        return MetadataCoreDraft.model_construct(
            learning_outcomes=[OutcomeDraft(text=t, bloom_level="apply") for t in texts]
        )

    generic = [
        "Identify Python programming fundamentals",
        "Explain the difference between Python and other programming languages",
        "Apply Python programming to automate everyday tasks",
        "Organise code into functions and use lists and dictionaries",
        "Compare and contrast Python with other programming languages",
    ]
    problems = await _unfitted_sections(state, draft(generic), ctx)
    print("\n".join(problems))
    assert [p.split(" (")[0] for p in problems] == ["section 2", "section 3", "section 5"]
    per_section = [
        "Run a Python script that uses variables, print and input",
        "Use booleans, comparison operators and if/elif/else to make decisions",
        "Write for and while loops that use range to repeat work",
        "Store and iterate over data in lists and dictionaries",
        "Define functions with parameters, return values and scope",
    ]
    assert await _unfitted_sections(state, draft(per_section), ctx) == []


async def test_lesson_titles_shifted_by_a_section_are_retitled_with_minilm(minilm: CachedEmbedder) -> None:
    """The lesson titles the 1.5B model wrote for python-basics in an offline run, shifted by one
    section from section 2 on; only the shifted ones are replaced."""
    settings = load_config("offline", env={}).settings
    analysis = validate_analysis(json.loads(Path("examples/python-basics.json").read_text()))
    state = CourseState(analysis=analysis, course_id="c", lesson_counts=[2] * 5)
    ctx = PipelineContext(settings, EmbedOnly(minilm), Decimal(1))  # type: ignore[arg-type]
    titles = [
        ["Running Python", "Variables"],
        ["If/elif/else", "For Loops"],
        ["Lists", "Dictionaries"],
        ["Defining Functions", "Parameters and Return Values"],
        ["Review of Key Concepts"],
    ]
    draft = MetadataCoreDraft.model_construct(
        sections=[
            SectionPlanDraft.model_construct(
                summary="s", lessons=[LessonPlanDraft.model_construct(title=t, outcomes=[1]) for t in ts]
            )
            for ts in titles
        ]
    )
    fixes = await _retitle_misplaced(state, draft, ctx)
    print("\n".join(f.reason for f in fixes))
    after = [[lp.title for lp in plan.lessons] for plan in draft.sections]
    assert after[0] == ["Running Python", "Variables"] and after[1][0] == "If/elif/else"
    assert after[1][1].startswith("Making decisions: ")
    assert all(t.startswith("Repeating work: ") for t in after[2])
    assert all(t.startswith("Collections: ") for t in after[3])
    assert len(set(after[2])) == 2 and len(set(after[3])) == 2  # siblings stay distinct


async def test_surplus_outcomes_seen_offline_are_dropped_with_minilm(minilm: CachedEmbedder) -> None:
    """The nine outcomes the 1.5B model wrote for the five sections of python-basics in an
    offline run: the two about subjects the course does not have are dropped."""
    settings = load_config("offline", env={}).settings
    analysis = validate_analysis(json.loads(Path("examples/python-basics.json").read_text()))
    state = CourseState(analysis=analysis, course_id="c", lesson_counts=[2] * 5)
    ctx = PipelineContext(settings, EmbedOnly(minilm), Decimal(1))  # type: ignore[arg-type]
    texts = [
        "identify the basics of Python programming",
        "write simple Python scripts that read input and display output",
        "use variables to store and manipulate data",
        "write code that uses control flow to make decisions and repeat work",
        "use loops to automate repetitive tasks",
        "use lists and dictionaries to store and manipulate data",
        "define and use functions to encapsulate reusable code",
        "organise code into modules and packages",
        "write unit tests to verify the correctness of code",
    ]
    draft = MetadataCoreDraft.model_construct(
        learning_outcomes=[OutcomeDraft(text=t, bloom_level="apply") for t in texts], sections=[]
    )
    fixes = await _drop_surplus_outcomes(state, draft, ctx)
    print("\n".join(f.reason for f in fixes))
    kept = [o.text for o in draft.learning_outcomes]
    assert "write unit tests to verify the correctness of code" not in kept
    assert "organise code into modules and packages" not in kept
    assert "use lists and dictionaries to store and manipulate data" in kept
    assert "use loops to automate repetitive tasks" in kept
    assert len(kept) >= 5
