"""cloud_bridge: sends keyframes to the cloud LVLM and publishes its late replies as CloudContext."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from rclpy.node import Node
from sensor_msgs.msg import Image
from spotvlm_msgs.msg import CloudContext, CloudRequest

from spotvlm_ros.cloud.client import SEND_VISUAL_TOKENS, SUPERSEDED
from spotvlm_ros.cloud.worker import CloudWorker
from spotvlm_ros.core.keyframes import KeyframePolicy
from spotvlm_ros.core.types import CloudAnswer
from spotvlm_ros.nodes import convert
from spotvlm_ros.nodes.diagnostics import (
    DiagnosticsPublisher, RollingStats, make_status, threshold_level, worst)
from spotvlm_ros.nodes.images import frame_or_skip, subscribe_images
from spotvlm_ros.nodes.params import ParameterError, declare_node
from spotvlm_ros.nodes.qos import CLOUD_CONTEXT_QOS, CLOUD_REQUEST_QOS, image_qos
from spotvlm_ros.nodes.runner import run_node


class CloudBridge(Node):
    """Applies the keyframe policy, sends the frames the edge node asks for; requests never
    block the executor."""

    def __init__(self, **kwargs):
        super().__init__('cloud_bridge', **kwargs)
        self.params = declare_node(self, 'cloud_bridge')
        self.policy = KeyframePolicy(self.params.keyframe)
        self.encoder = self._visual_encoder()
        self.worker = CloudWorker(self.params.cloud, encoder=self.encoder)
        self._lock = threading.Lock()
        self._in_flight = 0  # keyframes the policy sent, not yet answered
        self._seq = 0
        # The last few frames by stamp, for cloud_request; requests that came before their
        # frame; (stamp, query) already sent, so no frame goes twice for one question.
        self._frames: OrderedDict = OrderedDict()
        self._early: OrderedDict = OrderedDict()
        self._sent: OrderedDict = OrderedDict()
        self.round_trip = RollingStats(50)
        self.counts = {'frames': 0, 'bad_frames': 0, 'sent': 0, 'requested': 0,
                       'requests_missed': 0, 'ok': 0, 'timeout': 0, 'error': 0, 'superseded': 0}
        self._last_reason = 'no frame yet'
        self._pub = self.create_publisher(CloudContext, 'cloud_context', CLOUD_CONTEXT_QOS)
        subscribe_images(self, self.params.node.image_transport, self._on_image,
                         image_qos(self.params.node.image_reliable))
        if self.params.node.request_ring_size:
            self.create_subscription(CloudRequest, 'cloud_request', self._on_request,
                                     CLOUD_REQUEST_QOS)
        self._diag = DiagnosticsPublisher(self, 1.0, self._status)
        cloud, keyframe = self.params.cloud, self.params.keyframe
        sent = 'JPEG keyframes' if self.encoder is None else \
            f'visual tokens ({cloud.embeds_dtype}) of {cloud.encoder_model}\'s encoder'
        self.get_logger().info(f'cloud {cloud.base_url} model {cloud.model}, sending {sent}; '
                               f'at most {keyframe.max_in_flight} in flight, keyframe every '
                               f'{keyframe.min_interval_s:g}-{keyframe.max_interval_s:g} s')

    def _visual_encoder(self):
        """The cloud checkpoint's vision encoder, when keyframes travel as visual tokens."""
        cloud = self.params.cloud
        if cloud.send != SEND_VISUAL_TOKENS:
            return None
        from spotvlm_ros.cloud.visual_encoder import VisualTokenEncoder
        from spotvlm_ros.models.base import ModelLoadError

        started = time.monotonic()
        try:
            encoder = VisualTokenEncoder(cloud.encoder_model, cloud.embeds_dtype)
        except ModelLoadError as err:  # the run stops with the reason, as for a bad value
            raise ParameterError(f'cloud.encoder_model: {err}') from None
        self.get_logger().info(f'loaded the vision encoder of {cloud.encoder_model} in '
                               f'{time.monotonic() - started:.1f} s')
        return encoder

    def _on_image(self, msg: Image) -> None:
        self.counts['frames'] += 1
        stamp = convert.to_sec(msg.header.stamp)
        with self._lock:
            in_flight = self._in_flight
        frame = frame_or_skip(self, msg, self.counts)
        if frame is None:
            return
        key = convert.stamp_key(msg.header)
        with self._lock:  # the client thread records replies into the same policy
            decision = self.policy.should_send(stamp, frame, in_flight, time.monotonic())
            early = self._early.pop(key, [])
            if self.params.node.request_ring_size:
                _keep(self._frames, key, (msg.header, frame),
                      self.params.node.request_ring_size)
        if decision:
            self._submit(msg.header, frame, self.params.node.query, requested=False)
        elif decision.reason != self._last_reason and 'circuit' in decision.reason:
            self.get_logger().warning(f'not sending keyframes: {decision.reason}')
        self._last_reason = decision.reason
        for query in early:
            self._submit(msg.header, frame, query, requested=True)

    def _on_request(self, msg: CloudRequest) -> None:
        """The edge node waits for the cloud on this frame: send it, unless it went already."""
        key = convert.stamp_key(msg.header)
        with self._lock:
            held = self._frames.get(key)
            newest = next(reversed(self._frames), None)
            if held is None and newest is not None and key < newest:
                self.counts['requests_missed'] += 1  # older than the frames still held
                return
            if held is None:  # its frame is still on the way here: sent when it comes
                size = self.params.node.request_ring_size
                if len(self._early) >= size and key not in self._early:
                    self.counts['requests_missed'] += 1
                _keep(self._early, key, self._early.get(key, []) + [msg.query], size)
                return
        self._submit(held[0], held[1], msg.query, requested=True)

    def _submit(self, header, frame, query: str, requested: bool) -> None:
        """Send one frame for `query`, once; a requested one skips the policy, not the breaker."""
        now = time.monotonic()
        with self._lock:
            if (convert.stamp_key(header), query) in self._sent:
                return
            if requested and not self.policy.breaker.allow(now):
                self.counts['requests_missed'] += 1
                return
            if requested:
                self.policy.breaker.on_send(now)
            else:
                self._in_flight += 1
            _keep(self._sent, (convert.stamp_key(header), query), True, SENT_MEMORY)
            self._seq += 1
            seq = self._seq
        self.counts['requested' if requested else 'sent'] += 1
        self.worker.submit(frame, convert.to_sec(header.stamp), seq, query,
                           callback=lambda answer: self._on_answer(answer, header, requested))

    def _on_answer(self, answer: CloudAnswer, header, requested: bool = False) -> None:
        """On the client's thread: publish the reply (or the failure) with the keyframe's header."""
        ok = answer.status == 'ok'
        superseded = answer.error.startswith((SUPERSEDED, 'cancelled'))
        with self._lock:
            if not requested:
                self._in_flight -= 1
            # A request made useless by a newer answer (or by our own shutdown) is no failure.
            # The breaker's clock is monotonic: frame stamps may be a bag's or sim time.
            self.policy.record_reply(time.monotonic(), ok or superseded)
        if superseded:
            self.counts['superseded'] += 1
            return
        self.counts[answer.status if answer.status in self.counts else 'error'] += 1
        msg = convert.cloud_answer_to_msg(answer, header)
        if ok:
            self.round_trip.add(msg.round_trip_s)
            self.get_logger().debug(f'keyframe {answer.keyframe_seq}: {msg.round_trip_s:.2f} s')
        else:
            self.get_logger().warning(f'keyframe {answer.keyframe_seq} {answer.status}: '
                                      f'{answer.error}', throttle_duration_sec=5.0)
        self._pub.publish(msg)

    def close(self) -> None:
        self.worker.close()
        if self.encoder is not None:
            self.encoder.close()

    def _status(self):
        p50, p95 = self.round_trip.percentile(50), self.round_trip.percentile(95)
        failures = self.counts['timeout'] + self.counts['error']
        with self._lock:
            breaker = self.policy.breaker.describe(time.monotonic())
        level = threshold_level(p95, self.params.diagnostics.round_trip_warn_s,
                                self.params.diagnostics.round_trip_error_s)
        if failures and not self.counts['ok']:
            level = worst(level, threshold_level(failures, 1, 10))
        if 'open' in breaker:
            level = worst(level, threshold_level(1, 1, 2))
        with self._lock:
            in_flight = self._in_flight
        return make_status(self, level, breaker, {
            'round_trip_p50_s': p50, 'round_trip_p95_s': p95, 'in_flight': in_flight,
            **self.counts})


SENT_MEMORY = 256  # (stamp, query) pairs remembered as sent


def _keep(ring: OrderedDict, key, value, size: int) -> None:
    """Put `key` last in `ring`, then drop the oldest beyond `size`."""
    ring[key] = value
    ring.move_to_end(key)
    while len(ring) > size:
        ring.popitem(last=False)


def main(argv=None) -> int:
    return run_node(CloudBridge, argv)


if __name__ == '__main__':
    raise SystemExit(main())
