"""Pipeline overhead: frame stamp to answer received, minus the model's inference time.

Runs the edge node and the fuser as real processes, publishes 640x480 frames at 5 Hz from this
process and measures each answer on arrival. Prints median and p95 in ms.
"""

import os
import subprocess
import sys
import threading
import time

import numpy as np

os.environ.setdefault('ROS_DOMAIN_ID', str(10 + os.getpid() % 90))
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('HF_HUB_OFFLINE', '1')

import rclpy  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from spotvlm_msgs.msg import EdgeAnswer  # noqa: E402

from spotvlm_ros.io.frame_sources import moving_box_frames  # noqa: E402
from spotvlm_ros.nodes.images import rgb_to_image  # noqa: E402
from spotvlm_ros.nodes.qos import ANSWER_QOS, image_qos  # noqa: E402
from spotvlm_ros.run import CONFIG, node_command, stop_all  # noqa: E402

SECONDS, RATE_HZ = 15.0, 5.0


def main() -> int:
    params = {'model.device': 'cpu', 'model.max_new_tokens': 4}
    procs = {n: subprocess.Popen(node_command(n, str(CONFIG), '', params if n == 'edge_node' else {}),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for n in ('context_fuser', 'edge_node')}
    rclpy.init()
    node = rclpy.create_node('bench_pipeline')
    received = []  # (arrival wall time, answer)
    node.create_subscription(EdgeAnswer, 'answer', lambda m: received.append((time.time(), m)),
                             ANSWER_QOS)
    pub = node.create_publisher(Image, 'image', image_qos(True))
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    threading.Thread(target=executor.spin, daemon=True).start()
    try:
        deadline = time.monotonic() + 300
        while node.count_publishers('answer') == 0 or pub.get_subscription_count() < 2:
            if time.monotonic() > deadline:
                print('nodes never became ready', file=sys.stderr)
                return 1
            time.sleep(0.1)
        pool = [rgb_to_image(f) for f in moving_box_frames(20, 640, 480)]
        start = time.monotonic()
        for i in range(int(SECONDS * RATE_HZ)):
            msg = pool[i % len(pool)]
            msg.header.stamp = node.get_clock().now().to_msg()
            pub.publish(msg)
            time.sleep(max(0.0, start + (i + 1) / RATE_HZ - time.monotonic()))
        time.sleep(2.0)
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
        stop_all(procs)
    stamp = np.array([m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for _, m in received])
    total = np.array([t for t, _ in received]) - stamp
    infer = np.array([m.inference_time_s for _, m in received])
    over = (total - infer) * 1e3
    print(f'pipeline at 640x480, {RATE_HZ:g} Hz for {SECONDS:g} s: {len(received)} answers')
    print(f'{"":32s}{"median ms":>10s}{"p95 ms":>10s}')
    for name, values in (('frame stamp -> answer received', total * 1e3),
                         ('model inference', infer * 1e3),
                         ('pipeline overhead (difference)', over)):
        print(f'{name:32s}{np.median(values):10.1f}{np.percentile(values, 95):10.1f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
