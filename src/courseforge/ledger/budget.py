"""Prices, call records and budget reservations for one course.

Every call reserves its worst-case cost (prompt estimate + max_tokens of output) before it is
sent and settles to the real cost after. Reservation is a check-and-add with no await in
between, under a lock, so however many calls are in flight, spent + reserved never passes the
cap. Rejected answers are settled like accepted ones: they were paid for.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from ..config import ModelSettings, Settings
from ..domain import AnalysisResult, CallRecord, Totals
from ..errors import BudgetExceeded
from ..providers import Message, Usage

__all__ = [
    "Ledger",
    "Reservation",
    "course_cap",
    "estimate_input_tokens",
    "phase_caps",
    "price_of",
    "prompt_cache_saving",
    "worst_case_cost",
]

_MILLION = Decimal(1_000_000)
#: Per-message framing tokens (role markers) added to the estimate.
_MESSAGE_OVERHEAD_TOKENS = 8


def course_cap(analysis: AnalysisResult, settings: Settings) -> Decimal:
    """A course's budget cap: the input's `budget_usd`, else the config's `budget.per_course_usd`."""
    return Decimal(str(analysis.budget_usd or settings.budget.per_course_usd))


def phase_caps(cap_usd: Decimal, settings: Settings) -> dict[str, Decimal]:
    """Each capped phase's own ceiling: its `budget.phase_shares` share of the course's cap."""
    return {phase: cap_usd * Decimal(str(share)) for phase, share in settings.budget.phase_shares.items()}


def estimate_input_tokens(messages: Sequence[Message]) -> int:
    """An upper-leaning estimate: half the UTF-8 bytes. Real tokenizers average 3-4 bytes per
    token on English and ~1.5 on CJK, so this over-reserves rather than under-reserves."""
    return sum(len(m.content.encode("utf-8")) // 2 + _MESSAGE_OVERHEAD_TOKENS for m in messages)


def _cache_prices(model: ModelSettings) -> tuple[Decimal, Decimal]:
    read = model.price_in_per_m if model.price_cache_read_per_m is None else model.price_cache_read_per_m
    write = model.price_in_per_m if model.price_cache_write_per_m is None else model.price_cache_write_per_m
    return read, write


def price_of(model: ModelSettings, usage: Usage, *, batch: bool = False) -> tuple[Decimal, str]:
    """Cost of a finished call and where the figure came from. The provider's own wins; else
    prompt tokens served from the provider's cache are priced at the cache-read price, those
    written into it at the cache-write price (both default to the input price), and a call a
    provider batch answered (`batch`) at the model's `batch_price_multiplier` of it all."""
    if usage.cost_usd is not None:
        return usage.cost_usd, "provider"
    read, write = _cache_prices(model)
    cached = min(usage.cached_tokens, usage.input_tokens)
    written = min(usage.cache_write_tokens, usage.input_tokens - cached)
    plain = usage.input_tokens - cached - written
    cost = (
        Decimal(plain) * model.price_in_per_m
        + Decimal(cached) * read
        + Decimal(written) * write
        + Decimal(usage.output_tokens) * model.price_out_per_m
    ) / _MILLION
    if batch and model.batch_price_multiplier is not None:
        cost *= model.batch_price_multiplier
    return cost, "price_table"


def prompt_cache_saving(model: ModelSettings, usage: Usage) -> Decimal:
    """What the provider's prompt cache took off this call at the table's prices: the cached
    tokens' discount less the cache writes' surcharge (negative when writing cost more)."""
    read, write = _cache_prices(model)
    cached = min(usage.cached_tokens, usage.input_tokens)
    written = min(usage.cache_write_tokens, usage.input_tokens - cached)
    return (
        Decimal(cached) * (model.price_in_per_m - read) - Decimal(written) * (write - model.price_in_per_m)
    ) / _MILLION


def worst_case_cost(model: ModelSettings, input_tokens: int, max_tokens: int) -> Decimal:
    return (
        Decimal(input_tokens) * model.price_in_per_m + Decimal(max_tokens) * model.price_out_per_m
    ) / _MILLION


@dataclass(frozen=True, slots=True)
class Reservation:
    id: int
    amount: Decimal


class Ledger:
    """Spend, reservations and call records of one course."""

    def __init__(
        self,
        cap_usd: Decimal,
        *,
        spent_usd: Decimal = Decimal(0),
        phase_caps_usd: Mapping[str, Decimal] | None = None,
    ) -> None:
        """`spent_usd`: what the course already paid before this ledger (a later revision of a
        finished course spends what is left under the same cap). `phase_caps_usd`: a ceiling
        per phase inside the course's cap (the budget split between phases; `phase_caps`)."""
        if cap_usd <= 0:
            raise ValueError("budget cap must be positive")
        self.cap_usd = cap_usd
        self.phase_caps_usd = dict(phase_caps_usd or {})
        self._spent = spent_usd
        self._reserved: dict[int, Decimal] = {}
        #: Phase of each reservation, and each phase's spend, for the phases' own caps.
        self._reserved_phase: dict[int, str] = {}
        self._phase_spent: dict[str, Decimal] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.records: list[CallRecord] = []
        #: Highest committed (spent + reserved) seen: evidence the cap held.
        self.peak_committed = Decimal(0)

    @property
    def spent(self) -> Decimal:
        return self._spent

    @property
    def committed(self) -> Decimal:
        return self._spent + sum(self._reserved.values(), Decimal(0))

    @property
    def fraction_used(self) -> float:
        return float(self.committed / self.cap_usd)

    def phase_committed(self, phase: str) -> Decimal:
        """What `phase` has spent plus what its calls in flight hold."""
        held = sum((a for r, a in self._reserved.items() if self._reserved_phase.get(r) == phase), Decimal(0))
        return self._phase_spent.get(phase, Decimal(0)) + held

    def reserve(self, amount: Decimal, phase: str = "") -> Reservation:
        """Hold `amount` against the cap (and against `phase`'s own cap, when it has one), or
        raise BudgetExceeded without holding anything."""
        with self._lock:
            committed = self.committed
            if committed + amount > self.cap_usd:
                raise BudgetExceeded(cap_usd=self.cap_usd, committed_usd=committed, needed_usd=amount)
            phase_cap = self.phase_caps_usd.get(phase)
            if phase_cap is not None:
                in_phase = self.phase_committed(phase)
                if in_phase + amount > phase_cap:
                    raise BudgetExceeded(
                        cap_usd=phase_cap, committed_usd=in_phase, needed_usd=amount, phase=phase
                    )
            reservation = Reservation(next(self._ids), amount)
            self._reserved[reservation.id] = amount
            if phase:
                self._reserved_phase[reservation.id] = phase
            self.peak_committed = max(self.peak_committed, committed + amount)
            return reservation

    def settle(self, reservation: Reservation | None, record: CallRecord) -> CallRecord:
        """Release the hold, add the real cost and keep the record."""
        with self._lock:
            if reservation is not None:
                self._reserved.pop(reservation.id, None)
                self._reserved_phase.pop(reservation.id, None)
            self._spent += record.cost_usd
            self._phase_spent[record.phase] = (
                self._phase_spent.get(record.phase, Decimal(0)) + record.cost_usd
            )
            self.records.append(record)
            return record

    def release(self, reservation: Reservation) -> None:
        with self._lock:
            self._reserved.pop(reservation.id, None)
            self._reserved_phase.pop(reservation.id, None)

    def record(self, record: CallRecord) -> CallRecord:
        """Keep a record that holds no money (blocked, skipped, replayed-free)."""
        return self.settle(None, record)

    @staticmethod
    def totals(records: Iterable[CallRecord], key: str) -> dict[str, Totals]:
        out: dict[str, Totals] = {}
        for r in records:
            name = str(getattr(r, key))
            t = out.setdefault(name, Totals())
            if r.outcome not in ("budget_blocked", "skipped"):
                t.calls += 1
            t.input_tokens += r.input_tokens
            t.output_tokens += r.output_tokens
            t.reasoning_tokens += r.reasoning_tokens
            t.cost_usd += r.cost_usd
        return out
