"""`spotvlm ask "QUESTION"`: sends the edge node's Ask action and prints its feedback as it streams."""

from __future__ import annotations

import sys
from typing import Optional, Sequence

from spotvlm_ros.cli_types import in_namespace, node_client_parser, positive_float

GOAL_ATTEMPTS = 3  # a goal sent the moment the server is discovered can lose its response


def format_answer(answer) -> str:
    """One line about an EdgeAnswer: frame, latency, context age, text."""
    stamp = answer.header.stamp.sec + answer.header.stamp.nanosec * 1e-9
    age = f'{answer.context_age_s:.2f} s' if answer.context_age_s >= 0 else 'none'
    return (f'[answer] frame {stamp:.3f} latency {answer.latency_s * 1e3:.0f} ms '
            f'context age {age} | {answer.answer!r}')


def _arguments(argv):
    parser = node_client_parser('spotvlm ask', __doc__)
    parser.add_argument('question')
    parser.add_argument('--wait', type=positive_float, default=30.0,
                        help='seconds to wait for the edge node')
    parser.add_argument('--timeout', type=positive_float, default=120.0,
                        help='seconds to wait for the answer')
    parser.add_argument('--action', default='ask', help='action name (relative to the namespace)')
    parser.add_argument('--no-context', action='store_true', help='answer without cloud context')
    args = parser.parse_args(argv)
    if not args.question.strip():
        parser.error('the question is empty')
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _arguments(argv)
    import rclpy
    from rclpy.action import ActionClient
    from spotvlm_msgs.action import Ask

    name = in_namespace(args.namespace, args.action)
    rclpy.init(args=[])
    node = rclpy.create_node('spotvlm_ask')
    shown = ['']

    def on_feedback(msg) -> None:
        text = msg.feedback.partial_text
        # Feedback is the whole text so far: print only what is new.
        new = text[len(shown[0]):] if text.startswith(shown[0]) else '\n' + text
        shown[0] = text
        print(new, end='', flush=True)

    try:
        client = ActionClient(node, Ask, name)
        if not client.wait_for_server(timeout_sec=args.wait):
            print(f'spotvlm ask: no edge node serves the {name} action after {args.wait:g} s '
                  '(is `spotvlm run` running, in this namespace and ROS domain?)',
                  file=sys.stderr)
            return 1
        goal = Ask.Goal(question=args.question, no_context=args.no_context)
        handle = None
        for _ in range(GOAL_ATTEMPTS):
            sent = client.send_goal_async(goal, feedback_callback=on_feedback)
            rclpy.spin_until_future_complete(node, sent, timeout_sec=10)
            if sent.done():
                handle = sent.result()
                break
        if handle is None or not handle.accepted:
            print('spotvlm ask: the edge node did not accept the question', file=sys.stderr)
            return 1
        result = handle.get_result_async()
        rclpy.spin_until_future_complete(node, result, timeout_sec=args.timeout)
        if not result.done():
            print(f'\nspotvlm ask: no answer within {args.timeout:g} s', file=sys.stderr)
            return 1
        answer = result.result().result.answer
        if shown[0]:
            # The last feedback can arrive after the result: end the stream with the answer.
            rest = answer.answer[len(shown[0]):] if answer.answer.startswith(shown[0]) else ''
            print(rest, flush=True)
        print(format_answer(answer), flush=True)
        return 0
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
