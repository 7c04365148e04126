"""The nodes' parameters file, read without ROS, so offline replay runs the nodes' settings."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

import yaml


def node_params(params_file, overrides: Sequence[str] = ()) -> dict:
    """{node name: {parameter: value}} of a `/**/node: ros__parameters:` file, plus
    'NODE:NAME=VALUE' overrides (values read as YAML, as `ros2 run -p` reads them)."""
    data = yaml.safe_load(Path(params_file).read_text()) or {}
    params = {}
    for key, body in data.items():
        node = key.rsplit('/', 1)[-1]
        params[node] = dict((body or {}).get('ros__parameters', {}))
    for item in overrides:
        node, _, assignment = item.partition(':')
        name, sep, value = assignment.partition('=')
        if not (node and name and sep):
            raise ValueError(f"bad parameter override {item!r}: expected 'NODE:NAME=VALUE'")
        params.setdefault(node, {})[name] = yaml.safe_load(value)
    return params


def config_from(params: dict, prefix: str, config_cls: type) -> Any:
    """`config_cls` built from its '<prefix>.<field>' parameters, defaults for the rest."""
    values = {}
    for field in dataclasses.fields(config_cls):
        name = f'{prefix}.{field.name}'
        if field.init and name in params:
            value = params[name]
            if field.type in (float, 'float') and isinstance(value, int) \
                    and not isinstance(value, bool):
                value = float(value)  # YAML '5' for a float parameter, as the nodes accept
            values[field.name] = value
    try:
        return config_cls(**values)
    except (ValueError, TypeError) as err:
        raise ValueError(f'{prefix}.{err}') from None
