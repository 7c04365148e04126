"""The models behind the local server, each answering one chat request about images."""

from __future__ import annotations

import abc
import json
import time
from typing import Optional, Sequence

import cv2
import numpy as np

from spotvlm_ros.cloud.prompts import (
    FORMAT_GRID_1000, FORMAT_NORMALIZED, FORMAT_PIXELS, GROUNDING_FORMATS)
from spotvlm_ros.core.keyframes import thumbnail
from spotvlm_ros.models.base import EdgeBackend, EdgeResult, Timings
from spotvlm_ros.models.split import VisualTokens, answer_from_tokens
from spotvlm_ros.scenes.large_model import SimulatedLargeModel


class Responder(abc.ABC):
    """Answers a prompt about images; called from one server worker thread at a time."""

    name: str = ''

    @abc.abstractmethod
    def respond(self, images: Sequence[np.ndarray], prompt: str,
                system_prompt: Optional[str], max_tokens: int) -> EdgeResult:
        """Answer `prompt` about `images` (HxWx3 uint8 RGB, at least one)."""

    def respond_visual(self, tokens: VisualTokens, prompt: str, system_prompt: Optional[str],
                       max_tokens: int) -> EdgeResult:
        """Answer `prompt` about a frame sent as its visual tokens (the partitioned baseline)."""
        raise UnsupportedInput(f"the model '{self.name}' does not take visual tokens")

    def close(self) -> None:
        """Release the model; the default has nothing to release."""


class UnsupportedInput(ValueError):
    """A request this responder cannot answer by its nature, not by a fault."""


class BackendResponder(Responder):
    """An edge backend (a transformers checkpoint, an ONNX export) serving as the cloud model."""

    def __init__(self, backend: EdgeBackend):
        self._backend = backend
        self.name = backend.name

    def respond(self, images, prompt, system_prompt, max_tokens):
        """Answer about the first image; the token limit is the backend's own."""
        return self._backend.answer(images[0], prompt, system_prompt=system_prompt)

    def respond_visual(self, tokens, prompt, system_prompt, max_tokens):
        """Run the decoder on the tokens, when the backend is a transformers checkpoint."""
        from spotvlm_ros.models.transformers_backend import TransformersBackend
        if not isinstance(self._backend, TransformersBackend):
            return super().respond_visual(tokens, prompt, system_prompt, max_tokens)
        try:
            return answer_from_tokens(self._backend, tokens, prompt, system_prompt)
        except ValueError as err:
            raise UnsupportedInput(str(err)) from None

    def close(self) -> None:
        self._backend.close()


def transformers_responder(model: str, device: str = 'cpu', dtype: str = 'float32',
                           max_new_tokens: int = 256) -> BackendResponder:
    """A local transformers checkpoint (folder or cached hub id) as the cloud model."""
    # Imported here: torch and transformers take seconds to load, which tests of the
    # server with other responders should not pay.
    from spotvlm_ros.models.factory import make_backend
    return BackendResponder(make_backend('transformers', model=model, device=device,
                                         dtype=dtype, max_new_tokens=max_new_tokens))


# The grey thumbnail (width, height) a received image is matched by: enough to tell a drive's
# frames apart, whatever size they were sent at.
MATCH_THUMBNAIL = (64, 48)


class SimulatedResponder(Responder):
    """The simulated large model (scenes/large_model.py) served: it knows one drive's truth.

    A 72B-class model cannot run here; this stand-in answers images of a synthetic drive
    whose bag (frames and ground truth) it was given. Each image it receives is matched to
    the bag frame nearest in a small grey thumbnail, and its reply is the one the offline
    evaluator gets for that frame, sized for the image received.
    """

    def __init__(self, frames: Sequence, model: Optional[SimulatedLargeModel] = None):
        self._frames = [f for f in frames if f.questions]
        if not self._frames:
            raise ValueError('the simulated cloud model needs a bag with ground truth')
        self._thumbs = np.stack([thumbnail(f.image, *MATCH_THUMBNAIL) for f in self._frames])
        self._model = model or SimulatedLargeModel()
        self.name = self._model.name

    def respond(self, images, prompt, system_prompt, max_tokens):
        """Reply about the bag frame that looks most like the first image."""
        started = time.perf_counter()
        image = images[0]
        distance = np.square(self._thumbs - thumbnail(image, *MATCH_THUMBNAIL)).sum(axis=(1, 2))
        frame = self._frames[int(np.argmin(distance))]
        try:
            text = self._model.reply_about(frame, prompt, (image.shape[1], image.shape[0]))
        except ValueError as err:
            raise UnsupportedInput(str(err)) from None
        return EdgeResult(text=text, timings=Timings(total_s=time.perf_counter() - started),
                          new_tokens=len(text.split()))


def simulated_responder(bag) -> SimulatedResponder:
    """The simulated large model over the drive recorded in `bag` (with ground truth)."""
    from spotvlm_ros.io.replay import load_bag

    return SimulatedResponder(load_bag(bag))


# Colour names for the scripted responder's labels, as RGB.
_COLOURS = {
    'red': (220, 30, 30), 'green': (30, 180, 30), 'blue': (30, 30, 220),
    'yellow': (230, 220, 30), 'orange': (240, 140, 20), 'cyan': (30, 210, 220),
    'magenta': (210, 30, 210), 'white': (245, 245, 245), 'black': (10, 10, 10),
    'gray': (128, 128, 128),
}


class ScriptedResponder(Responder):
    """Test stand-in for a large Qwen2.5-VL: answers with boxes of what it really sees.

    It finds the blobs that differ from the image's border colour and replies the way
    Qwen2.5-VL does: a short sentence, then `bbox_2d` JSON in pixels of the image it
    received (or another grounding format, to emulate other models).
    """

    def __init__(self, fmt: str = FORMAT_PIXELS, max_objects: int = 5,
                 threshold: int = 40, min_area_fraction: float = 0.001):
        if fmt not in GROUNDING_FORMATS:
            raise ValueError(f'fmt: unknown {fmt!r}; one of {GROUNDING_FORMATS}')
        self.name = f'scripted-{fmt}'
        self._fmt = fmt
        self._max_objects = max_objects
        self._threshold = threshold
        self._min_area_fraction = min_area_fraction

    def respond(self, images, prompt, system_prompt, max_tokens):
        """Describe and box the blobs of the first image."""
        started = time.perf_counter()
        image = images[0]
        height, width = image.shape[:2]
        objects = [{'bbox_2d': self._coordinates(box, width, height), 'label': label}
                   for box, label in self._blobs(image)]
        if objects:
            names = ' and '.join(f'a {o["label"]}' for o in objects)
            sentence = f'I see {names}.'
        else:
            sentence = 'Nothing stands out in the image.'
        listing = ',\n'.join('\t' + json.dumps(o) for o in objects)
        regions = f'[\n{listing}\n]' if objects else '[]'
        text = f'{sentence}\n```json\n{regions}\n```'
        elapsed = time.perf_counter() - started
        return EdgeResult(text=text, timings=Timings(total_s=elapsed),
                          new_tokens=len(text.split()))

    def _blobs(self, image: np.ndarray) -> list[tuple[tuple[int, int, int, int], str]]:
        """Boxes (x1, y1, x2, y2, exclusive ends) and colour labels, largest first."""
        border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
        background = np.median(border, axis=0)
        difference = np.abs(image.astype(np.int16) - background.astype(np.int16)).max(axis=2)
        mask = (difference > self._threshold).astype(np.uint8)
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        min_area = self._min_area_fraction * image.shape[0] * image.shape[1]
        blobs = sorted((stats[i] for i in range(1, count) if stats[i][4] >= min_area),
                       key=lambda s: -s[4])[:self._max_objects]
        result = []
        for x, y, w, h, _ in blobs:
            mean = image[y:y + h, x:x + w][mask[y:y + h, x:x + w] > 0].mean(axis=0)
            box = (int(x), int(y), int(x + w), int(y + h))
            result.append((box, f'{_colour_name(mean)} object'))
        return result

    def _coordinates(self, box, width: int, height: int) -> list:
        """The box as this emulated model writes it."""
        x1, y1, x2, y2 = box
        if self._fmt == FORMAT_GRID_1000:
            return [round(x1 * 1000 / width), round(y1 * 1000 / height),
                    round(x2 * 1000 / width), round(y2 * 1000 / height)]
        if self._fmt == FORMAT_NORMALIZED:
            return [round(x1 / width, 4), round(y1 / height, 4),
                    round(x2 / width, 4), round(y2 / height, 4)]
        return [x1, y1, x2, y2]


def _colour_name(rgb: np.ndarray) -> str:
    """The palette name nearest to an RGB colour."""
    return min(_COLOURS, key=lambda n: float(np.sum((np.asarray(_COLOURS[n]) - rgb) ** 2)))
