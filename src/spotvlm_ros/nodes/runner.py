"""Starts one node in its own process: init, validate parameters, spin, shut down cleanly."""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Callable, Optional, Sequence

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from spotvlm_ros.nodes.params import ParameterError
from spotvlm_ros.share import share_dir

EXIT_BAD_PARAMETER = 2
PROFILE_VARIABLES = ('FASTRTPS_DEFAULT_PROFILES_FILE', 'FASTDDS_DEFAULT_PROFILES_FILE')


def use_frame_transport() -> None:
    """Point Fast DDS at config/fastdds.xml (whole frames through shared memory) unless a
    profile is already named; other middlewares ignore the variable."""
    if not any(os.environ.get(name) for name in PROFILE_VARIABLES):
        os.environ[PROFILE_VARIABLES[0]] = str(share_dir() / 'config' / 'fastdds.xml')


def make_executor():
    """rclpy's C++ EventsExecutor where this rclpy has it: a message reaches its callback
    without the Python wait-set rebuild of the other executors (ms per message here)."""
    try:
        from rclpy.experimental import EventsExecutor
    except ImportError:
        return MultiThreadedExecutor(num_threads=2)
    return EventsExecutor()


_stop_requested = threading.Event()


def _request_stop(signum, frame):
    """Ctrl-C or SIGTERM: the spin loop ends at its next turn. Raising here instead would
    surface inside whatever callback was running, which rclpy logs as a FATAL error; a second
    signal still interrupts at once, should a callback hang."""
    if _stop_requested.is_set():
        raise KeyboardInterrupt
    _stop_requested.set()


def run_node(make_node: Callable[[], Node], argv: Optional[Sequence[str]] = None,
             after_start: Optional[Callable[[Node], None]] = None) -> int:
    """Run one node until Ctrl-C, SIGTERM or shutdown; exit code 2 when a parameter is bad.

    rclpy's own signal handler would invalidate the context at once, while the node's worker
    threads may still publish; here Ctrl-C and SIGTERM end the spin instead, the node's
    close() stops its threads, and only then does the context go.
    """
    use_frame_transport()
    rclpy.init(args=list(argv) if argv is not None else sys.argv,
               signal_handler_options=SignalHandlerOptions.NO)
    _stop_requested.clear()
    signal.signal(signal.SIGINT, _request_stop)
    signal.signal(signal.SIGTERM, _request_stop)
    try:
        node = make_node()
    except ParameterError as err:
        rclpy.logging.get_logger('spotvlm').fatal(f'bad parameter {err}')
        rclpy.try_shutdown()
        return EXIT_BAD_PARAMETER
    executor = make_executor()
    executor.add_node(node)
    try:
        if after_start is not None:
            after_start(node)
        # Python runs signal handlers only between bytecodes: a wait with no timeout in a node
        # with nothing to wake it would never see Ctrl-C, so the wait returns twice a second.
        while executor.context.ok() and not _stop_requested.is_set():
            executor.spin_once(timeout_sec=0.5)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        close = getattr(node, 'close', None)
        if close is not None:
            close()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return getattr(node, 'exit_code', 0)  # a node may end its process with an error
