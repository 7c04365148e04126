"""Declares a node's parameters from plain config dataclasses and validates them at start."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node

Config = TypeVar('Config')


class ParameterError(ValueError):
    """A parameter has a bad value; the message starts with the parameter's full name."""


def declare_config(node: Node, prefix: str, config_cls: type[Config]) -> Config:
    """Declare '<prefix>.<field>' for every field of `config_cls` and build a validated config.

    The dataclass's defaults are the parameters' defaults and its __post_init__ is the
    validation, so the core library, the evaluator and the nodes share one definition.
    """
    values = {}
    for field in dataclasses.fields(config_cls):
        if not field.init:
            continue
        name = f'{prefix}.{field.name}' if prefix else field.name
        values[field.name] = declare(node, name, _default_of(field))
    try:
        return config_cls(**values)
    except (ValueError, TypeError) as err:
        raise ParameterError(f'{prefix}.{err}' if prefix else str(err)) from None


def declare(node: Node, name: str, default: Any, description: str = '') -> Any:
    """Declare one parameter and return its value, with the default's type enforced."""
    value = node.declare_parameter(
        name, default, ParameterDescriptor(description=description)).value
    if isinstance(default, bool) != isinstance(value, bool):
        raise ParameterError(f'{name}: must be a bool, got {value!r}')
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)  # YAML '5' for a float parameter
    return value


def require(ok: bool, name: str, message: str) -> None:
    """Raise ParameterError naming `name` unless `ok`."""
    if not ok:
        raise ParameterError(f'{name}: {message}')


def _default_of(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return field.default_factory()  # type: ignore[misc]
    raise TypeError(f'config field {field.name} has no default')
