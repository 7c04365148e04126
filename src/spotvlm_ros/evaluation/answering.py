"""The edge and cloud models' answers for the evaluator, each computed once per distinct input."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional, Sequence

from spotvlm_ros.cloud.embeds import embeds_part, payload_bytes, tokens_of_part
from spotvlm_ros.cloud.encoding import sent_image
from spotvlm_ros.cloud.replies import answer_from_reply, keyframe_prompt
from spotvlm_ros.core.composition import EdgeInputs
from spotvlm_ros.evaluation.edge_cost import EdgeCostModel
from spotvlm_ros.models.batched import BatchAnswer, generate_batch
from spotvlm_ros.models.prompt import build_messages
from spotvlm_ros.models.split import answer_from_tokens, encode_frame
from spotvlm_ros.scenes.large_model import SimulatedLargeModel, visual_token_bytes


@dataclass(frozen=True)
class Answer:
    """A model's reply, what it cost, and whether focus crops were in its input."""

    text: str  # the raw reply, as scored
    cost_s: float  # the fixed cost, or the measured inference time
    prompt_tokens: int
    new_tokens: int
    crops: int = 0


class Answerer:
    """Asks the edge and cloud backends; an identical question is answered from the cache.

    `edge_cost_s` None measures each answer's inference time (once: a cached answer keeps its
    first measurement); a number is the fixed cost, which keeps runs bit-identical; an
    `edge_cost_model` charges what it predicts from the answer's tokens and images instead.
    The cloud model gets the bridge's prompt under `cloud_config` (the bridge's
    CloudClientConfig) and its replies are read by the bridge's parser; it sees the keyframe
    resized as the bridge sends it, without the JPEG step (decoded pixels would differ slightly).
    A SimulatedLargeModel as `cloud` answers from the frame's ground truth instead.
    """

    def __init__(self, edge, cloud, edge_cost_s: Optional[float] = 0.1,
                 cloud_cost_s: float = 0.0, cloud_config=None,
                 edge_cost_model: Optional[EdgeCostModel] = None):
        from spotvlm_ros.cloud.client import CloudClientConfig  # aiohttp: only when asked

        self.edge_backend = edge
        self.cloud_backend = cloud
        self.cloud_config = cloud_config or CloudClientConfig()
        self.edge_cost_s = edge_cost_s
        self.edge_cost_model = edge_cost_model
        self.cloud_cost_s = cloud_cost_s
        self._edge: dict = {}
        self._cloud: dict = {}
        self._split: dict = {}
        self._tokens: dict = {}  # frame index -> its VisualTokens, for partitioned
        self.calls = {'edge': 0, 'cloud': 0}

    @property
    def measured(self) -> bool:
        """Whether edge answers are charged their own measured time."""
        return self.edge_cost_s is None and self.edge_cost_model is None

    def _edge_cost(self, measured_s: Optional[float], prompt_tokens: int, new_tokens: int,
                   crops: int) -> float:
        if self.edge_cost_model is not None:
            return self.edge_cost_model.cost(prompt_tokens, new_tokens, 1 + crops)
        return measured_s if self.edge_cost_s is None else self.edge_cost_s

    def edge_answers(self) -> list:
        """Every distinct edge Answer computed so far."""
        return list(self._edge.values())

    def edge(self, frame, question: str, inputs: Optional[EdgeInputs] = None) -> Answer:
        """The edge model on `frame` with a strategy's inputs (None: the frame alone)."""
        turns, regions = (inputs.turns, inputs.regions) if inputs else ((), ())
        key = (frame.index, question, tuple(turns), tuple(regions))  # all frozen
        if key not in self._edge:
            plan = inputs.focus if inputs else None
            result = self.edge_backend.answer(frame.image, question, list(turns), plan)
            self.calls['edge'] += 1
            crops = len(plan.crops) if plan else 0
            cost = self._edge_cost(result.timings.total_s, result.prompt_tokens,
                                   result.new_tokens, crops)
            self._edge[key] = Answer(result.text, cost, result.prompt_tokens, result.new_tokens,
                                     crops)
        return self._edge[key]

    def prefetch_edge_inputs(self, requests: Sequence[tuple], batch_size: int = 16) -> None:
        """The edge model's answers to these (frame, question, EdgeInputs), batched, once each.

        Measured costs are single answers' own times: then edge() measures them one by one.
        """
        todo = {}
        for frame, question, inputs in requests:
            key = (frame.index, question, tuple(inputs.turns), tuple(inputs.regions))
            if key not in self._edge:
                todo[key] = (frame, question, inputs)
        if len(todo) < 2 or self.measured:
            return
        chats = [build_messages(f.image, q, i.turns, i.focus) for f, q, i in todo.values()]
        replies = generate_batch(self.edge_backend, chats, batch_size,
                                 [i.focus for _, _, i in todo.values()])
        self.calls['edge'] += len(todo)
        for (key, (_, _, inputs)), reply in zip(todo.items(), replies):
            cost = self._edge_cost(None, reply.prompt_tokens, reply.new_tokens, inputs.crops)
            self._edge[key] = Answer(reply.text, cost, reply.prompt_tokens, reply.new_tokens,
                                     inputs.crops)

    def prefetch_edge(self, asks: Sequence[tuple], batch_size: int = 16) -> None:
        """The edge model's answers to these (frame, question) pairs with no context, batched."""
        todo = list({(f.index, q): (f, q) for f, q in asks
                     if (f.index, q, (), ()) not in self._edge}.values())
        if len(todo) < 2 or self.measured:
            return  # measured costs are single answers' own times: edge() measures them
        replies = generate_batch(self.edge_backend, [build_messages(f.image, q) for f, q in todo],
                                 batch_size)
        self.calls['edge'] += len(todo)
        for (frame, question), reply in zip(todo, replies):
            self._edge[(frame.index, question, (), ())] = Answer(
                reply.text, self._edge_cost(None, reply.prompt_tokens, reply.new_tokens, 0),
                reply.prompt_tokens, reply.new_tokens)

    def cloud(self, frame, question: str, seq: int = 0) -> tuple:
        """(CloudAnswer as the bridge would publish it, the raw Answer) for a keyframe."""
        key = (frame.index, question)
        if key not in self._cloud:
            self.prefetch_cloud([(frame, question)])
        parsed, raw = self._cloud[key]
        return dataclasses.replace(parsed, keyframe_seq=seq), raw

    def partitioned(self, frame, question: str, dtype: str = 'float16') -> tuple:
        """(the cloud decoder's Answer on this frame's visual tokens as sent, payload bytes).

        The frame is encoded at the size the bridge would send it, with the bridge's prompt."""
        key = (frame.index, question, dtype)
        if key not in self._split and isinstance(self.cloud_backend, SimulatedLargeModel):
            # The whole model's reply (cached); the link carries a 72B model's tokens.
            size = keyframe_prompt(self.cloud_config, frame.size)[1]
            self._split[key] = (self.cloud(frame, question)[1], visual_token_bytes(size, dtype))
        if key not in self._split:
            prompt, size = keyframe_prompt(self.cloud_config, frame.size)
            if frame.index not in self._tokens:  # one encoding per frame, whatever is asked
                self._tokens[frame.index] = encode_frame(self.cloud_backend,
                                                         sent_image(frame.image, size))
            part = embeds_part(self._tokens[frame.index], dtype)
            result = answer_from_tokens(self.cloud_backend, tokens_of_part(part), question,
                                        prompt)
            self.calls['cloud'] += 1
            self._split[key] = (Answer(result.text, self.cloud_cost_s, result.prompt_tokens,
                                       result.new_tokens), payload_bytes(part))
        return self._split[key]

    def prefetch_cloud(self, asks: Sequence[tuple], batch_size: int = 16) -> None:
        """Compute the cloud's replies to these (frame, question) pairs, batched, once each."""
        todo = list({(f.index, q): (f, q) for f, q in asks if (f.index, q) not in self._cloud}
                    .values())
        if not todo:
            return
        sent = [(f, q, *keyframe_prompt(self.cloud_config, f.size)) for f, q in todo]
        if isinstance(self.cloud_backend, SimulatedLargeModel):
            texts = [self.cloud_backend.reply_about(f, q, size) for f, q, _, size in sent]
            replies = [BatchAnswer(t, 0, len(t.split())) for t in texts]
        elif len(todo) == 1:  # the backend's own path: its token counts, no padding
            frame, question, prompt, size = sent[0]
            result = self.cloud_backend.answer(sent_image(frame.image, size), question,
                                               system_prompt=prompt)
            replies = [BatchAnswer(result.text, result.prompt_tokens, result.new_tokens)]
        else:
            chats = [build_messages(sent_image(f.image, size), q, system_prompt=prompt)
                     for f, q, prompt, size in sent]
            replies = generate_batch(self.cloud_backend, chats, batch_size)
        self.calls['cloud'] += len(todo)
        model = getattr(self.cloud_backend, 'name', '')
        for (frame, question, _, size), reply in zip(sent, replies):
            parsed, _ = answer_from_reply(reply.text, self.cloud_config, size, frame.size,
                                          frame.stamp, 0, question, model)
            raw = Answer(reply.text, self.cloud_cost_s, reply.prompt_tokens, reply.new_tokens)
            self._cloud[(frame.index, question)] = (parsed, raw)
