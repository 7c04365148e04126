"""A live rclpy context and node for each test in this folder."""

import pytest

rclpy = pytest.importorskip('rclpy', reason='rclpy is installed by `make setup`')


@pytest.fixture
def node():
    """An rclpy node on this run's own domain, torn down cleanly."""
    rclpy.init()
    n = rclpy.create_node('spotvlm_test')
    yield n
    n.destroy_node()
    rclpy.try_shutdown()
