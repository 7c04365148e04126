"""The relay probe: messages sent through an echo process and collected back, and the waits it needs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Sequence

import rclpy
from rclpy.node import Node

from spotvlm_ros.nodes.convert import message_class
from spotvlm_ros.testing.echo import RELAY_QOS


def type_name_of(msg) -> str:
    """'pkg/msg/Name' of a message instance."""
    module = type(msg).__module__.split('.')
    return f'{module[0]}/{module[1]}/{type(msg).__name__}'


def wait_until(node: Node, done, timeout_s: float) -> bool:
    """Spin `node` until done() or the timeout; no busy loop."""
    deadline = time.monotonic() + timeout_s
    while not done():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        rclpy.spin_once(node, timeout_sec=min(left, 0.1))
    return True


def start_echo(type_name: str, in_topic: str, out_topic: str) -> subprocess.Popen:
    """An echo node in its own process, with this process's ROS environment."""
    cmd = [sys.executable, '-m', 'spotvlm_ros.testing.echo',
           '--type', type_name, '--in', in_topic, '--out', out_topic]
    return subprocess.Popen(cmd, env=dict(os.environ), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def stop_process(proc: subprocess.Popen, timeout_s: float = 10.0) -> int:
    """Ctrl-C a process, then kill it if it does not stop; its exit code."""
    if proc.poll() is None:
        proc.send_signal(2)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def relay(node: Node, messages: Sequence, topic: str, timeout_s: float = 30.0) -> list:
    """Publish `messages` (one type) to an echo process and return what it sent back."""
    type_name = type_name_of(messages[0])
    msg_type = message_class(type_name)
    received: list = []
    pub = node.create_publisher(msg_type, f'{topic}/ping', RELAY_QOS)
    sub = node.create_subscription(msg_type, f'{topic}/pong', received.append, RELAY_QOS)
    echo = start_echo(type_name, f'{topic}/ping', f'{topic}/pong')
    try:
        matched = wait_until(node, lambda: pub.get_subscription_count() > 0
                             and sub.get_publisher_count() > 0, timeout_s)
        if not matched:
            raise TimeoutError(f'echo process for {type_name} never matched: '
                               f'{echo.stderr.read() if echo.poll() is not None else "still running"}')
        for msg in messages:
            pub.publish(msg)
        wait_until(node, lambda: len(received) >= len(messages), timeout_s)
    finally:
        stop_process(echo)
        node.destroy_publisher(pub)
        node.destroy_subscription(sub)
    return received
