"""argparse types that refuse a bad number or a missing path with a message, not a traceback."""

from __future__ import annotations

import argparse
import math
import os


def _number(kind, text: str):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not a{"n integer" if kind is int else " number"}') from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f'{text!r} is not a finite number')
    return value


def positive_float(text: str) -> float:
    """A finite float > 0."""
    value = _number(float, text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f'must be > 0, got {text}')
    return value


def non_negative_float(text: str) -> float:
    """A finite float >= 0."""
    value = _number(float, text)
    if value < 0:
        raise argparse.ArgumentTypeError(f'must be >= 0, got {text}')
    return value


def positive_int(text: str) -> int:
    """An int > 0."""
    value = _number(int, text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f'must be > 0, got {text}')
    return value


def non_negative_int(text: str) -> int:
    """An int >= 0."""
    value = _number(int, text)
    if value < 0:
        raise argparse.ArgumentTypeError(f'must be >= 0, got {text}')
    return value


def percent_int(text: str) -> int:
    """An int in 1..100 (a JPEG quality)."""
    value = _number(int, text)
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError(f'must be in 1..100, got {text}')
    return value


def existing_path(text: str) -> str:
    """A path that exists (file or folder); package://PKG/path resolves to a share file."""
    from spotvlm_ros.share import resolve

    try:
        path = resolve(text)
    except FileNotFoundError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    if not os.path.exists(path):
        raise argparse.ArgumentTypeError(f'{text}: no such file or folder')
    return path
