"""cloud_bridge: sends keyframes to the cloud LVLM and publishes its late replies as CloudContext."""

from __future__ import annotations

import threading
import time

from rclpy.node import Node
from sensor_msgs.msg import Image
from spotvlm_msgs.msg import CloudContext

from spotvlm_ros.cloud.client import SUPERSEDED
from spotvlm_ros.cloud.worker import CloudWorker
from spotvlm_ros.core.keyframes import KeyframePolicy
from spotvlm_ros.core.types import CloudAnswer
from spotvlm_ros.nodes import convert
from spotvlm_ros.nodes.diagnostics import (
    DiagnosticsPublisher, RollingStats, make_status, threshold_level, worst)
from spotvlm_ros.nodes.images import frame_or_skip, subscribe_images
from spotvlm_ros.nodes.params import declare_node
from spotvlm_ros.nodes.qos import CLOUD_CONTEXT_QOS, image_qos
from spotvlm_ros.nodes.runner import run_node


class CloudBridge(Node):
    """Applies the keyframe policy; requests never block the executor."""

    def __init__(self, **kwargs):
        super().__init__('cloud_bridge', **kwargs)
        self.params = declare_node(self, 'cloud_bridge')
        self.policy = KeyframePolicy(self.params.keyframe)
        self.worker = CloudWorker(self.params.cloud)
        self._lock = threading.Lock()
        self._in_flight = 0
        self._seq = 0
        self.round_trip = RollingStats(50)
        self.counts = {'frames': 0, 'bad_frames': 0, 'sent': 0, 'ok': 0, 'timeout': 0,
                       'error': 0, 'superseded': 0}
        self._last_reason = 'no frame yet'
        self._pub = self.create_publisher(CloudContext, 'cloud_context', CLOUD_CONTEXT_QOS)
        subscribe_images(self, self.params.node.image_transport, self._on_image,
                         image_qos(self.params.node.image_reliable))
        self._diag = DiagnosticsPublisher(self, 1.0, self._status)
        cloud, keyframe = self.params.cloud, self.params.keyframe
        self.get_logger().info(f'cloud {cloud.base_url} model {cloud.model}; at most '
                               f'{keyframe.max_in_flight} in flight, keyframe every '
                               f'{keyframe.min_interval_s:g}-{keyframe.max_interval_s:g} s')

    def _on_image(self, msg: Image) -> None:
        self.counts['frames'] += 1
        stamp = convert.to_sec(msg.header.stamp)
        with self._lock:
            in_flight = self._in_flight
        frame = frame_or_skip(self, msg, self.counts)
        if frame is None:
            return
        with self._lock:  # the client thread records replies into the same policy
            decision = self.policy.should_send(stamp, frame, in_flight, time.monotonic())
        if not decision:
            if decision.reason != self._last_reason and 'circuit' in decision.reason:
                self.get_logger().warning(f'not sending keyframes: {decision.reason}')
            self._last_reason = decision.reason
            return
        with self._lock:
            self._in_flight += 1
            self._seq += 1
            seq = self._seq
        self.counts['sent'] += 1
        header = msg.header
        self.worker.submit(frame, stamp, seq, self.params.node.query,
                           callback=lambda answer: self._on_answer(answer, header))

    def _on_answer(self, answer: CloudAnswer, header) -> None:
        """On the client's thread: publish the reply (or the failure) with the keyframe's header."""
        ok = answer.status == 'ok'
        superseded = answer.error.startswith((SUPERSEDED, 'cancelled'))
        with self._lock:
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


def main(argv=None) -> int:
    return run_node(CloudBridge, argv)


if __name__ == '__main__':
    raise SystemExit(main())
