"""The node runner's transport set-up: our Fast DDS profile unless the user named one."""

import os
import xml.etree.ElementTree as ET

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
