"""The edge model's inference time as a function of its input: fitted to measured answers.

`spotvlm eval --edge-time model` charges each simulated edge answer what this model predicts
from its prompt tokens, generated tokens and images (the frame plus each focus crop), so a
long history or many crops cost what they cost live, while runs stay deterministic.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence, Union

import numpy as np

FEATURES = ('intercept_s', 'per_prompt_token_s', 'per_new_token_s', 'per_image_s')


@dataclass(frozen=True)
class EdgeCostModel:
    """Seconds per answer: a fixed part plus a share per prompt token, new token and image."""

    intercept_s: float
    per_prompt_token_s: float
    per_new_token_s: float
    per_image_s: float
    fitted_on: str = ''  # what it was measured on, for the reader

    def cost(self, prompt_tokens: int, new_tokens: int, images: int) -> float:
        """Predicted seconds for one answer (never below the fixed part)."""
        return max(self.intercept_s, self.intercept_s + self.per_prompt_token_s * prompt_tokens
                   + self.per_new_token_s * new_tokens + self.per_image_s * images)

    def save(self, path: Union[str, Path]) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=1) + '\n', encoding='utf-8')

    @classmethod
    def load(cls, path: Union[str, Path]) -> 'EdgeCostModel':
        """A saved model; ValueError names the file when it is not one."""
        try:
            data = json.loads(Path(path).read_text(encoding='utf-8'))
            return cls(*(float(data[k]) for k in FEATURES), str(data.get('fitted_on', '')))
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f'{path} is not an edge cost model: {err}') from None


def fit_cost(samples: Sequence[tuple], fitted_on: str = '') -> EdgeCostModel:
    """Least squares over (prompt_tokens, new_tokens, images, seconds) samples; a negative
    slope (noise on a flat feature) or intercept (noisy timings of a loaded machine: a cost
    below zero for a short prompt) is dropped and the rest refitted."""
    if len(samples) < len(FEATURES):
        raise ValueError(f'{len(samples)} samples; fitting needs at least {len(FEATURES)}')
    data = np.asarray(samples, dtype=float)
    design = np.column_stack([np.ones(len(data)), data[:, :3]])
    kept, coef = list(range(4)), []
    while kept:
        coef, *_ = np.linalg.lstsq(design[:, kept], data[:, 3], rcond=None)
        negative = [k for k, c in zip(kept, coef) if c < 0]
        if not negative:
            break
        kept = [k for k in kept if k not in negative]
    full = dict(zip(kept, coef))
    return EdgeCostModel(*(float(full.get(i, 0.0)) for i in range(4)), fitted_on)
