"""`spotvlm doctor`: checks the install end to end and says what is wrong."""

from __future__ import annotations

import argparse
import os
import time
from typing import Optional, Sequence


def check_share_files() -> list[str]:
    """The package's launch and config files, found through the ament index."""
    from ament_index_python.packages import get_package_share_directory

    share = get_package_share_directory('spotvlm_ros')
    get_package_share_directory('spotvlm_msgs')
    found = []
    for sub in ('launch', 'config'):
        folder = os.path.join(share, sub)
        if os.path.isdir(folder):
            found += [os.path.join(sub, f) for f in sorted(os.listdir(folder))]
    return found


def check_round_trip(timeout_s: float) -> float:
    """Send an EdgeAnswer through an echo process; the round trip in seconds."""
    import rclpy
    from spotvlm_msgs.msg import EdgeAnswer

    from spotvlm_ros.testing.relay import relay

    rclpy.init()
    node = rclpy.create_node('spotvlm_doctor')
    try:
        msg = EdgeAnswer(query='doctor', answer='ok', strategy='doctor')
        msg.header.stamp = node.get_clock().now().to_msg()
        msg.header.frame_id = 'doctor'
        start = time.monotonic()
        back = relay(node, [msg], f'spotvlm_doctor_{os.getpid()}', timeout_s)
        if back != [msg]:
            raise RuntimeError(f'sent {msg}, received {back}')
        return time.monotonic() - start
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog='spotvlm doctor', description=__doc__)
    parser.add_argument('--timeout', type=float, default=30.0, help='seconds to wait for the echo process')
    args = parser.parse_args(argv)
    files = check_share_files()
    print(f'ament index: spotvlm_ros and spotvlm_msgs found; share files: {", ".join(files) or "none"}')
    took = check_round_trip(args.timeout)
    print(f'EdgeAnswer crossed two processes and came back intact ({took:.2f} s including process start)')
    print('doctor: all checks passed')
    return 0
