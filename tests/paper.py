"""Helpers for checking figures against the papers' printed values."""

from __future__ import annotations

from decimal import Decimal


def printed_tolerance(printed: str, rel: float = 0.01) -> float:
    """How far a value may be from a printed figure: 1%, or half a unit of its last digit."""
    exponent = Decimal(printed).as_tuple().exponent
    half_unit = 0.5 * 10.0**exponent
    return max(rel * float(printed), half_unit)


def matches_printed(value_millions: float, printed: str) -> bool:
    """True when ``value_millions`` agrees with ``printed`` within :func:`printed_tolerance`."""
    return abs(value_millions - float(printed)) <= printed_tolerance(printed)


def rounds_to(value_millions: float, printed: str) -> bool:
    """True when ``value_millions`` rounded to the printed precision equals ``printed``."""
    exponent = Decimal(printed).as_tuple().exponent
    return abs(value_millions - float(printed)) <= 0.5 * 10.0**exponent + 1e-9
