"""A relay node: republishes every message of one type from one topic to another.

Used by `spotvlm doctor` and the interface tests to prove that a message crosses two
processes intact.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Optional, Sequence

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from spotvlm_ros.nodes.runner import run_node

# Transient local on both ends: discovery is not symmetric, so a message sent the moment one
# side sees a match can reach a reader whose side has not matched yet; this way it waits.
RELAY_QOS = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE,
                       durability=DurabilityPolicy.TRANSIENT_LOCAL)


def message_class(type_name: str):
    """The message class for 'pkg/msg/Name' (or 'pkg/action/Name_Part')."""
    package, kind, name = type_name.split('/')
    module = importlib.import_module(f'{package}.{kind}')
    if kind == 'action' and not hasattr(module, name):
        action, part = name.rsplit('_', 1)  # Ask_Feedback is Ask.Feedback
        return getattr(getattr(module, action), part)
    return getattr(module, name)


class EchoNode(Node):
    """Relays `in_topic` to `out_topic` unchanged."""

    def __init__(self, msg_type, in_topic: str, out_topic: str):
        super().__init__('echo')
        self._pub = self.create_publisher(msg_type, out_topic, RELAY_QOS)
        self.create_subscription(msg_type, in_topic, self._pub.publish, RELAY_QOS)
        self.get_logger().info(f'relaying {in_topic} -> {out_topic}')


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--type', required=True, help="message type, e.g. 'spotvlm_msgs/msg/EdgeAnswer'")
    parser.add_argument('--in', dest='in_topic', required=True)
    parser.add_argument('--out', dest='out_topic', required=True)
    args = parser.parse_args(argv)
    return run_node(lambda: EchoNode(message_class(args.type), args.in_topic, args.out_topic), [])


if __name__ == '__main__':
    raise SystemExit(main())
