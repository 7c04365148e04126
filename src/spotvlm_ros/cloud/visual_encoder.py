"""The partitioned baseline's edge half: the cloud checkpoint's vision encoder on this computer.

With `cloud.send: visual_tokens` the bridge sends a keyframe as its visual tokens (an
`image_embeds` part, see `embeds.py`) in place of its JPEG, and the server runs only the
decoder. The encoder must be the served checkpoint's own: tokens of another encoder mean
nothing to its decoder.
"""

from __future__ import annotations

import numpy as np

from spotvlm_ros.cloud.embeds import EMBED_DTYPES, embeds_part
from spotvlm_ros.cloud.encoding import sent_image


class VisualTokenEncoder:
    """Turns a keyframe into the `image_embeds` part that carries its visual tokens."""

    def __init__(self, model: str, dtype: str = 'float16', device: str = 'cpu'):
        if dtype not in EMBED_DTYPES:
            raise ValueError(f'dtype: unknown {dtype!r}; one of {EMBED_DTYPES}')
        # Imported here: torch and transformers load only where tokens are sent.
        from spotvlm_ros.models.checkpoint import resolve_checkpoint
        from spotvlm_ros.models.factory import make_backend

        # The whole checkpoint is loaded for its vision tower: small for the project's own
        # models; a 72B model's tower would be loaded alone.
        self._backend = make_backend('transformers', model=str(resolve_checkpoint(model)),
                                     device=device)
        self.dtype = dtype
        self.name = self._backend.name

    def part(self, frame: np.ndarray, size: tuple[int, int]) -> dict:
        """The content part of `frame` (HxWx3 uint8 RGB) encoded at (width, height) `size`."""
        from spotvlm_ros.models.split import encode_frame

        return embeds_part(encode_frame(self._backend, sent_image(frame, size)), self.dtype)

    def close(self) -> None:
        self._backend.close()
