"""Safety: personal data and toxic or profane text in generated content, zero tolerance.

What each detector catches and misses is written down in docs/quality.md; in short:
- email: address-shaped strings, except the documentation domains of RFC 2606/6761
  (example.com/.org/.net, *.example, *.test, *.invalid, localhost);
- phone: numbers `phonenumbers` finds *valid* for the configured region or written with a
  country code (version strings, years and ISBNs pass; US 555 fiction numbers are flagged);
- card: 13-19 digits (spaces or dashes allowed) with a known card prefix and a valid Luhn sum;
- ssn: US social security numbers written ddd-dd-dddd with a valid area/group/serial;
- iban: IBANs whose mod-97 check holds; nino: UK National Insurance numbers;
- address: "<number> <Name...> <street suffix>" street lines, PO boxes and UK postcodes;
- profanity: the English list shipped by `glin-profanity`, minus clinical and everyday words
  courses need (sex, penis, anus, rape, hoe, tit, ...), matched as whole words or phrases;
- toxicity: `alt-profanity-check`'s offline linear model per sentence, counted only when the
  sentence also addresses someone (you, people, they ...) or names an insult — the model alone
  flags harmless imperatives such as "screw the lid on".

The gate is pure and local (no model call, no network); the classifier loads once, lazily.
"""

from __future__ import annotations

import json
import re
import sys
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from .base import Gate, GateContext, GateResult

__all__ = [
    "DEFAULT_ALLOWED",
    "PII_KINDS",
    "Finding",
    "SafetyGate",
    "find_pii",
    "find_toxic",
    "is_warm",
    "luhn_ok",
    "prewarm",
    "sentences",
]

PII_KINDS = ("email", "phone", "card", "ssn", "iban", "nino", "address")


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str  # a PII kind, "profanity" or "toxicity"
    text: str
    detail: str = ""


_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])|\n{2,}|\n(?=\s*(?:[-*#>]|\d+\.)\s)")


def sentences(text: str) -> list[str]:
    """Sentences and list items of markdown text (code fences kept as one piece)."""
    return [s.strip() for s in _SENTENCE.split(text) if s and s.strip()]


# -- personal data ------------------------------------------------------------------------------
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@((?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,})(?![\w-])")
_DOC_DOMAINS = re.compile(r"(?:^|\.)(?:example\.(?:com|org|net)|example|test|invalid|localhost)$", re.I)
_CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
_CARD_PREFIX = re.compile(r"^(?:4|5[1-5]|2[2-7]|3[47]|6(?:011|5)|35)")
_SSN = re.compile(r"(?<![\d-])(\d{3})-(\d{2})-(\d{4})(?![\d-])")
_IBAN = re.compile(r"\b([A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?)\b")
_NINO = re.compile(
    r"\b(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b"
)
_SUFFIX = (
    r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Place|Pl|Terrace|"
    r"Way|Square|Sq|Highway|Hwy|Parkway|Pkwy|Crescent|Close|Circle|Cir)"
)
_STREET = re.compile(
    rf"\b\d{{1,5}}[A-Za-z]?\s+(?:[NSEW]\.?\s+)?(?:[A-Z][a-z]+\.?\s+){{1,3}}{_SUFFIX}\b\.?"
    r"(?:,?\s*(?:Apt|Suite|Unit|#)\s*\w+)?"
)
_ANY_DIGIT = re.compile(r"\d")
_NOT_DIGIT = re.compile(r"\D")
#: What each pattern cannot match without: a card's 13 digits, an SSN's ddd-dd-dddd, an IBAN's
#: country and check digits, an NI number's three digit pairs, a postcode's inward part; a street
#: address's number before a capitalised word.
_NEEDS = {
    "card": re.compile(r"\d(?:[ -]?\d){12}"),
    "ssn": re.compile(r"\d{3}-\d{2}-\d{4}"),
    "iban": re.compile(r"[A-Z]{2}\d{2}"),
    "nino": re.compile(r"\d{2} ?\d{2} ?\d{2}"),
    "postcode": re.compile(r"\d[A-Z]{2}\b"),
}
_STREET_NEEDS = re.compile(r"\d[A-Za-z]?\s+[A-Z]")
_PO_BOX = re.compile(r"\bP\.?\s?O\.?\s+Box\s+\d+\b", re.I)
_UK_POSTCODE = re.compile(r"\b[A-Z]{1,2}\d[A-Z\d]? \d[A-Z]{2}\b")


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum of a string of digits (card numbers)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _iban_ok(raw: str) -> bool:
    iban = raw.replace(" ", "")
    if not 15 <= len(iban) <= 34:
        return False
    moved = iban[4:] + iban[:4]
    number = "".join(str(int(c, 36)) for c in moved)
    return int(number) % 97 == 1


def _ssn_ok(area: str, group: str, serial: str) -> bool:
    return area not in ("000", "666") and not area.startswith("9") and group != "00" and serial != "0000"


#: A run of at least four digits, separators allowed between them: every phone number of every
#: region has one (the shortest national numbers have four digits).
_DIGIT_RUN = re.compile(r"\d(?:[\s().+/-]{0,3}\d){3,}")


def _phones(text: str, region: str) -> Iterable[Finding]:
    """Phone numbers (`phonenumbers`' matcher, leniency VALID). The matcher runs on the lines
    that hold a run of four or more digits only: a number never spans lines, and most lesson
    lines hold none, so it finds the same numbers at a fraction of its cost (it was a fifth of
    the engine's CPU per call)."""
    import phonenumbers

    lines = [line for line in text.splitlines() if _DIGIT_RUN.search(line)]
    if not lines:
        return
    for match in phonenumbers.PhoneNumberMatcher(
        "\n".join(lines), region, leniency=phonenumbers.Leniency.VALID
    ):
        yield Finding("phone", match.raw_string)


def find_pii(text: str, kinds: Sequence[str] = PII_KINDS, *, region: str = "US") -> list[Finding]:
    """Every personal-data finding in `text`, by kind.

    The patterns that need digits and never span lines (cards, SSNs, IBANs, NI numbers, UK
    postcodes) run on the lines that hold a digit only; emails only when there is an "@". The
    findings are the same as over the whole text, for a fraction of the regex work (most lesson
    lines hold neither)."""
    found: list[Finding] = []
    numbered = "\n".join(line for line in text.splitlines() if _ANY_DIGIT.search(line))
    # Each pattern below runs only where the cheap pattern it cannot match without does match
    # (a leading digit lets the regex engine skip ahead; the full patterns cannot).
    has = {name: bool(numbered and gate.search(numbered)) for name, gate in _NEEDS.items()}
    has["street"] = bool(numbered and _STREET_NEEDS.search(text))  # may wrap: the whole text
    if "email" in kinds and "@" in text:
        found += [
            Finding("email", m.group(0)) for m in _EMAIL.finditer(text) if not _DOC_DOMAINS.search(m.group(1))
        ]
    if "card" in kinds and has["card"]:
        for m in _CARD.finditer(numbered):
            digits = _NOT_DIGIT.sub("", m.group(0))
            if 13 <= len(digits) <= 19 and _CARD_PREFIX.match(digits) and luhn_ok(digits):
                found.append(Finding("card", m.group(0)))
    if "ssn" in kinds and has["ssn"]:
        found += [Finding("ssn", m.group(0)) for m in _SSN.finditer(numbered) if _ssn_ok(*m.groups())]
    if "iban" in kinds and has["iban"]:
        found += [Finding("iban", m.group(1)) for m in _IBAN.finditer(numbered) if _iban_ok(m.group(1))]
    if "nino" in kinds and has["nino"]:
        found += [Finding("nino", m.group(0)) for m in _NINO.finditer(numbered)]
    if "address" in kinds and numbered:
        # Street addresses and PO boxes may wrap onto the next line: the whole text for them.
        for pattern, where, needed in (
            (_STREET, text, has["street"]),
            (_PO_BOX, text, "box" in text.lower()),
            (_UK_POSTCODE, numbered, has["postcode"]),
        ):
            if needed:
                found += [Finding("address", m.group(0).strip()) for m in pattern.finditer(where)]
    if "phone" in kinds and numbered:
        taken = _NOT_DIGIT.sub("", " ".join(f.text for f in found if f.kind in ("card", "ssn", "iban")))
        found += [f for f in _phones(numbered, region) if _NOT_DIGIT.sub("", f.text) not in taken]
    return found


# -- toxic and profane text ---------------------------------------------------------------------
#: Listed words that courses legitimately use (biology, medicine, history, law, gardening, birds).
DEFAULT_ALLOWED = frozenset(
    [
        "anal",
        "anus",
        "big",
        "black",
        "bondage",
        "butt",
        "clitoris",
        "domination",
        "ejaculation",
        "erotic",
        "escort",
        "eunuch",
        "fecal",
        "genitals",
        "girl",
        "on",
        "hard",
        "core",
        "hardcore",
        "hoe",
        "homoerotic",
        "how",
        "to",
        "kill",
        "incest",
        "intercourse",
        "kinky",
        "lolita",
        "lovemaking",
        "negro",
        "nipple",
        "nipples",
        "nude",
        "nudity",
        "penis",
        "playboy",
        "rape",
        "raping",
        "rapist",
        "rectum",
        "sadism",
        "scat",
        "semen",
        "sex",
        "snatch",
        "suck",
        "sucks",
        "swastika",
        "taste",
        "my",
        "tied",
        "up",
        "tight",
        "white",
        "tit",
        "tongue",
        "in",
        "a",
        "topless",
        "twinkie",
        "undressing",
        "urethra",
        "play",
        "vagina",
        "voyeur",
        "vulva",
        "xx",
        # A placeholder in technical writing: R's manual names its distribution functions
        # "dxxx, pxxx, qxxx, rxxx" (issue 24's outside set flagged it as profanity).
        "xxx",
        "jelly",
        "donut",
        "wrapping",
        "men",
        "grope",
    ]
)
_ALLOWED_PHRASES = frozenset(
    {
        "big black",
        "girl on",
        "hard core",
        "how to kill",
        "taste my",
        "tied up",
        "tight white",
        "tongue in a",
        "urethra play",
        "jelly donut",
        "wrapping men",
    }
)
_TARGETED = re.compile(
    r"\b(?:you|your|you're|youre|u|ur|yourself|people|they|them|those|these|everyone|anyone|"
    r"idiots?|stupid|morons?|dumb|worthless|pathetic|losers?|trash|scum|vermin|disgusting|hate|"
    r"shut up|die)\b",
    re.I,
)


_WORD_RUN = re.compile(r"\w+")


@lru_cache(maxsize=1)
def _ascii_fold() -> dict[int, int] | None:
    """Translation table sending every character that `re.IGNORECASE` matches to an ASCII word
    character onto that character in lower case: A-Z, and (measured from `re` itself, not
    assumed) the few others — dotless ı, İ, long ſ, the Kelvin sign. None if some character
    matched two (no table can say so; the pre-check is then never used). ≈ 0.2 s, once."""
    table = {ord(c): ord(c.lower()) for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"}
    beyond_ascii = "".join(map(chr, range(128, sys.maxunicode + 1)))
    for c in set(re.findall("[a-z0-9_]", beyond_ascii, re.I)):
        matches = [a for a in "abcdefghijklmnopqrstuvwxyz0123456789_" if re.fullmatch(a, c, re.I)]
        if len(matches) != 1:
            return None
        table[ord(c)] = ord(matches[0])
    return table


@dataclass(frozen=True, slots=True)
class _Profanity:
    r"""The word list as one regex, behind an exact pre-check that skips the regex (a 3,600-char
    alternation tried at every position: ≈ 2 ms per lesson) when it cannot match.

    In any match, each maximal run of word characters of the term (`\w+`) lines up with a
    maximal run of the text: the characters around a term's run are whitespace (`\s+`), a
    non-word literal, or the regex's own lookbehind and lookahead, none of which match a word
    character, and IGNORECASE only pairs word characters with word characters. So a term can
    match only if every one of its runs, folded as IGNORECASE folds it, is a run of the text,
    and every other character of it (`$`, `!`, `*`, an emoji: uncased, so matched only as is)
    occurs in the text. When no term passes this the regex is skipped; otherwise it runs as
    before. Findings are identical by construction."""

    pattern: re.Pattern[str]
    #: First run of a term -> (runs, other characters) of each term starting with it.
    by_lead: dict[str, tuple[tuple[frozenset[str], frozenset[str]], ...]]
    #: The characters of each term without any word character.
    runless: tuple[frozenset[str], ...]
    #: A term the pre-check cannot reason about (a non-ASCII run, a cased symbol): always the regex.
    always: bool

    def finditer(self, text: str) -> Iterator[re.Match[str]]:
        if self.always or self._may_match(text):
            return self.pattern.finditer(text)
        return iter(())

    def _may_match(self, text: str) -> bool:
        fold = _ascii_fold()
        if fold is None or any(all(c in text for c in chars) for chars in self.runless):
            return True
        # For ASCII text, lower() is the fold (and much faster than translate).
        runs = set(_WORD_RUN.findall(text.lower() if text.isascii() else text.translate(fold)))
        return any(
            need <= runs and all(c in text for c in chars)
            for lead in runs.intersection(self.by_lead)
            for need, chars in self.by_lead[lead]
        )


@lru_cache(maxsize=4)
def _profanity_pattern(allowed: frozenset[str]) -> _Profanity | None:
    try:
        raw = resources.files("glin_profanity").joinpath("data/dictionaries/english.json").read_text("utf-8")
    except (ModuleNotFoundError, FileNotFoundError):
        return None
    words = json.loads(raw)["words"]
    skip = {w.casefold() for w in allowed} | _ALLOWED_PHRASES
    terms = sorted({w.casefold() for w in words} - skip, key=len, reverse=True)
    body = "|".join(r"\s+".join(re.escape(part) for part in t.split()) for t in terms if t.strip())
    pattern = re.compile(rf"(?<![\w@$]){'(?:' + body + ')'}(?![\w])", re.I)
    by_lead: dict[str, list[tuple[frozenset[str], frozenset[str]]]] = {}
    runless: list[frozenset[str]] = []
    always = False
    for term in terms:
        if not term.strip():
            continue
        runs = _WORD_RUN.findall(term)
        chars = frozenset("".join(_WORD_RUN.sub("", term).split()))
        always |= any(c.lower() != c or c.upper() != c for c in chars)
        if runs:
            always |= not all(r.isascii() for r in runs)
            by_lead.setdefault(runs[0].lower(), []).append((frozenset(r.lower() for r in runs), chars))
        else:
            runless.append(chars)
    return _Profanity(pattern, {k: tuple(v) for k, v in by_lead.items()}, tuple(runless), always)


_CLASSIFIER: Any = None
_CLASSIFIER_LOCK = threading.Lock()


class _ToxicityModel:
    """alt-profanity-check's classifier with its arithmetic done directly: its TF-IDF features
    (word counts × idf, l2-normalised), then each of the calibrated linear SVMs (decision
    d = x·w + c, probability 1 / (1 + exp(a·d + b))) averaged — what the library's
    `TfidfVectorizer.transform` and `CalibratedClassifierCV.predict_proba` compute, without
    scikit-learn's per-call input validation (90 % of a lesson's safety check).
    `tests/quality/test_safety_classifier.py` holds it equal to the library's `predict_prob`."""

    def __init__(self, vectorizer: Any, model: Any) -> None:
        import numpy as np

        params = vectorizer.get_params()
        expected = {"norm": "l2", "use_idf": True, "sublinear_tf": False, "binary": False, "analyzer": "word"}
        members = model.calibrated_classifiers_
        if (
            any(params.get(k) != v for k, v in expected.items())
            or model.classes_.tolist() != [0, 1]
            or any(len(m.calibrators) != 1 for m in members)
        ):
            raise TypeError("unexpected profanity model: its arithmetic is not the one reproduced here")
        self._np = np
        # The vectorizer's own analysis (lowercase, its token pattern, its stop words, unigrams),
        # done here without its per-call machinery; `expected` above pins the settings it assumes.
        if params.get("ngram_range") != (1, 1) or params.get("strip_accents") or params.get("preprocessor"):
            raise TypeError("unexpected profanity vectorizer: only lowercase unigrams are reproduced")
        self._token = re.compile(params["token_pattern"])
        self._vocabulary: dict[str, int] = vectorizer.vocabulary_
        # Fitting removed the stop words, so none is in the vocabulary: looking a token up in it
        # is the stop-word filter as well.
        if set(vectorizer.get_stop_words() or ()) & self._vocabulary.keys():
            raise TypeError("unexpected profanity vectorizer: stop words in its vocabulary")
        self._idf = vectorizer.idf_
        self._weights = np.vstack([m.estimator.coef_.ravel() for m in members]).T  # features x members
        self._intercepts = np.array([float(m.estimator.intercept_[0]) for m in members])
        self._a = np.array([float(m.calibrators[0].a_) for m in members])
        self._b = np.array([float(m.calibrators[0].b_) for m in members])

    def __call__(self, texts: Sequence[str]) -> list[float]:
        """P(toxic) of each text; all texts in one pass of array arithmetic."""
        np = self._np
        rows: list[int] = []
        columns: list[int] = []
        vocabulary = self._vocabulary
        for row, text in enumerate(texts):
            found = [vocabulary[t] for t in self._token.findall(text.lower()) if t in vocabulary]
            rows += [row] * len(found)
            columns += found
        n = len(texts)
        decisions = np.tile(self._intercepts, (n, 1))
        if columns:
            # Each (text, word) once, with how often the word occurs in the text.
            keys, counts = np.unique(np.array(rows) * len(vocabulary) + np.array(columns), return_counts=True)
            row_of, column_of = keys // len(vocabulary), keys % len(vocabulary)
            values = counts.astype(float) * self._idf[column_of]
            norms = np.sqrt(np.bincount(row_of, weights=values * values, minlength=n))
            values /= norms[row_of]
            np.add.at(decisions, row_of, values[:, None] * self._weights[column_of])
        probs = 1.0 / (1.0 + np.exp(decisions * self._a + self._b))
        return [float(p) for p in probs.mean(axis=1)]


def _classifier() -> Any:
    """The toxicity classifier (a callable: sentences -> probabilities), loaded once (≈ 0.3 s),
    or False when alt-profanity-check is not installed."""
    global _CLASSIFIER
    if _CLASSIFIER is not None:  # loaded: no lock (every safety check in every thread asks)
        return _CLASSIFIER
    with _CLASSIFIER_LOCK:
        if _CLASSIFIER is None:
            try:
                from profanity_check import profanity_check as library

                _CLASSIFIER = _ToxicityModel(library.vectorizer, library.model)
            except ImportError:
                _CLASSIFIER = False
        return _CLASSIFIER


def is_warm(allowed: Iterable[str] = ()) -> bool:
    """Has everything a check with these allowed words needs been loaded (see `prewarm`)?"""
    key = DEFAULT_ALLOWED | frozenset(allowed)
    return _CLASSIFIER is not None and key in _WARM


#: The allowed-word sets whose pattern is built (and the fold table with it).
_WARM: set[frozenset[str]] = set()


def prewarm(allowed: Iterable[str] = ()) -> None:
    """Load the word list and the classifier now (blocking: call from a worker thread), so the
    first lesson check does not pay for them."""
    key = DEFAULT_ALLOWED | frozenset(allowed)
    _profanity_pattern(key)
    _ascii_fold()
    _classifier()
    _WARM.add(key)


def find_toxic(
    text: str,
    *,
    profanity: bool = True,
    classifier: bool = True,
    threshold: float = 0.85,
    allowed: Iterable[str] = (),
) -> tuple[list[Finding], list[str]]:
    """(findings, notes): profane words and toxic sentences; notes say what could not run."""
    found: list[Finding] = []
    notes: list[str] = []
    if profanity:
        pattern = _profanity_pattern(DEFAULT_ALLOWED | frozenset(allowed))
        if pattern is None:
            notes.append("profanity list unavailable (install glin-profanity)")
        else:
            found += [Finding("profanity", m.group(0)) for m in pattern.finditer(text)]
    if classifier:
        predict = _classifier()
        if predict is False:
            notes.append("toxicity classifier unavailable (install alt-profanity-check)")
        else:
            # A sentence is toxic when the classifier says so *and* it targets someone: only
            # targeting sentences are worth classifying (each is classified on its own).
            parts = [s for s in sentences(text) if _TARGETED.search(s)] if _TARGETED.search(text) else []
            if parts:
                for sentence, prob in zip(parts, predict(parts), strict=True):
                    if prob >= threshold:
                        found.append(Finding("toxicity", sentence, f"p={prob:.2f}"))
    return found, notes


def _quote(text: str, limit: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class SafetyGate(Gate[Any]):
    """No personal data, no profanity, no toxic sentence in the lesson's text (content, and the
    exercises' questions, options, answers and explanations). Any finding fails the lesson as
    severe: it is regenerated (escalating), never shipped silently. Score: number of findings."""

    name = "safety"
    advice = "Never include personal data or offensive language."

    def __init__(
        self,
        pii: Sequence[str] = PII_KINDS,
        *,
        region: str = "US",
        profanity: bool = True,
        classifier: bool = True,
        threshold: float = 0.85,
        allowed: Iterable[str] = (),
    ) -> None:
        self.pii = tuple(pii)
        self.region = region
        self.profanity = profanity
        self.classifier = classifier
        self.threshold = threshold
        self.allowed = frozenset(allowed)

    @staticmethod
    def texts(artifact: Any) -> str:
        """Everything a learner reads: a string as is, or a lesson's content and exercises."""
        if isinstance(artifact, str):
            return artifact
        parts = [getattr(artifact, "content", "")]
        for ex in getattr(artifact, "exercises", []) or []:
            parts += [ex.question, *(ex.options or []), ex.answer, ex.explanation]
        return "\n\n".join(p for p in parts if p)

    def findings(self, text: str) -> tuple[list[Finding], list[str]]:
        found = find_pii(text, self.pii, region=self.region)
        toxic, notes = find_toxic(
            text,
            profanity=self.profanity,
            classifier=self.classifier,
            threshold=self.threshold,
            allowed=self.allowed,
        )
        return found + toxic, notes

    def check(self, artifact: Any, context: GateContext) -> GateResult:
        found, notes = self.findings(self.texts(artifact))
        reasons = []
        for kind in dict.fromkeys(f.kind for f in found):
            hits = [f for f in found if f.kind == kind]
            label = {"profanity": "profanity", "toxicity": "toxic sentence"}.get(
                kind, f"personal data ({kind})"
            )
            shown = ", ".join(repr(_quote(f.text)) for f in hits[:3])
            more = f" and {len(hits) - 3} more" if len(hits) > 3 else ""
            reasons.append(f"{label}: {shown}{more}; remove it")
        passed = not found
        return GateResult(
            self.name, passed, float(len(found)), [*reasons, *notes], "pass" if passed else "severe"
        )
