"""Targets the benchmarks check: each printed figure with a target says ``met`` or ``MISSED``, and ``make
bench`` exits non-zero when one was missed."""

from __future__ import annotations

MISSED: list[str] = []


def verdict(met: bool, what: str) -> str:
    """``met``, or ``MISSED`` (remembered under ``what`` for the closing summary)."""
    if not met:
        MISSED.append(what)
    return "met" if met else "MISSED"
