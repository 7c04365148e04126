"""The package's share files are found through the ament index after install."""

import pathlib

from ament_index_python.packages import get_package_share_directory

REPO = pathlib.Path(__file__).parents[2]


def installed(folder: str) -> set[str]:
    share = pathlib.Path(get_package_share_directory('spotvlm_ros')) / folder
    return {p.name for p in share.iterdir()}


def test_launch_files_are_in_the_share_directory():
    expected = {p.name for p in (REPO / 'launch').glob('*.py')}
    assert expected, 'launch/ holds no launch file'
    assert expected <= installed('launch')


def test_config_files_are_in_the_share_directory():
    expected = {p.name for p in (REPO / 'config').glob('*.yaml')}
    assert expected, 'config/ holds no parameter file'
    assert expected <= installed('config')


def test_package_xml_and_interfaces_are_indexed():
    share = pathlib.Path(get_package_share_directory('spotvlm_ros'))
    assert (share / 'package.xml').read_text() == (REPO / 'package.xml').read_text()
    msgs = pathlib.Path(get_package_share_directory('spotvlm_msgs'))
    assert (msgs / 'msg' / 'CloudContext.msg').is_file()
    assert (msgs / 'action' / 'Ask.action').is_file()


def test_the_trained_models_and_sample_bag_are_in_the_share_directory():
    from spotvlm_ros.models.checkpoint import resolve_checkpoint
    from spotvlm_ros.share import (DEFAULT_CLOUD_CHECKPOINT, DEFAULT_EDGE_CHECKPOINT,
                                   SAMPLE_BAG, resolve)

    share = pathlib.Path(get_package_share_directory('spotvlm_ros'))
    for checkpoint in (DEFAULT_EDGE_CHECKPOINT, DEFAULT_CLOUD_CHECKPOINT):
        folder = resolve_checkpoint(checkpoint)
        assert folder.parent.parent == share, folder
        assert (folder / 'model.safetensors').is_file()
    assert (pathlib.Path(resolve(SAMPLE_BAG)) / 'metadata.yaml').is_file()


def test_executables_are_where_launch_ros_looks():
    import os

    prefix = pathlib.Path(get_package_share_directory('spotvlm_ros')).parents[1]
    for name in ('image_source', 'edge_node', 'cloud_bridge', 'context_fuser', 'cloud_server'):
        exe = prefix / 'lib' / 'spotvlm_ros' / name
        assert exe.is_file() and os.access(exe, os.X_OK), exe
