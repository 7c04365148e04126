"""A bad parameter stops a node at start with a message that names it."""

import subprocess

import pytest

from spotvlm_ros.run import CONFIG, node_command

pytestmark = pytest.mark.ros

BAD = [
    ('context_fuser', 'context.max_age_s', '-1.0'),
    ('context_fuser', 'focus.max_crops', '0'),
    ('edge_node', 'strategy', 'telepathy'),
    ('edge_node', 'model.kind', 'tflite'),
    ('edge_node', 'offload.deadline_s', '0.0'),
    ('cloud_bridge', 'cloud.base_url', 'ftp://example'),
    ('cloud_bridge', 'keyframe.max_in_flight', '0'),
    ('cloud_bridge', 'cloud.send', 'pigeon'),
    ('image_source', 'source.kind', 'radar'),
    ('image_source', 'rate_hz', '0.0'),
]


@pytest.mark.parametrize('node,name,value', BAD)
def test_bad_parameter_stops_the_node_naming_it(node, name, value):
    params = {name: value}
    if node == 'image_source' and name != 'source.path':
        params['source.path'] = 'somewhere'
    result = subprocess.run(node_command(node, str(CONFIG), '', params), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f'bad parameter {name}' in result.stderr + result.stdout


@pytest.mark.parametrize('encoder_model', ['', 'no/such/checkpoint/folder'])
def test_visual_tokens_without_a_loadable_encoder_stop_the_bridge(encoder_model):
    params = {'cloud.send': 'visual_tokens', 'cloud.encoder_model': encoder_model}
    result = subprocess.run(node_command('cloud_bridge', str(CONFIG), '', params),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert 'bad parameter cloud.encoder_model' in result.stderr + result.stdout
