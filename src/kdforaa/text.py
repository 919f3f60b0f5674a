"""Wording shared by messages: counts with the noun in the right number."""

from __future__ import annotations


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``count(1, "channel")`` -> ``"1 channel"``, ``count(3, "channel")`` -> ``"3 channels"``."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"
