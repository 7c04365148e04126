"""context_fuser: late cloud contexts + recent frames -> the FusedContext the edge model uses."""

from __future__ import annotations

import collections
import threading
from typing import Optional

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import Image
from spotvlm_msgs.msg import CloudContext, EdgeAnswer, FusedContext

from spotvlm_ros.core.composition import fuse
from spotvlm_ros.core.context import ContextStore
from spotvlm_ros.core.flow import FlowMemo, track_path
from spotvlm_ros.nodes import convert
from spotvlm_ros.nodes.diagnostics import (DiagnosticsPublisher, make_status, threshold_level)
from spotvlm_ros.models.base import ModelLoadError
from spotvlm_ros.models.tokens import token_counter
from spotvlm_ros.nodes.images import subscribe_images, thumbnail_or_skip
from spotvlm_ros.nodes.params import ParameterError, declare_node
from spotvlm_ros.nodes.qos import ANSWER_QOS, CLOUD_CONTEXT_QOS, FUSED_CONTEXT_QOS, image_qos
from spotvlm_ros.nodes.runner import run_node


class ContextFuser(Node):
    """Keeps cloud contexts and a short ring of frames; publishes the fused context."""

    def __init__(self, **kwargs):
        super().__init__('context_fuser', **kwargs)
        self.params = declare_node(self, 'context_fuser')
        # Budgets count the edge model's own tokens (a number is one token per digit).
        try:
            count_tokens = token_counter(self.params.node.tokenizer)
        except ModelLoadError as err:
            raise ParameterError(f'tokenizer: {err}') from None
        self.store = ContextStore(self.params.context, count_tokens)
        self._frames: collections.deque = collections.deque(maxlen=self.params.node.frame_ring_size)
        self._lock = threading.Lock()
        self._last_publish: Optional[float] = None
        self._first_stamp: Optional[float] = None
        self._newest: Optional[tuple] = None  # (stamp, header, thumbnail, full size): newest
        self._flow_memo = FlowMemo()  # a reply's steps through the ring, tracked once
        self.counts = {'frames': 0, 'bad_frames': 0, 'contexts': 0, 'failed_contexts': 0,
                       'edge_answers': 0, 'published': 0}
        self._pub = self.create_publisher(FusedContext, 'fused_context', FUSED_CONTEXT_QOS)
        subscribe_images(self, self.params.node.image_transport, self._on_image,
                         image_qos(self.params.node.image_reliable))
        self.create_subscription(CloudContext, 'cloud_context', self._on_cloud,
                                 CLOUD_CONTEXT_QOS)
        # The edge's own answers are its history until a cloud answer replaces them.
        self.create_subscription(EdgeAnswer, 'answer', self._on_answer, ANSWER_QOS)
        self._diag = DiagnosticsPublisher(self, 1.0, self._status)
        self.get_logger().info(
            f'fusing cloud contexts: max age {self.params.context.max_age_s:.1f} s, '
            f'{self.params.context.max_turns} turns, '
            f'ring of {self.params.node.frame_ring_size} frames')

    def _on_image(self, msg: Image) -> None:
        # Frames are only tracked at flow resolution: the ring and the newest frame are kept
        # that small (30 4K frames would be 750 MB), and a JPEG is decoded no larger.
        thumbnail = thumbnail_or_skip(self, msg, self.counts, self.params.focus.flow_max_side)
        if thumbnail is None:
            return
        small, size = thumbnail
        stamp = convert.to_sec(msg.header.stamp)
        with self._lock:
            if self._frames and stamp < self._frames[-1][0]:
                self.get_logger().warning(f'time went back {self._frames[-1][0] - stamp:.3f} s:'
                                          ' forgetting frames and contexts')
                self._frames.clear()
                self.store.clear()
                self._flow_memo.clear()
                self._first_stamp = None
                self._last_publish = None  # else no frame publishes until time catches up
            if self._first_stamp is None:
                self._first_stamp = stamp
            self._frames.append((stamp, msg.header, small))
            self._newest = (stamp, msg.header, small, size)
        self.counts['frames'] += 1
        period = self.params.node.min_publish_period_s
        if self._last_publish is None or stamp - self._last_publish >= period:
            self._publish()

    def _on_cloud(self, msg: CloudContext) -> None:
        answer = convert.cloud_answer_from_msg(msg)
        if answer.status != 'ok':
            self.counts['failed_contexts'] += 1
            self.get_logger().info(f'cloud keyframe {answer.keyframe_seq} failed '
                                   f'({answer.status}): {answer.error}')
            return
        if self.store.add_cloud(answer):
            self.counts['contexts'] += 1
            self._publish()

    def _on_answer(self, msg: EdgeAnswer) -> None:
        if msg.answer and self.store.add_edge(convert.to_sec(msg.header.stamp), msg.query,
                                              msg.answer):
            self.counts['edge_answers'] += 1

    def _newest_frame(self):
        with self._lock:
            return self._newest

    def _track_images(self, key_stamp: float, stamp: float) -> tuple:
        """(keyframe, frames between, their stamps) from the ring, shrunk, for flow from
        `key_stamp` to the frame at `stamp`; (None, (), ()) when the keyframe is not held."""
        with self._lock:
            held = [(s, frame) for s, _, frame in self._frames
                    if key_stamp - 1e-4 < s < stamp + 1e-4]
        if not held or abs(held[0][0] - key_stamp) >= 1e-4:
            return None, (), ()
        via = [held[i] for i in track_path([s for s, _ in held], self.params.focus.flow_hop_s)]
        return held[0][1], [frame for _, frame in via[1:-1]], [s for s, _ in via[1:-1]]

    def fuse(self, stamp: float, header, small: np.ndarray, size: tuple) -> FusedContext:
        """The fused context for the frame at `stamp` of `size`, held as its thumbnail."""
        newest = self.store.newest_cloud(stamp)
        key, via, via_stamps = self._track_images(newest.keyframe_stamp, stamp) \
            if newest is not None else (None, (), ())
        fused = fuse(self.store, stamp, size, self.params.focus, key_image=key,
                     cur_image=small, via_images=via, via_stamps=via_stamps,
                     memo=self._flow_memo)
        return convert.fused_to_msg(fused, header)

    def _publish(self) -> None:
        newest = self._newest_frame()
        if newest is None:
            return
        stamp, header, small, size = newest
        self.store.prune(stamp)
        self._pub.publish(self.fuse(stamp, header, small, size))
        self._last_publish = stamp
        self.counts['published'] += 1

    def _status(self):
        diag = self.params.diagnostics
        newest = self._newest_frame()
        age = self.store.newest_age(newest[0]) if newest else None
        if age is None and newest is not None and self._first_stamp is not None:
            # No context at all is as bad as one that old: it is the cloud-down signal.
            waited = newest[0] - self._first_stamp
            level = threshold_level(waited, diag.context_age_warn_s, diag.context_age_error_s)
            message = f'no cloud context for {waited:.1f} s'
        else:
            level = threshold_level(age, diag.context_age_warn_s, diag.context_age_error_s)
            message = 'no frame yet' if age is None else f'context age {age:.1f} s'
        return make_status(self, level, message, {'context_age_s': age, **self.counts})


def main(argv=None) -> int:
    return run_node(ContextFuser, argv)


if __name__ == '__main__':
    raise SystemExit(main())
