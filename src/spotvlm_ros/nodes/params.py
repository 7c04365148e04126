"""Declares a node's parameters from its config dataclasses, with descriptions, and validates them."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace
from typing import Any, TypeVar

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node

from spotvlm_ros.core.settings import description
from spotvlm_ros.nodes.settings import NODE_PARAMETERS

Config = TypeVar('Config')


class ParameterError(ValueError):
    """A parameter has a bad value; the message starts with the parameter's full name."""


def declare_node(node: Node, name: str) -> SimpleNamespace:
    """Declare every parameter group of the node called `name` in NODE_PARAMETERS; the built,
    validated configs as attributes named by prefix (`node` for the top level: `.node.query`,
    `.focus.token_budget`)."""
    return SimpleNamespace(**{prefix or 'node': declare_config(node, prefix, config_cls)
                              for prefix, config_cls in NODE_PARAMETERS[name]})


def declare_config(node: Node, prefix: str, config_cls: type[Config]) -> Config:
    """Declare '<prefix>.<field>' for every field of `config_cls` and build a validated config.

    The dataclass's defaults are the parameters' defaults, its field descriptions theirs
    (`ros2 param describe`), and its checks the validation, so the core library, the evaluator
    and the nodes share one definition.
    """
    values = {}
    for field in dataclasses.fields(config_cls):
        if not field.init:
            continue
        name = f'{prefix}.{field.name}' if prefix else field.name
        values[field.name] = _declare(node, name, _default_of(field), description(field))
    try:
        return config_cls(**values)
    except (ValueError, TypeError) as err:
        raise ParameterError(f'{prefix}.{err}' if prefix else str(err)) from None


def _declare(node: Node, name: str, default: Any, text: str) -> Any:
    """Declare one parameter and return its value, with the default's type enforced."""
    value = node.declare_parameter(name, default, ParameterDescriptor(description=text)).value
    if isinstance(default, bool) != isinstance(value, bool):
        raise ParameterError(f'{name}: must be a bool, got {value!r}')
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)  # YAML '5' for a float parameter
    return value


def _default_of(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return field.default_factory()  # type: ignore[misc]
    raise TypeError(f'config field {field.name} has no default')
