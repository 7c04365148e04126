"""The one interface every edge (and local cloud) model backend implements."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np

from spotvlm_ros.core.types import FocusPlan, HistoryTurn


@dataclass
class Timings:
    """Seconds spent in each stage of one answer."""

    preprocess_s: float = 0.0
    prefill_s: float = 0.0
    decode_s: float = 0.0
    total_s: float = 0.0

    @classmethod
    def from_marks(cls, start: float, prepared: float, first_token: float, generated: float,
                   end: float) -> 'Timings':
        """Stage durations from the perf_counter marks taken during one answer."""
        return cls(preprocess_s=prepared - start, prefill_s=first_token - prepared,
                   decode_s=generated - first_token, total_s=end - start)


@dataclass
class EdgeResult:
    """One model answer with its timings and token counts."""

    text: str
    timings: Timings = field(default_factory=Timings)
    visual_tokens: int = 0
    prompt_tokens: int = 0
    new_tokens: int = 0
    token_ids: tuple[int, ...] = ()  # the generated ids, for parity checks between backends


class ModelLoadError(RuntimeError):
    """A checkpoint could not be loaded; the message names the path or hub id."""


class EdgeBackend(abc.ABC):
    """Answers a query about one frame, given history turns and an optional focus plan.

    Implementations load and warm up in __init__, and are safe to call from one worker
    thread while other threads (ROS callbacks) run.
    """

    name: str = ''  # model name reported in answers

    @abc.abstractmethod
    def answer(
        self,
        frame: np.ndarray,
        query: str,
        history: Sequence[HistoryTurn] = (),
        focus: Optional[FocusPlan] = None,
        system_prompt: Optional[str] = None,
        on_text: Optional[Callable[[str], None]] = None,
    ) -> EdgeResult:
        """Answer `query` about `frame` (HxWx3 uint8 RGB); `on_text` receives partial text."""

    def close(self) -> None:
        """Release the model; the default has nothing to release."""
