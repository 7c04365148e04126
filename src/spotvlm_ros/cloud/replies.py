"""The bridge's side of one cloud exchange: the prompt a keyframe goes with, and the CloudAnswer
read from the reply. The cloud client and the evaluator both use these two functions."""

from __future__ import annotations

from spotvlm_ros.cloud.encoding import sent_size
from spotvlm_ros.cloud.grounding import parse_regions
from spotvlm_ros.cloud.prompts import system_prompt
from spotvlm_ros.cloud.structured import parse_structured
from spotvlm_ros.core.regions import fenced_reply
from spotvlm_ros.core.types import CloudAnswer

Size = tuple[int, int]


def keyframe_prompt(config, frame_size: Size) -> tuple[str, Size]:
    """The system prompt for a keyframe of `frame_size` and the (width, height) it is sent at,
    under a CloudClientConfig's grounding format, side limit and multiple."""
    size = sent_size(frame_size[0], frame_size[1], config.max_image_side, config.image_multiple)
    return system_prompt(config.grounding_format, size), size


def answer_from_reply(content: str, config, size_sent: Size, frame_size: Size, stamp: float,
                      seq: int, query: str, model: str, request_time: float = 0.0,
                      response_time: float = 0.0) -> tuple[CloudAnswer, str]:
    """The CloudAnswer of a reply ({answer, regions} JSON, or prose and a ```json fence) to a
    keyframe sent at `size_sent`, regions in the keyframe's pixels, and the parser's warning;
    GroundingError when the reply cannot be read."""
    structured = parse_structured(content)
    if structured is not None:
        content = fenced_reply(*structured)  # the prose-plus-fence form the parser reads
    text, regions, warning = parse_regions(content, config.grounding_format, size_sent,
                                           frame_size, config.max_reply_bytes)
    answer = CloudAnswer(keyframe_stamp=stamp, keyframe_seq=seq, query=query, text=text,
                         regions=regions, model=model, request_time=request_time,
                         response_time=response_time, image_size=frame_size)
    return answer, warning

