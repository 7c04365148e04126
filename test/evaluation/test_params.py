"""The nodes' parameters file read without ROS: the offline replay runs the nodes' settings."""

from pathlib import Path

import pytest

from spotvlm_ros.core.focus import FocusConfig
from spotvlm_ros.core.keyframes import KeyframeConfig
from spotvlm_ros.evaluation.params import config_from, node_params

CONFIG = Path(__file__).resolve().parents[2] / 'config' / 'spotvlm.yaml'


def test_the_shipped_file_gives_the_nodes_configs():
    params = node_params(CONFIG)
    keyframe = config_from(params['cloud_bridge'], 'keyframe', KeyframeConfig)
    assert keyframe.max_in_flight == params['cloud_bridge']['keyframe.max_in_flight']
    assert keyframe.breaker_failures == KeyframeConfig().breaker_failures  # not in the file
    assert config_from(params['edge_node'], 'focus', FocusConfig).token_budget == \
        params['edge_node']['focus.token_budget']


def test_overrides_win_and_are_read_as_yaml():
    params = node_params(CONFIG, ['edge_node:focus.token_budget=96',
                                  'cloud_bridge:keyframe.min_interval_s=1'])
    assert config_from(params['edge_node'], 'focus', FocusConfig).token_budget == 96
    # An int for a float field, as `-p ...:=1` gives the nodes.
    assert config_from(params['cloud_bridge'], 'keyframe', KeyframeConfig).min_interval_s == 1.0


def test_bad_values_and_overrides_say_what_is_wrong():
    with pytest.raises(ValueError, match="NODE:NAME=VALUE"):
        node_params(CONFIG, ['edge_node.focus.token_budget=96'])
    params = node_params(CONFIG, ['edge_node:focus.token_budget=-3'])
    with pytest.raises(ValueError, match='focus.token_budget'):
        config_from(params['edge_node'], 'focus', FocusConfig)
