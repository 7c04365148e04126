"""An echo node that relays one message type from topic to topic, to show a message crosses processes intact."""

from __future__ import annotations

import argparse
from typing import Optional, Sequence

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from spotvlm_ros.nodes.convert import message_class
from spotvlm_ros.nodes.runner import run_node

# Transient local on both ends: discovery is not symmetric, so a message sent the moment one
# side sees a match can reach a reader whose side has not matched yet; this way it waits.
RELAY_QOS = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE,
                       durability=DurabilityPolicy.TRANSIENT_LOCAL)


class EchoNode(Node):
    """Relays `in_topic` to `out_topic` unchanged."""

    def __init__(self, msg_type, in_topic: str, out_topic: str):
        super().__init__('echo')
        self._pub = self.create_publisher(msg_type, out_topic, RELAY_QOS)
        self.create_subscription(msg_type, in_topic, self._pub.publish, RELAY_QOS)
        self.get_logger().info(f'relaying {in_topic} -> {out_topic}')


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--type', required=True, help="message type, e.g. 'spotvlm_msgs/msg/EdgeAnswer'")
    parser.add_argument('--in', dest='in_topic', required=True)
    parser.add_argument('--out', dest='out_topic', required=True)
    args = parser.parse_args(argv)
    return run_node(lambda: EchoNode(message_class(args.type), args.in_topic, args.out_topic), [])


if __name__ == '__main__':
    raise SystemExit(main())
