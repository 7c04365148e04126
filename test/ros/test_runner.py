"""The node runner: our Fast DDS profile unless the user named one, and a clean Ctrl-C."""

import os
import time
import xml.etree.ElementTree as ET

import pytest

from spotvlm_ros.nodes.runner import PROFILE_VARIABLES, use_frame_transport


def test_the_nodes_use_the_frame_profile_by_default(monkeypatch):
    for name in PROFILE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    use_frame_transport()
    root = ET.parse(os.environ[PROFILE_VARIABLES[0]]).getroot()
    namespace = {'f': 'http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles'}
    segment = root.find('.//f:transport_descriptor[f:type="SHM"]/f:segment_size', namespace)
    assert int(segment.text) >= 4 * 1920 * 1080 * 3  # several 1080p rgb8 frames in flight


def test_a_profile_the_user_named_wins(monkeypatch, tmp_path):
    mine = str(tmp_path / 'mine.xml')
    monkeypatch.delenv(PROFILE_VARIABLES[0], raising=False)
    monkeypatch.setenv(PROFILE_VARIABLES[1], mine)
    use_frame_transport()
    assert PROFILE_VARIABLES[0] not in os.environ


@pytest.mark.ros
def test_ctrl_c_ends_a_node_without_an_error_in_a_callback(tmp_path):
    """Python runs a signal handler at the next bytecode, mostly inside a timer callback here;
    the node must stop there without rclpy logging that callback as failed."""
    from harness import Probe, start_node, stop

    fuser = start_node('context_fuser', tmp_path)
    probe = Probe()
    try:
        assert probe.wait_for(lambda: probe.latest_status('context_fuser') is not None, 30)
        time.sleep(1.5)  # a few diagnostics timer callbacks, whose turn the signal then takes
    finally:
        probe.close()
        codes = stop(fuser)
    log = next(tmp_path.glob('context_fuser-*.log')).read_text()
    assert codes == {'0': 0}, log
    assert 'FATAL' not in log and 'Exception in' not in log, log
