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
