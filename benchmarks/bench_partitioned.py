"""The partitioned baseline's payload per frame against the JPEG keyframe the bridge sends.

Run: python benchmarks/bench_partitioned.py [--frames 6]. Encodes sample-bag frames with the
committed cloud checkpoint's vision encoder, and prints bytes per frame as fp16 and int8 visual
tokens and as the bridge's JPEG, the upload time at 10 Mbit/s, the encoder's time on this
machine, how often int8 tokens change the cloud's answer, and the same payload for a
72B-class decoder (Qwen2.5-VL-72B: 8192 wide).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

try:
    import spotvlm_ros  # noqa: F401
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'src'))

from spotvlm_ros.cloud.client import CloudClientConfig  # noqa: E402
from spotvlm_ros.cloud.embeds import embeds_part, payload_bytes, tokens_of_part  # noqa: E402
from spotvlm_ros.cloud.encoding import encode_keyframe  # noqa: E402
from spotvlm_ros.cloud.prompts import FORMAT_PIXELS, system_prompt  # noqa: E402
from spotvlm_ros.io.replay import load_bag, questions_of  # noqa: E402
from spotvlm_ros.models.split import answer_from_tokens, encode_frame  # noqa: E402
from spotvlm_ros.models.transformers_backend import TransformersBackend  # noqa: E402
from spotvlm_ros.scenes.large_model import visual_token_bytes  # noqa: E402
from spotvlm_ros.share import DEFAULT_CLOUD_CHECKPOINT, SAMPLE_BAG, resolve  # noqa: E402

UPLINK_MBPS = 10.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--frames', type=int, default=6)
    args = parser.parse_args()
    cloud = TransformersBackend(resolve(DEFAULT_CLOUD_CHECKPOINT), max_new_tokens=64)
    frames = load_bag(resolve(SAMPLE_BAG))[::max(1, 100 // args.frames)][:args.frames]
    bridge = CloudClientConfig()
    sizes = {'fp16': [], 'int8': [], 'jpeg': []}
    encode_s, same, asked = [], 0, 0
    for frame in frames:
        start = time.perf_counter()
        tokens = encode_frame(cloud, frame.image)
        encode_s.append(time.perf_counter() - start)
        parts = {'fp16': embeds_part(tokens, 'float16'), 'int8': embeds_part(tokens, 'int8')}
        for name, part in parts.items():
            sizes[name].append(payload_bytes(part))
        jpeg, _ = encode_keyframe(frame.image, bridge.jpeg_quality, bridge.max_image_side,
                                  bridge.image_multiple)
        sizes['jpeg'].append(len(jpeg))
        prompt = system_prompt(FORMAT_PIXELS, frame.size)
        for question in questions_of([frame]):
            answers = {name: answer_from_tokens(cloud, tokens_of_part(part), question,
                                                prompt).text for name, part in parts.items()}
            same += answers['fp16'] == answers['int8']
            asked += 1
    rows, wide = tokens.embeddings.shape
    print(f'cloud checkpoint: {rows} visual tokens x {wide} wide per '
          f'{frames[0].size[0]}x{frames[0].size[1]} frame; {len(frames)} frames')
    print(f'{"payload":<28}{"bytes/frame":>12}{"x JPEG":>8}{"upload ms":>11}')
    jpeg = statistics.median(sizes['jpeg'])
    for name, label in (('jpeg', f'JPEG q{bridge.jpeg_quality} (the bridge)'),
                        ('fp16', 'visual tokens, fp16'), ('int8', 'visual tokens, int8')):
        size = statistics.median(sizes[name])
        print(f'{label:<28}{size:>12.0f}{size / jpeg:>8.2f}{size * 8 / UPLINK_MBPS / 1e3:>11.1f}')
    for name, dtype in (('fp16', 'float16'), ('int8', 'int8')):
        size = visual_token_bytes(frames[0].size, dtype)
        print(f'{"72B-class " + name:<28}{size:>12.0f}{size / jpeg:>8.2f}'
              f'{size * 8 / UPLINK_MBPS / 1e3:>11.1f}')
    print(f'encoder on this machine: median {statistics.median(encode_s) * 1e3:.0f} ms')
    print(f'int8 answers equal to fp16 answers: {same}/{asked}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
