"""System prompts that ask the cloud model for a short answer plus its regions as JSON."""

from __future__ import annotations

# Grounding formats, named by how the model writes box coordinates.
FORMAT_PIXELS = 'pixels'  # Qwen2.5-VL: absolute pixels of the image it was sent
FORMAT_GRID_1000 = 'grid1000'  # Qwen2-VL, Qwen3-VL: integers on a 0-1000 grid
FORMAT_NORMALIZED = 'normalized'  # fractions of width and height, 0-1
GROUNDING_FORMATS = (FORMAT_PIXELS, FORMAT_GRID_1000, FORMAT_NORMALIZED)

_COORDINATES = {
    FORMAT_PIXELS: 'absolute pixel coordinates of this {width}x{height} image',
    FORMAT_GRID_1000: 'integers from 0 to 1000, relative to the image width and height',
    FORMAT_NORMALIZED: 'fractions from 0 to 1 of the image width and height',
}

_TEMPLATE = (
    'You are the perception assistant of a robot. Answer the question about the camera '
    'image in one or two short sentences. Then list the objects your answer relies on as '
    'JSON inside a ```json fence: '
    '[{{"bbox_2d": [x1, y1, x2, y2], "label": "short name"}}], '
    'with coordinates as {coordinates}. Write [] if no object is relevant.'
)


def system_prompt(fmt: str, sent_size: tuple[int, int]) -> str:
    """The system prompt for grounding format `fmt`, naming the sent image's (width, height)."""
    if fmt not in _COORDINATES:
        raise ValueError(f'grounding_format: unknown {fmt!r}; one of {GROUNDING_FORMATS}')
    width, height = sent_size
    coordinates = _COORDINATES[fmt].format(width=width, height=height)
    return _TEMPLATE.format(coordinates=coordinates)
