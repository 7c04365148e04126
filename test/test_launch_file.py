"""The launch file (run only where launch_ros exists), checked statically, and what it starts."""

import ast
import pathlib

import pytest

from spotvlm_ros.cloud import DEFAULT_CLOUD_MODEL
from spotvlm_ros.launch_plan import plan

REPO = pathlib.Path(__file__).parents[1]
LAUNCH = REPO / 'launch' / 'spotvlm.launch.py'


def console_scripts() -> set:
    tree = ast.parse((REPO / 'setup.py').read_text())
    scripts = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and ' = ' in node.value:
            scripts.add(node.value.split(' = ')[0])
    return scripts


def declared_arguments() -> dict:
    """The launch file's ARGUMENTS dict: name -> default."""
    tree = ast.parse(LAUNCH.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], 'id', '') == 'ARGUMENTS':
            return {k: v[0] for k, v in ast.literal_eval(node.value).items()}
    raise AssertionError('no ARGUMENTS in the launch file')


def by_name(procs) -> dict:
    return {p.executable: p for p in procs}


def test_the_launch_file_takes_cloud_camera_bag_and_transport():
    args = declared_arguments()
    assert args['cloud'] == 'local'
    assert args['image_transport'] == 'raw'
    assert args['camera'] == '' and args['bag'] == ''  # empty bag: the installed sample bag
    assert 'sample_scene' in LAUNCH.read_text()


def test_every_started_executable_is_a_console_script():
    for cloud in ('local', 'none', 'http://10.0.0.2:8000/v1'):
        started = {p.executable for p in plan(cloud=cloud, bag='b')}
        assert started <= console_scripts(), started - console_scripts()
    assert {p.executable for p in plan(bag='b')} == {
        'image_source', 'edge_node', 'cloud_bridge', 'context_fuser', 'cloud_server'}


def test_cloud_local_starts_the_server_the_bridge_asks():
    procs = by_name(plan(cloud='local', bag='b'))
    server, bridge = procs['cloud_server'], procs['cloud_bridge']
    assert not server.is_node
    port = server.arguments[server.arguments.index('--port') + 1]
    assert bridge.params['cloud.base_url'] == f'http://127.0.0.1:{port}/v1'
    assert bridge.params['cloud.model'] == DEFAULT_CLOUD_MODEL
    assert '--model' not in server.arguments  # the server's default: the trained cloud model


def test_cloud_none_and_a_url():
    assert {'cloud_bridge', 'cloud_server'}.isdisjoint(by_name(plan(cloud='none', bag='b')))
    procs = by_name(plan(cloud='https://api.example.test/v1', bag='b'))
    assert 'cloud_server' not in procs
    assert procs['cloud_bridge'].params['cloud.base_url'] == 'https://api.example.test/v1'


def test_a_camera_topic_replaces_the_source_and_is_remapped():
    procs = by_name(plan(camera='/front/image_raw', image_transport='compressed'))
    assert 'image_source' not in procs
    for name in ('edge_node', 'context_fuser', 'cloud_bridge'):
        assert procs[name].params['image_transport'] == 'compressed'
        assert procs[name].remappings == [('image/compressed', '/front/image_raw/compressed')]
    assert by_name(plan(bag='/data/drive'))['image_source'].params['source.path'] == '/data/drive'


@pytest.mark.parametrize('kwargs', [{'cloud': 'remote'}, {'image_transport': 'theora'},
                                    {'bag': '', 'camera': ''}])
def test_bad_launch_arguments_are_refused(kwargs):
    with pytest.raises(ValueError):
        plan(**{'bag': 'b', **kwargs})


def test_the_default_config_names_the_trained_models():
    import yaml

    config = yaml.safe_load((REPO / 'config' / 'spotvlm.yaml').read_text())
    edge = config['/**/edge_node']['ros__parameters']
    bridge = config['/**/cloud_bridge']['ros__parameters']
    assert edge['model.path'] == 'package://spotvlm_ros/models/spotvlm-edge'
    assert bridge['cloud.model'] == DEFAULT_CLOUD_MODEL == 'spotvlm-cloud'
    assert DEFAULT_CLOUD_MODEL in (REPO / 'README.md').read_text()


def test_every_node_entry_point_imports_and_has_main():
    import importlib

    for name in ('image_source', 'edge_node', 'cloud_bridge', 'context_fuser', 'cloud.server'):
        module = importlib.import_module(f'spotvlm_ros.{"" if "." in name else "nodes."}{name}')
        assert callable(module.main)
