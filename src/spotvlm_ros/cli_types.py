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


def _bounded(kind, ok, what: str):
    """An argparse type: a finite `kind` for which `ok(value)` holds, else 'must be `what`'."""
    def parse(text: str):
        value = _number(kind, text)
        if not ok(value):
            raise argparse.ArgumentTypeError(f'must be {what}, got {text}')
        return value

    parse.__name__ = f'{kind.__name__} {what}'  # argparse names the type in its messages
    return parse


positive_float = _bounded(float, lambda v: v > 0, '> 0')
non_negative_float = _bounded(float, lambda v: v >= 0, '>= 0')
positive_int = _bounded(int, lambda v: v > 0, '> 0')
non_negative_int = _bounded(int, lambda v: v >= 0, '>= 0')
percent_int = _bounded(int, lambda v: 1 <= v <= 100, 'in 1..100')  # a JPEG quality
share = _bounded(float, lambda v: 0 <= v <= 1, 'in 0..1')


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


def node_client_parser(prog: str, doc: str) -> argparse.ArgumentParser:
    """The parser of a verb that talks to running nodes: `doc`'s first line, and --namespace."""
    parser = argparse.ArgumentParser(prog=prog, description=doc.splitlines()[0])
    parser.add_argument('--namespace', default='', help="the nodes' namespace, e.g. 'front'")
    return parser


def in_namespace(namespace: str, name: str) -> str:
    """The topic or action `name` in `namespace` ('front', '/front/' alike; '': as it is)."""
    namespace = namespace.strip('/')
    if not namespace or name.startswith('/'):
        return name
    return f'/{namespace}/{name}'
