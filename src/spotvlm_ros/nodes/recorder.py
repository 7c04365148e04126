"""The answer recorder of `spotvlm run --record`: edge answers, cloud replies and ground truth
into an MCAP bag."""

from __future__ import annotations

import pathlib
import threading
from typing import Union

from spotvlm_ros.io.bags import (
    ANSWER_TYPE, CLOUD_CONTEXT_TYPE, GROUND_TRUTH_TYPE, spotvlm_typestore)

ANSWER_TOPIC = 'answer'  # edge_node's EdgeAnswer publisher (relative: follows the namespace)
TRUTH_TOPIC = 'ground_truth'  # image_source republishes the bag's /ground_truth under its namespace
IMAGE_TOPIC = 'image'  # image_source's camera frames
CLOUD_TOPIC = 'cloud_context'  # cloud_bridge's replies (live mode scores cloud_wait from them)


class AnswerRecorder:
    """Records EdgeAnswer, CloudContext and GroundTruth into an MCAP bag until close().

    Topics (relative, so they follow `namespace`): answer (ANSWER_QOS), cloud_context
    (CLOUD_CONTEXT_QOS), ground_truth (PASSTHROUGH_QOS: transient local, so a late match still
    gets the first frames). It also
    subscribes to `image`, records nothing of it, and so counts as one more image subscriber
    for image_source's wait_for_subscribers: the bag does not start before the recorder is
    discovered.

    ``with AnswerRecorder(path) as rec: ...`` or call close() yourself; the bag is complete
    (metadata written) only after close().

    image_source gives a frame's ground truth the frame's own (re)stamp, and an answer carries
    the header of the frame it answers, so the two match by stamp. The recorder runs on an
    rclpy context of its own (so it never touches the global one), spinning a
    single-threaded executor on a background thread. Subscriptions take the raw CDR bytes
    (``raw=True``: no deserialize/serialize round trip), and every message is written as it
    arrives, with the receive time (ROS system clock, the clock image_source restamps frames
    with) as the bag's log time. The evaluator reads the bag with spotvlm_ros.io.bags.
    """

    def __init__(self, bag_path: Union[str, pathlib.Path], namespace: str = '',
                 node_name: str = 'spotvlm_eval_recorder', image_reliable: bool = True):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rosbags.rosbag2 import StoragePlugin, Writer
        from sensor_msgs.msg import Image
        from spotvlm_msgs.msg import CloudContext, EdgeAnswer, GroundTruth

        from spotvlm_ros.nodes.qos import (
            ANSWER_QOS, CLOUD_CONTEXT_QOS, PASSTHROUGH_QOS, image_qos)

        self.path = pathlib.Path(bag_path)
        self.counts = {ANSWER_TYPE: 0, GROUND_TRUTH_TYPE: 0, CLOUD_CONTEXT_TYPE: 0}
        self._lock = threading.Lock()
        self._closed = False
        store = spotvlm_typestore()
        self._writer = Writer(self.path, version=9, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        self._context = rclpy.Context()
        try:
            rclpy.init(args=[], context=self._context)
            ns = namespace if not namespace or namespace.startswith('/') else '/' + namespace
            self.node = rclpy.create_node(node_name, namespace=ns or None,
                                          context=self._context)
            self._answer_sub = self.node.create_subscription(
                EdgeAnswer, ANSWER_TOPIC, self._callback(ANSWER_TYPE), ANSWER_QOS, raw=True)
            self._truth_sub = self.node.create_subscription(
                GroundTruth, TRUTH_TOPIC, self._callback(GROUND_TRUTH_TYPE), PASSTHROUGH_QOS,
                raw=True)
            self._cloud_sub = self.node.create_subscription(
                CloudContext, CLOUD_TOPIC, self._callback(CLOUD_CONTEXT_TYPE), CLOUD_CONTEXT_QOS,
                raw=True)
            # Raw bytes, dropped: this subscription is only the start gate (see above).
            self._image_sub = self.node.create_subscription(
                Image, IMAGE_TOPIC, lambda raw: None, image_qos(image_reliable), raw=True)
            self._conns = {
                ANSWER_TYPE: self._writer.add_connection(
                    self._answer_sub.topic_name, ANSWER_TYPE, typestore=store),
                GROUND_TRUTH_TYPE: self._writer.add_connection(
                    self._truth_sub.topic_name, GROUND_TRUTH_TYPE, typestore=store),
                CLOUD_CONTEXT_TYPE: self._writer.add_connection(
                    self._cloud_sub.topic_name, CLOUD_CONTEXT_TYPE, typestore=store),
            }
            self._executor = SingleThreadedExecutor(context=self._context)
            self._executor.add_node(self.node)
        except BaseException:
            self._context.try_shutdown()
            self._writer.close()
            raise
        self._thread = threading.Thread(target=self._spin, name='answer-recorder', daemon=True)
        self._thread.start()

    @property
    def answer_topic(self) -> str:
        return self._answer_sub.topic_name

    @property
    def truth_topic(self) -> str:
        return self._truth_sub.topic_name

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException

        try:
            self._executor.spin()  # blocks in rcl_wait; shutdown() wakes it
        except ExternalShutdownException:
            pass

    def _callback(self, msgtype: str):
        def write(raw: bytes) -> None:
            self._write(msgtype, bytes(raw))
        return write

    def _write(self, msgtype: str, raw: bytes) -> None:
        stamp_ns = self.node.get_clock().now().nanoseconds  # receive time, the log time
        with self._lock:
            if self._closed:
                return
            self._writer.write(self._conns[msgtype], stamp_ns, raw)
            self.counts[msgtype] += 1

    def answer_publishers(self) -> int:
        """How many answer publishers (edge nodes) this recorder has discovered."""
        return self.node.count_publishers(self.answer_topic)

    def close(self) -> dict:
        """Stop spinning and finish the bag (safe to call twice); message counts by type."""
        with self._lock:
            if self._closed:
                return dict(self.counts)
            self._closed = True
        self._executor.shutdown(timeout_sec=5)
        self._thread.join(5)
        self.node.destroy_node()
        self._context.try_shutdown()
        self._writer.close()
        return dict(self.counts)

    def __enter__(self) -> 'AnswerRecorder':
        return self

    def __exit__(self, *exc) -> None:
        self.close()
