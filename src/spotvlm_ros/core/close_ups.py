"""An edge answer that points at a close-up it was shown, written out as that close-up's box.

A "where" answer is some 40 tokens of digits. The default edge model (232k parameters) does
not copy them from a crop's caption, but it can say which close-up shows the object:
`close-up 2`. The backend writes that out as the box the second caption gives (the cloud's
region carried to this frame), in the grounding answer's JSON, before any node, metric or
history turn sees it. A reference to a close-up the plan does not have is an empty answer.
"""

from __future__ import annotations

import re
from typing import Optional

from spotvlm_ros.core.regions import regions_json
from spotvlm_ros.core.types import FocusPlan

CLOSE_UP = 'close-up'
_REFERENCE = re.compile(rf'{CLOSE_UP} (\d+)\.?', re.IGNORECASE)


def close_up_reference(number: int) -> str:
    """How the edge model names its `number`-th close-up (1 = the first caption)."""
    return f'{CLOSE_UP} {number}'


def resolve_close_up(text: str, focus: Optional[FocusPlan]) -> str:
    """`text`, or, if it names a close-up, that close-up's box as a grounding answer."""
    match = _REFERENCE.fullmatch(text.strip())
    if match is None:
        return text
    number = int(match.group(1))
    crops = focus.crops if focus is not None else []
    if not 1 <= number <= len(crops) or crops[number - 1].shown is None:
        return regions_json([])
    return regions_json([crops[number - 1].shown])
