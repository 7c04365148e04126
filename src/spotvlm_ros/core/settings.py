"""Config fields as data: each carries its default, a description for people, and its check."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

Check = Callable[[str, Any], None]  # (field name, value); raises ValueError naming the field


def setting(default: Any, description: str, check: Optional[Check] = None) -> Any:
    """A dataclass field with its default, its description (shown by `ros2 param describe` and
    docs/parameters.md) and the check check_settings runs on it."""
    return dataclasses.field(default=default,
                             metadata={'description': description, 'check': check})


def description(field: dataclasses.Field) -> str:
    """What a field means, as setting() recorded it ('' for a plain field)."""
    return field.metadata.get('description', '')


def check_settings(config) -> None:
    """Run every field's check, in field order; the first failure raises ValueError."""
    for field in dataclasses.fields(config):
        check = field.metadata.get('check')
        if check is not None:
            check(field.name, getattr(config, field.name))
