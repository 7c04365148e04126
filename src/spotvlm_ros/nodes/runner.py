"""Starts one node in its own process: init, validate parameters, spin, shut down cleanly."""

from __future__ import annotations

import sys
from typing import Callable, Optional, Sequence

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node

from spotvlm_ros.nodes.params import ParameterError

EXIT_BAD_PARAMETER = 2


def run_node(make_node: Callable[[], Node], argv: Optional[Sequence[str]] = None,
             after_start: Optional[Callable[[Node], None]] = None) -> int:
    """Run one node until Ctrl-C or shutdown; exit code 2 when a parameter is bad."""
    rclpy.init(args=list(argv) if argv is not None else sys.argv)
    try:
        node = make_node()
    except ParameterError as err:
        rclpy.logging.get_logger('spotvlm').fatal(f'bad parameter {err}')
        rclpy.try_shutdown()
        return EXIT_BAD_PARAMETER
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(node)
    try:
        if after_start is not None:
            after_start(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        close = getattr(node, 'close', None)
        if close is not None:
            close()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
