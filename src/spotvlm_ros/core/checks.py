"""Validation helpers for the config dataclasses: each error names the offending field."""

from __future__ import annotations

import math


def require(ok: bool, name: str, message: str) -> None:
    """Raise ValueError naming `name` unless `ok`."""
    if not ok:
        raise ValueError(f'{name}: {message}')


def finite(name: str, value: float) -> None:
    """Require a finite number."""
    require(isinstance(value, (int, float)) and math.isfinite(value), name,
            f'must be a finite number, got {value!r}')


def positive(name: str, value: float) -> None:
    """Require a finite number above zero."""
    finite(name, value)
    require(value > 0, name, f'must be > 0, got {value!r}')


def non_negative(name: str, value: float) -> None:
    """Require a finite number at or above zero."""
    finite(name, value)
    require(value >= 0, name, f'must be >= 0, got {value!r}')


def fraction(name: str, value: float) -> None:
    """Require a number in [0, 1]."""
    finite(name, value)
    require(0.0 <= value <= 1.0, name, f'must be in [0, 1], got {value!r}')


def positive_int(name: str, value: int) -> None:
    """Require an int above zero (bools are not ints here)."""
    require(isinstance(value, int) and not isinstance(value, bool) and value > 0, name,
            f'must be an int > 0, got {value!r}')


def non_negative_int(name: str, value: int) -> None:
    """Require an int at or above zero."""
    require(isinstance(value, int) and not isinstance(value, bool) and value >= 0, name,
            f'must be an int >= 0, got {value!r}')


def in_range(name: str, value: float, low: float, high: float, low_open: bool = False) -> None:
    """Require a number in [low, high], or (low, high] when `low_open`."""
    finite(name, value)
    above = value > low if low_open else value >= low
    bracket = '(' if low_open else '['
    require(above and value <= high, name, f'must be in {bracket}{low}, {high}], got {value!r}')


def boolean(name: str, value) -> None:
    """Require true or false (no 0/1 or strings)."""
    require(isinstance(value, bool), name, f'must be true or false, got {value!r}')


def non_empty(name: str, value) -> None:
    """Require a string with something besides blanks in it."""
    require(isinstance(value, str) and bool(value.strip()), name, 'must not be empty')


def one_of(choices: tuple):
    """A check that requires one of `choices`."""
    def check(name: str, value) -> None:
        require(value in choices, name, f"must be one of {', '.join(map(str, choices))}, "
                                        f'got {value!r}')
    return check


def between(low: float, high: float, low_open: bool = False):
    """A check that requires a number in [low, high], or (low, high] when `low_open`."""
    def check(name: str, value) -> None:
        in_range(name, value, low, high, low_open)
    return check
