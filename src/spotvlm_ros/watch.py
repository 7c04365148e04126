"""`spotvlm watch`: prints the edge answers, cloud contexts and diagnostics as they arrive."""

from __future__ import annotations

import time
from typing import Optional, Sequence

from spotvlm_ros.cli_types import (
    in_namespace, node_client_parser, non_negative_float, non_negative_int)

_LEVELS = {0: 'OK', 1: 'WARN', 2: 'ERROR', 3: 'STALE'}
_CLOUD_STATUS = {0: 'OK', 1: 'TIMEOUT', 2: 'ERROR'}


def format_cloud(msg) -> str:
    """One line about a CloudContext."""
    stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
    status = _CLOUD_STATUS.get(msg.status, str(msg.status))
    what = (f'{msg.answer!r} ({len(msg.regions)} regions)' if msg.status == 0
            else msg.error_message)
    return (f'[cloud] keyframe {msg.keyframe_seq} frame {stamp:.3f} {status} '
            f'round trip {msg.round_trip_s:.2f} s | {what}')


def format_diagnostics(status) -> str:
    """One line about a DiagnosticStatus."""
    values = ', '.join(f'{kv.key}={kv.value}' for kv in status.values[:6])
    level = _LEVELS.get(int.from_bytes(status.level, 'little') if isinstance(status.level, bytes)
                        else int(status.level), str(status.level))
    return f'[diagnostics] {status.name} {level}: {status.message} ({values})'


def _arguments(argv):
    parser = node_client_parser('spotvlm watch', __doc__)
    parser.add_argument('--no-diagnostics', action='store_true', help='answers and cloud only')
    parser.add_argument('--no-cloud', action='store_true', help='no cloud contexts')
    parser.add_argument('--count', type=non_negative_int, default=0,
                        help='stop after this many answers (0: never)')
    parser.add_argument('--duration', type=non_negative_float, default=0.0,
                        help='stop after this many seconds (0: never)')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _arguments(argv)
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from spotvlm_msgs.msg import CloudContext, EdgeAnswer

    from spotvlm_ros.ask import format_answer
    from spotvlm_ros.nodes.qos import ANSWER_QOS, CLOUD_CONTEXT_QOS

    rclpy.init(args=[])
    node = rclpy.create_node('spotvlm_watch')
    answers = [0]

    def on_answer(msg) -> None:
        answers[0] += 1
        print(format_answer(msg), flush=True)

    answers_sub = node.create_subscription(EdgeAnswer, in_namespace(args.namespace, 'answer'),
                                           on_answer, ANSWER_QOS)
    if not args.no_cloud:
        node.create_subscription(CloudContext, in_namespace(args.namespace, 'cloud_context'),
                                 lambda m: print(format_cloud(m), flush=True), CLOUD_CONTEXT_QOS)
    if not args.no_diagnostics:
        node.create_subscription(
            DiagnosticArray, '/diagnostics',
            lambda m: [print(format_diagnostics(s), flush=True) for s in m.status], 10)
    print(f'[watch] {answers_sub.topic_name}, cloud_context and /diagnostics; Ctrl-C stops',
          flush=True)
    start = time.monotonic()
    try:
        while rclpy.ok():
            rclpy.spin_once(node, timeout_sec=0.1)
            if args.count and answers[0] >= args.count:
                break
            if args.duration and time.monotonic() - start >= args.duration:
                break
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
