"""Prices, call records and budget reservations."""

from .budget import (
    Ledger,
    Reservation,
    course_cap,
    estimate_input_tokens,
    phase_caps,
    price_of,
    prompt_cache_saving,
    worst_case_cost,
)

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
