"""The Ask action is served and answered across two processes, with streamed feedback."""

import os
import pathlib
import subprocess
import sys

import pytest
from rclpy.action import ActionClient
from spotvlm_msgs.action import Ask

from harness import send_goal

from spotvlm_ros.testing.relay import stop_process, wait_until

SERVER = pathlib.Path(__file__).parents[1] / 'resources' / 'ask_server.py'


@pytest.mark.ros
def test_ask_action_streams_feedback_and_returns_an_edge_answer(node):
    action_name = f'ask_{os.getpid()}'
    server = subprocess.Popen([sys.executable, str(SERVER), action_name])
    try:
        client = ActionClient(node, Ask, action_name)
        assert client.wait_for_server(timeout_sec=30), 'Ask server never appeared'
        feedback = []
        goal = send_goal(client, Ask.Goal(question='is the road clear'),
                         lambda done, timeout_s: wait_until(node, done, timeout_s),
                         lambda f: feedback.append(f.feedback.partial_text))
        result_future = goal.get_result_async()
        assert wait_until(node, result_future.done, 30)
        answer = result_future.result().result.answer
        assert answer.answer == 'clear road the is'
        assert answer.query == 'is the road clear'
        assert answer.used_context is True
        assert answer.header.frame_id == 'camera'
        assert feedback == ['clear', 'clear road', 'clear road the', 'clear road the is']
        client.destroy()
    finally:
        assert stop_process(server) == 0
