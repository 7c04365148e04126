"""Small helpers for /diagnostics: rolling percentiles, threshold levels, status messages."""

from __future__ import annotations

import collections
import threading
from typing import Optional

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy

LEVEL_NAMES = {DiagnosticStatus.OK: 'OK', DiagnosticStatus.WARN: 'WARN',
               DiagnosticStatus.ERROR: 'ERROR', DiagnosticStatus.STALE: 'STALE'}


class RollingStats:
    """The last `size` samples of one quantity; thread-safe."""

    def __init__(self, size: int = 200):
        self._values: collections.deque = collections.deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, value: float) -> None:
        with self._lock:
            self._values.append(value)

    def percentile(self, q: float) -> Optional[float]:
        with self._lock:
            values = list(self._values)
        return float(np.percentile(values, q)) if values else None


def threshold_level(value: Optional[float], warn: float, error: float) -> bytes:
    """OK below `warn`, WARN below `error`, ERROR at or above; a missing value is OK."""
    if value is None:
        return DiagnosticStatus.OK
    if value >= error:
        return DiagnosticStatus.ERROR
    return DiagnosticStatus.WARN if value >= warn else DiagnosticStatus.OK


def worst(*levels: bytes) -> bytes:
    return max(levels, key=lambda level: level[0])


def make_status(node: Node, level: bytes, message: str, values: dict) -> DiagnosticStatus:
    """One status named after the node, its values as strings."""
    return DiagnosticStatus(
        level=level, name=node.get_fully_qualified_name(), message=message,
        hardware_id=node.get_name(),
        values=[KeyValue(key=k, value=_text(v)) for k, v in values.items()])


class DiagnosticsPublisher:
    """Publishes a node's status on /diagnostics at a fixed period."""

    def __init__(self, node: Node, period_s: float, compute):
        self._node = node
        self._compute = compute  # () -> DiagnosticStatus
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self._pub = node.create_publisher(DiagnosticArray, '/diagnostics', qos)
        self._timer = node.create_timer(period_s, self.publish)

    def publish(self) -> None:
        array = DiagnosticArray(status=[self._compute()])
        array.header.stamp = self._node.get_clock().now().to_msg()
        self._pub.publish(array)


def _text(value) -> str:
    if value is None:
        return 'none'
    if isinstance(value, float):
        return f'{value:.4f}'
    return str(value)
