"""Image messages to RGB arrays: every encoding gives the reference pixels, rgb8 without a copy."""

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage, Image

from spotvlm_ros.core.images import shrink
from spotvlm_ros.nodes.images import (ImageError, compressed_thumbnail, compressed_to_rgb,
                                      image_to_rgb, rgb_to_image)

RGB = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
ALPHA = np.random.default_rng(1).integers(0, 256, (37, 53, 1), dtype=np.uint8)


def message(encoding: str, pixels: np.ndarray, padding: int = 0) -> Image:
    height, width = pixels.shape[:2]
    rows = pixels.reshape(height, -1)
    rows = np.concatenate([rows, np.full((height, padding), 7, np.uint8)], axis=1)
    return Image(height=height, width=width, encoding=encoding, step=rows.shape[1],
                 data=rows.tobytes())


@pytest.mark.parametrize('encoding, pixels', [
    ('rgb8', RGB),
    ('bgr8', RGB[:, :, ::-1]),
    ('rgba8', np.concatenate([RGB, ALPHA], axis=2)),
    ('bgra8', np.concatenate([RGB[:, :, ::-1], ALPHA], axis=2)),
    ('mono8', RGB[:, :, :1]),
])
@pytest.mark.parametrize('padding', [0, 5])
def test_every_encoding_becomes_the_rgb_pixels(encoding, pixels, padding):
    frame = image_to_rgb(message(encoding, np.ascontiguousarray(pixels), padding))
    expected = np.repeat(RGB[:, :, :1], 3, axis=2) if encoding == 'mono8' else RGB
    assert frame.dtype == np.uint8 and frame.flags['C_CONTIGUOUS']
    assert np.array_equal(frame, expected)


def test_an_rgb8_frame_is_a_view_of_the_message():
    msg = rgb_to_image(RGB)
    frame = image_to_rgb(msg)
    assert np.shares_memory(frame, np.frombuffer(msg.data, np.uint8))
    assert np.array_equal(frame, RGB)


@pytest.mark.parametrize('extension', ['.jpg', '.png'])
def test_compressed_frames_decode_to_the_pixels_opencv_decodes(extension):
    ok, encoded = cv2.imencode(extension, RGB[:, :, ::-1])
    assert ok
    frame = compressed_to_rgb(CompressedImage(format=extension[1:], data=encoded.tobytes()))
    reference = cv2.imdecode(encoded, cv2.IMREAD_COLOR)[:, :, ::-1]
    assert np.array_equal(frame, reference)


@pytest.mark.parametrize('extension', ['.jpg', '.png'])
def test_a_compressed_thumbnail_has_the_flow_size_and_the_frames_content(extension):
    frame = cv2.GaussianBlur(
        np.random.default_rng(2).integers(0, 256, (1080, 1920, 3), dtype=np.uint8), (0, 0), 4)
    ok, encoded = cv2.imencode(extension, frame[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    msg = CompressedImage(format=extension[1:], data=encoded.tobytes())
    small, size = compressed_thumbnail(msg, 320)
    reference = shrink(compressed_to_rgb(msg), 320)
    assert size == (1920, 1080) and small.shape == reference.shape == (180, 320, 3)
    difference = np.abs(small.astype(int) - reference.astype(int))
    assert difference.mean() < 2.0  # a JPEG's reduced decode, not the same filter exactly


def test_an_undecodable_thumbnail_says_so():
    with pytest.raises(ImageError, match='undecodable'):
        compressed_thumbnail(CompressedImage(format='jpeg', data=b'not an image'), 320)
