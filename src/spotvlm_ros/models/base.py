"""The one interface every edge (and local cloud) model backend implements."""

from __future__ import annotations

import abc
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np

from spotvlm_ros.core.close_ups import resolve_close_up
from spotvlm_ros.core.types import FocusPlan, HistoryTurn
from spotvlm_ros.models.prompt import build_messages

WARMUP_FRAME_SIZE = 56  # the smallest image Qwen2.5-VL accepts (4 visual tokens)


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

    The base owns `answer`: one answer at a time, the timing marks, streaming and the result.
    A backend loads in __init__ (calling this one first, then `warmup`) and implements `encode`
    (chat messages to model inputs), `generate` (greedy new token ids) and `prompt_ids`.
    Safe to call from one worker thread while other threads (ROS callbacks) run.
    """

    name: str = ''  # model name reported in answers
    tokenizer = None  # decodes generated ids
    image_token_id: Optional[int] = None  # the placeholder id of one visual token, if any
    streams_prompt: bool = False  # whether `generate` hands the monitor the prompt ids first

    def __init__(self):
        # One answer at a time: models and their caches are not re-entrant.
        self._lock = threading.Lock()

    def prepare(self, frame, query, history=(), focus=None, system_prompt=None):
        """The model inputs of one answer (the chat template and image preprocessing)."""
        return self.encode(build_messages(frame, query, history, focus, system_prompt))

    @abc.abstractmethod
    def encode(self, messages: list):
        """The model inputs (token ids, pixels, grids) for chat messages."""

    @abc.abstractmethod
    def generate(self, inputs, monitor) -> list:
        """Greedy new token ids for `inputs`: each goes to `monitor.put`, then `monitor.end()`."""

    @abc.abstractmethod
    def prompt_ids(self, inputs) -> Sequence[int]:
        """The prompt's token ids (a 1-D array or tensor) in `inputs`."""

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
        from spotvlm_ros.models.streaming import GenerationMonitor  # transformers: on first use

        with self._lock:
            start = time.perf_counter()
            inputs = self.prepare(frame, query, history, focus, system_prompt)
            prepared = time.perf_counter()
            monitor = GenerationMonitor(self.tokenizer, on_text, skip_prompt=self.streams_prompt)
            new_ids = self.generate(inputs, monitor)
            generated = time.perf_counter()
            text = resolve_close_up(self.tokenizer.decode(new_ids, skip_special_tokens=True)
                                    .strip(), focus)
            end = time.perf_counter()
        prompt = self.prompt_ids(inputs)
        visual = 0 if self.image_token_id is None else int((prompt == self.image_token_id).sum())
        first = monitor.first_token_time or generated
        timings = Timings.from_marks(start, prepared, first, generated, end)
        return EdgeResult(text=text, timings=timings, visual_tokens=visual,
                          prompt_tokens=len(prompt), new_tokens=len(new_ids),
                          token_ids=tuple(new_ids))

    def warmup(self) -> float:
        """Answer one small grey frame so the first real frame pays no first-call costs."""
        start = time.perf_counter()
        self.answer(np.full((WARMUP_FRAME_SIZE, WARMUP_FRAME_SIZE, 3), 128, np.uint8),
                    'Describe the scene.')
        return time.perf_counter() - start

    def close(self) -> None:
        """Release the model once no answer is running."""
        with self._lock:
            self.release()

    def release(self) -> None:
        """Drop what the model holds; the default has nothing to release."""
