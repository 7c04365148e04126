"""A minimal Ask action server for the interface tests: streams the answer word by word."""

import sys
import time

from rclpy.action import ActionServer
from rclpy.node import Node
from spotvlm_msgs.action import Ask

from spotvlm_ros.nodes.runner import run_node


class AskServer(Node):
    """Answers every question by reversing its words, sending each word as feedback."""

    def __init__(self, action_name: str):
        super().__init__('ask_server')
        self._server = ActionServer(self, Ask, action_name, self._execute)

    def _execute(self, goal_handle):
        words = goal_handle.request.question.split()[::-1]
        for i in range(1, len(words) + 1):
            goal_handle.publish_feedback(Ask.Feedback(partial_text=' '.join(words[:i])))
        # Feedback and result travel on separate DDS writers, and rclpy's action client drops
        # feedback that comes after its goal's result: let the last word land first.
        time.sleep(0.2)
        goal_handle.succeed()
        result = Ask.Result()
        result.answer.query = goal_handle.request.question
        result.answer.answer = ' '.join(words)
        result.answer.used_context = not goal_handle.request.no_context
        result.answer.header.stamp = self.get_clock().now().to_msg()
        result.answer.header.frame_id = 'camera'
        return result


if __name__ == '__main__':
    sys.exit(run_node(lambda: AskServer(sys.argv[1]), []))
