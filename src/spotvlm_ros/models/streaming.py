"""A generation streamer that times the first new token and streams the answer so far."""

from __future__ import annotations

import time
from typing import Callable, Optional

from transformers.generation.streamers import BaseStreamer


class GenerationMonitor(BaseStreamer):
    """Receives token ids as they are generated (transformers' streamer protocol).

    Records when the first new token arrived (the end of prefill) and, when `on_text` is
    given, calls it with the decoded answer so far each time that text grows. An exception
    raised by `on_text` propagates out of generation, which is how a caller can cancel.
    """

    def __init__(self, tokenizer=None, on_text: Optional[Callable[[str], None]] = None,
                 skip_prompt: bool = True):
        self.tokenizer = tokenizer
        self.on_text = on_text
        self.first_token_time: Optional[float] = None
        self.token_ids: list[int] = []
        self._prompt_pending = skip_prompt
        self._sent = ''

    def put(self, value) -> None:
        """Take the next token ids (a tensor or array); the first call is the prompt."""
        if self._prompt_pending:
            self._prompt_pending = False
            return
        if self.first_token_time is None:
            self.first_token_time = time.perf_counter()
        self.token_ids.extend(int(t) for t in value.reshape(-1).tolist())
        if self.on_text is not None:
            self._emit(final=False)

    def end(self) -> None:
        """Flush the last piece of text."""
        if self.on_text is not None:
            self._emit(final=True)

    def _emit(self, final: bool) -> None:
        text = self.tokenizer.decode(self.token_ids, skip_special_tokens=True).strip()
        # A multi-byte character split across tokens decodes to U+FFFD until it completes.
        if text != self._sent and (final or not text.endswith('\ufffd')):
            self._sent = text
            self.on_text(text)
