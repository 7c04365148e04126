"""image_source: publishes camera frames from a folder, a video or camera, or a bag."""

from __future__ import annotations

import collections
import itertools
import threading
import time
from typing import Iterator

import rclpy
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import CompressedImage, Image

from spotvlm_ros.nodes import convert
from spotvlm_ros.io.frame_sources import (
    Frame, SourceError, bag_frames, bag_image_topic, bag_topics, capture_frames, folder_frames)
from spotvlm_ros.nodes.images import rgb_to_image
from spotvlm_ros.nodes.params import declare_node
from spotvlm_ros.nodes.qos import PASSTHROUGH_QOS, image_qos
from spotvlm_ros.nodes.runner import run_node

# At the bag's end the process exits: this long at most for reliable subscribers to have the
# last messages (a sample not yet acknowledged would be lost with the process).
FLUSH_S = 2.0
RESTAMP_MEMORY = 64  # recorded times whose new stamp is kept for the messages recorded with them


class ImageSource(Node):
    """Paces frames in real time (recorded timing for bags) on a thread of its own."""

    def __init__(self, **kwargs):
        super().__init__('image_source', **kwargs)
        self.params = declare_node(self, 'image_source')
        self.image_topic = self.params.source.image_topic  # a bag's only image topic when empty

        qos = image_qos(self.params.node.image_reliable)
        self._pub = self.create_publisher(Image, 'image', qos)
        self._pub_compressed = (self.create_publisher(CompressedImage, 'image/compressed', qos)
                                if self.params.node.publish_compressed else None)
        self._passthrough_pubs: dict = {}
        self._restamps: collections.OrderedDict = collections.OrderedDict()
        self.published = 0
        self.exit_code = 0  # 1 when the source could not be read: supervisors must see it
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._play, name='image-source', daemon=True)
        self._thread.start()

    def frames(self) -> Iterator[Frame]:
        """The source's frames, once."""
        if self.params.source.kind == 'folder':
            return folder_frames(self.params.source.path)
        if self.params.source.kind == 'bag':
            return bag_frames(self.params.source.path, self.image_topic,
                              self.params.node.passthrough)
        return capture_frames(self.params.source.path)

    def _await_subscribers(self) -> None:
        deadline = time.monotonic() + self.params.node.wait_timeout_s
        while self._pub.get_subscription_count() < self.params.node.wait_for_subscribers:
            if time.monotonic() > deadline:
                self.get_logger().warning(
                    f'starting with {self._pub.get_subscription_count()} of '
                    f'{self.params.node.wait_for_subscribers} subscribers after '
                    f'{self.params.node.wait_timeout_s:g} s')
                return
            if self._stop.wait(0.05):
                return

    def _play(self) -> None:
        try:
            if self.params.source.kind == 'bag':
                self.image_topic = bag_image_topic(self.params.source.path, self.image_topic)
                self.get_logger().info(
                    f'playing image topic {self.image_topic} of {self.params.source.path}')
            if self.params.source.kind == 'bag' and self.params.node.passthrough:
                # Made before the wait, so they are discovered along with the image topic and
                # the bag's first ground-truth messages are not lost to a late match.
                for topic, msgtype in bag_topics(self.params.source.path, self.image_topic):
                    self._passthrough_publisher(topic, msgtype)
            self._await_subscribers()
            for lap in itertools.count():
                self._play_once(lap)
                if not self.params.node.loop or self._stop.is_set():
                    break
            self.get_logger().info(f'source ended after {self.published} frames')
            self._flush()
        except SourceError as err:
            self.get_logger().error(str(err))
            self.exit_code = 1
        finally:
            if not self._stop.is_set():
                rclpy.try_shutdown()  # ends the process: the run supervisor sees the bag end

    def _play_once(self, lap: int) -> None:
        start_wall = time.monotonic()
        start_rec = None
        for index, frame in enumerate(self.frames()):
            if frame.time_s is None:
                due = index / self.params.node.rate_hz
            else:
                start_rec = frame.time_s if start_rec is None else start_rec
                due = (frame.time_s - start_rec) / self.params.node.rate_factor
            if self._stop.wait(max(0.0, start_wall + due - time.monotonic())):
                return
            if frame.topic:
                self._pass_through(frame)
            elif frame.error:
                self.get_logger().warning(f'skipping bag frame: {frame.error}')
            else:
                self._publish(frame)

    def _stamp_for(self, time_s):
        """The stamp of whatever was recorded at `time_s`: now, once per recorded time, when
        restamping, so a frame and the messages recorded with it keep one stamp."""
        if time_s is None:
            return self.get_clock().now().to_msg()
        if not self.params.node.restamp:
            return convert.to_stamp(time_s)
        stamp = self._restamps.get(time_s)
        if stamp is None:
            stamp = self._restamps[time_s] = self.get_clock().now().to_msg()
            while len(self._restamps) > RESTAMP_MEMORY:
                self._restamps.popitem(last=False)
        return stamp

    def _publish(self, frame: Frame) -> None:
        msg = rgb_to_image(frame.rgb)
        msg.header.frame_id = self.params.node.frame_id
        msg.header.stamp = self._stamp_for(frame.time_s)
        self._pub.publish(msg)
        if self._pub_compressed is not None:
            self._pub_compressed.publish(self._compress(frame, msg.header))
        self.published += 1

    def _compress(self, frame: Frame, header) -> CompressedImage:
        import cv2

        ok, jpeg = cv2.imencode('.jpg', frame.rgb[:, :, ::-1])
        return CompressedImage(header=header, format='jpeg', data=jpeg.tobytes() if ok else b'')

    def _pass_through(self, frame: Frame) -> None:
        pub = self._passthrough_publisher(frame.topic, frame.msgtype)
        if not pub:
            return
        if not self.params.node.restamp:
            pub.publish(frame.raw)
            return
        # Restamped like the frame recorded with it, so consumers (the evaluator's ground
        # truth, say) match the two by stamp as they could in the bag.
        msg = deserialize_message(frame.raw, pub.msg_type)
        if hasattr(msg, 'header'):
            msg.header.stamp = self._stamp_for(frame.time_s)
        pub.publish(msg)

    def _passthrough_publisher(self, topic: str, msgtype: str):
        """The publisher for a bag topic, made on first need; False for an unknown type."""
        pub = self._passthrough_pubs.get(topic)
        if pub is None:
            try:
                pub = self.create_publisher(convert.message_class(msgtype), topic.lstrip('/'),
                                            PASSTHROUGH_QOS)
            except (ImportError, AttributeError, ValueError):
                self.get_logger().warning(f'not passing {topic}: unknown type {msgtype}')
                pub = False
            self._passthrough_pubs[topic] = pub
        return pub

    def _flush(self) -> None:
        """Wait until every reliable subscriber acknowledged what was published (bounded)."""
        for pub in [self._pub, *(p for p in self._passthrough_pubs.values() if p)]:
            if not pub.wait_for_all_acked(Duration(seconds=FLUSH_S)):
                self.get_logger().warning(f'{pub.topic_name}: not every subscriber has the '
                                          f'last messages after {FLUSH_S:g} s')

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def main(argv=None) -> int:
    return run_node(ImageSource, argv)


if __name__ == '__main__':
    raise SystemExit(main())
