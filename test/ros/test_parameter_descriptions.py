"""`ros2 param describe` shows each parameter's description from its config dataclass."""

import dataclasses

import pytest

rclpy = pytest.importorskip('rclpy', reason='rclpy is installed by `make setup`')

from spotvlm_ros.core.settings import description  # noqa: E402
from spotvlm_ros.nodes.settings import NODE_PARAMETERS  # noqa: E402

pytestmark = pytest.mark.ros


def _node_class(name):
    if name == 'edge_node':
        from spotvlm_ros.nodes.edge_node import EdgeNode
        return EdgeNode
    from spotvlm_ros.nodes.context_fuser import ContextFuser
    return ContextFuser


@pytest.mark.parametrize('name', ['edge_node', 'context_fuser'])
def test_a_node_declares_its_groups_with_their_descriptions(name):
    rclpy.init(args=[])  # the default context: a lifecycle node in rclpy needs it
    node = None
    try:
        node = _node_class(name)()
        expected = {}
        for prefix, config_cls in NODE_PARAMETERS[name]:
            for field in dataclasses.fields(config_cls):
                expected[f'{prefix}.{field.name}' if prefix else field.name] = description(field)
        # rclpy's own parameters aside
        declared = set(node._parameters) - {'use_sim_time', 'start_type_description_service'}
        assert declared == set(expected)
        described = {p: node.describe_parameter(p).description for p in expected}
        assert described == expected
    finally:
        if node is not None:
            close = getattr(node, 'close', None)
            if close is not None:
                close()
            node.destroy_node()
        rclpy.try_shutdown()
