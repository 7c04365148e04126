"""Client configuration checks and the keyframe encoding whose size the parsers rely on."""

import cv2
import numpy as np
import pytest

from spotvlm_ros.cloud.client import CloudClientConfig
from spotvlm_ros.cloud.encoding import encode_keyframe, sent_size


@pytest.mark.parametrize('field, value', [
    ('base_url', 'ftp://host/v1'),
    ('base_url', 'not a url'),
    ('model', ' '),
    ('api_key_env', 'NOT-A-NAME'),
    ('timeout_s', 0),
    ('timeout_s', float('nan')),
    ('max_in_flight', 0),
    ('max_in_flight', 2.5),
    ('jpeg_quality', 0),
    ('jpeg_quality', 101),
    ('max_image_side', 16),
    ('image_multiple', 0),
    ('retries', -1),
    ('backoff_s', -0.1),
    ('verify_tls', 'no'),
    ('grounding_format', 'yolo'),
    ('max_reply_bytes', 100),
    ('max_tokens', 0),
])
def test_invalid_field_is_named_in_the_error(field, value):
    with pytest.raises(ValueError, match=f'^{field}:'):
        CloudClientConfig(**{field: value})


def test_defaults_are_valid_and_verify_tls():
    config = CloudClientConfig()
    assert config.verify_tls is True
    assert config.base_url.startswith('http://127.0.0.1:')


@pytest.mark.parametrize('width, height, max_side, multiple, expected', [
    (1280, 720, 640, 28, (616, 364)),  # shrunk, sides on Qwen2.5-VL's 28 px grid, <= 640
    (1280, 720, 640, 1, (640, 360)),
    (640, 480, 1024, 28, (644, 476)),  # never scaled up beyond rounding to the grid
    (20, 10, 1024, 28, (28, 28)),  # at least one grid cell per side
    (300, 4000, 1024, 32, (64, 1024)),
])
def test_sent_size(width, height, max_side, multiple, expected):
    assert sent_size(width, height, max_side, multiple) == expected


def test_encoded_keyframe_decodes_to_the_size_it_reports():
    frame = np.zeros((720, 1280, 3), np.uint8)
    frame[:, :640] = (255, 0, 0)  # red left half, in RGB
    jpeg, size = encode_keyframe(frame, quality=90, max_side=640, multiple=28)
    decoded = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert (decoded.shape[1], decoded.shape[0]) == size == (616, 364)
    blue, green, red = decoded[182, 100].astype(int)  # OpenCV decodes to BGR
    assert red > 200 and green < 50 and blue < 50


def test_encoding_refuses_what_is_not_an_rgb_image():
    with pytest.raises(ValueError, match='HxWx3 uint8'):
        encode_keyframe(np.zeros((10, 10, 4), np.uint8), 85, 640, 28)
