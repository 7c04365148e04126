"""make-bag: JPEG frames and GroundTruth messages that read back as the truth written."""

import cv2
import numpy as np

from spotvlm_ros.io.bags import read_ground_truth, write_scene_bag
from spotvlm_ros.scenes.make_bag import main as make_bag_main
from spotvlm_ros.scenes.truth import sequence


def test_ground_truth_round_trips(tmp_path):
    pairs = list(sequence(4, 3, 160, 120))
    assert write_scene_bag(tmp_path / 'bag', pairs, 0.1) == 3
    msgs = read_ground_truth(tmp_path / 'bag')
    assert len(msgs) == 3
    for msg, (_, truth) in zip(msgs, pairs):
        assert (msg.seed, msg.frame_index) == (4, truth.index)
        assert msg.light_state == truth.light_state and msg.action == truth.action
        assert [(q.question, q.answer) for q in msg.qa] == [(q.question, q.answer)
                                                            for q in truth.qa]
        assert [o.box.x2 for o in msg.objects] == [np.float32(o.box[2]) for o in truth.objects]
    stamps = [m.header.stamp.nanosec for m in msgs]
    assert stamps[1] - stamps[0] == 100_000_000


def test_make_bag_images_decode_to_the_frames(tmp_path):
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import Stores, get_typestore

    assert make_bag_main([str(tmp_path / 'b'), '--seed', '3', '--seconds', '0.2',
                          '--width', '160', '--height', '120']) == 0
    store = get_typestore(Stores.ROS2_JAZZY)
    frames = [f for f, _ in sequence(3, 2, 160, 120)]
    with Reader(tmp_path / 'b') as reader:
        conns = [c for c in reader.connections if c.topic.endswith('compressed')]
        msgs = [store.deserialize_cdr(raw, c.msgtype) for c, _, raw in reader.messages(conns)]
    assert len(msgs) == 2
    for msg, frame in zip(msgs, frames):
        decoded = cv2.imdecode(np.asarray(msg.data), cv2.IMREAD_COLOR)[:, :, ::-1]
        assert decoded.shape == frame.shape
        assert np.abs(decoded.astype(int) - frame).mean() < 6  # JPEG, not bit-exact
