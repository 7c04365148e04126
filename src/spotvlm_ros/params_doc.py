"""`spotvlm params-doc`: docs/parameters.md, written from the nodes' parameter dataclasses."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Optional, Sequence

from spotvlm_ros.core.settings import description
from spotvlm_ros.nodes.settings import NODE_PARAMETERS

HEADER = '''# Parameters

Written by `spotvlm params-doc > docs/parameters.md` from the nodes' config dataclasses
(`src/spotvlm_ros/nodes/settings.py` and the core and cloud configs it names): each field
carries its default, its description and its check. A test fails when this file is stale.
`ros2 param describe /edge_node model.path` shows the same descriptions.

Set them in `config/spotvlm.yaml` (node names match any namespace; its column shows what it
sets), with `-p NODE:NAME=VALUE` on `spotvlm run`, or `ros2 run ... --ros-args -p NAME:=VALUE`.
A bad value stops the node at start with `bad parameter <name>: <why>` and exit code 2.
'''


def format_value(value) -> str:
    """A parameter value as YAML would spell it, in backticks."""
    if isinstance(value, bool):
        return '`true`' if value else '`false`'
    if isinstance(value, str):
        return f"`{value}`" if value else "`''`"
    return f'`{value}`'


def parameter_rows(node: str) -> list:
    """(name, default, description, config class) of every parameter of `node`, in order."""
    rows = []
    for prefix, config_cls in NODE_PARAMETERS[node]:
        for field in dataclasses.fields(config_cls):
            name = f'{prefix}.{field.name}' if prefix else field.name
            rows.append((name, field.default, description(field), config_cls))
    return rows


def markdown(config_values: Optional[dict] = None) -> str:
    """The whole page; `config_values` ({node: {name: value}}) fills the params file column."""
    config_values = config_values or {}
    lines = [HEADER]
    for node, groups in NODE_PARAMETERS.items():
        lines += [f'## `{node}`', '']
        groups_text = ', '.join(f'`{prefix}.*` `{cls.__name__}`' if prefix else
                                f'top level `{cls.__name__}`' for prefix, cls in groups)
        lines += [f'Groups: {groups_text}.', '']
        lines += ['| parameter | default | `config/spotvlm.yaml` | meaning |', '|---|---|---|---|']
        values = config_values.get(node, {})
        for name, default, text, _ in parameter_rows(node):
            configured = format_value(values[name]) if name in values else ''
            meaning = text.replace('|', '\\|')
            lines.append(f'| `{name}` | {format_value(default)} | {configured} | {meaning} |')
        lines.append('')
    return '\n'.join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    from spotvlm_ros.evaluation.params import node_params
    from spotvlm_ros.run import CONFIG

    parser = argparse.ArgumentParser(prog='spotvlm params-doc', description=__doc__)
    parser.add_argument('--params-file', default=str(CONFIG),
                        help='the params file whose values fill its column (default: %(default)s)')
    args = parser.parse_args(argv)
    print(markdown(node_params(args.params_file)), end='')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
