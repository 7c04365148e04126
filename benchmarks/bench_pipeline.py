"""Pipeline overhead by stage: frame stamp to answer received, minus the model's inference time.

Runs the context fuser and the edge node as real processes (as `spotvlm run` starts them),
publishes rendered driving frames from this process and times each answer on arrival; the edge
node's ~/stage_times (parameter diagnostics.stage_times) say where the time went. For each
transport (raw rgb8 Image, JPEG CompressedImage) and size, at 5 Hz (the headline figure) and at
1, 4 and 16 Hz. Prints medians and p95 in ms, each node's CPU time per frame, and the load.

Run: python benchmarks/bench_pipeline.py [--sizes 640x480,1920x1080] [--transports raw,compressed]
     [--rates 5,1,4,16] [--seconds 12]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time

import numpy as np

os.environ.setdefault('ROS_DOMAIN_ID', str(10 + os.getpid() % 90))
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('HF_HUB_OFFLINE', '1')

import cv2  # noqa: E402
import rclpy  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402
from spotvlm_msgs.msg import EdgeAnswer  # noqa: E402

from spotvlm_ros.nodes.images import rgb_to_image  # noqa: E402
from spotvlm_ros.nodes.qos import ANSWER_QOS, image_qos  # noqa: E402
from spotvlm_ros.nodes.runner import make_executor, use_frame_transport  # noqa: E402
from spotvlm_ros.run import CONFIG, node_command, stop_all  # noqa: E402
from spotvlm_ros.scenes.truth import sequence  # noqa: E402

POOL = 20  # distinct frames, cycled
WARMUP_FRAMES = 5  # sent before each size's cells, not counted: the model's first calls
JPEG_QUALITY = 95  # image_transport's compressed default
TARGETS_MS = {('640x480', 'raw'): 5.0, ('1920x1080', 'raw'): 15.0,
              ('1920x1080', 'compressed'): 25.0}
# (row label, start mark, end mark): marks are the edge's stage times plus the frame's stamp
# and the answer's arrival in this process's callback ('arrived').
STAGE_ROWS = (
    ('transport + executor: stamp -> callback', 'stamp', 'callback'),
    ('message -> array (+ decode)', 'callback', 'converted'),
    ('waiting for the worker', 'converted', 'taken'),
    ('focus planning', 'taken', 'planned'),
    ('answer message built', 'inferred', 'publish'),
    ('delivery: publish -> bench callback', 'publish', 'arrived'),
)


def load() -> str:
    """The 1-minute load average, as the shared machine's noise level."""
    return open('/proc/loadavg').read().split()[0]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used."""
    fields = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def frame_messages(transport: str, width: int, height: int) -> list:
    """POOL rendered frames of a driving scene as Image or JPEG CompressedImage messages."""
    frames = [frame for frame, _ in sequence(0, POOL, width, height)]
    if transport == 'raw':
        return [rgb_to_image(f) for f in frames]
    messages = []
    for frame in frames:
        ok, jpeg = cv2.imencode('.jpg', cv2.cvtColor(frame, cv2.COLOR_RGB2BGR),
                                [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        messages.append(CompressedImage(format='rgb8; jpeg compressed bgr8', data=jpeg.tobytes()))
    return messages


class FloorProbe:
    """A bare subscriber process: the frame's stamp, callback and conversion times, echoed."""

    def __init__(self, transport: str):
        from rclpy.node import Node

        from spotvlm_ros.nodes.images import frame_or_skip

        self.node = Node('floor_probe')
        self.convert = lambda msg: frame_or_skip(self.node, msg, {'bad_frames': 0})
        kind, topic = (Image, 'image') if transport == 'raw' else (CompressedImage,
                                                                   'image/compressed')
        self.pub = self.node.create_publisher(DiagnosticArray, 'floor_probe/stage_times',
                                              ANSWER_QOS)
        self.node.create_subscription(kind, topic, self._on_image, image_qos(True))

    def _on_image(self, msg) -> None:
        from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

        called = time.time()
        self.convert(msg)
        marks = {'callback': called, 'converted': time.time()}
        self.pub.publish(DiagnosticArray(header=msg.header, status=[DiagnosticStatus(
            values=[KeyValue(key=k, value=repr(v)) for k, v in marks.items()])]))


class Bench:
    """This process's node: publishes frames, collects answers and the edge's stage times."""

    def __init__(self, transport: str):
        self.node = rclpy.create_node('bench_pipeline')
        self.answers: dict = {}  # stamp ns -> (answer, marks)
        self.stages: dict = {}  # stamp ns -> marks
        self.probe: dict = {}  # stamp ns -> (marks, arrival)
        self.node.create_subscription(EdgeAnswer, 'answer', self._on_answer, ANSWER_QOS)
        self.node.create_subscription(DiagnosticArray, 'edge_node/stage_times', self._on_stages,
                                      ANSWER_QOS)
        self.node.create_subscription(DiagnosticArray, 'floor_probe/stage_times',
                                      self._on_probe, ANSWER_QOS)
        kind, topic = (Image, 'image') if transport == 'raw' else (CompressedImage,
                                                                   'image/compressed')
        self.pub = self.node.create_publisher(kind, topic, image_qos(True))
        self.executor = make_executor()  # as the nodes receive: a planner would too
        self.executor.add_node(self.node)
        self.running = True
        self.spinner = threading.Thread(target=self._spin, daemon=True)
        self.spinner.start()

    def _spin(self) -> None:
        # spin_once with a timeout, as the nodes' runner does: this rclpy's EventsExecutor.spin()
        # keeps a core busy while it waits.
        while self.running and self.executor.context.ok():
            self.executor.spin_once(timeout_sec=0.5)

    def _on_answer(self, msg: EdgeAnswer) -> None:
        self.answers[_ns(msg.header.stamp)] = (msg, {'arrived': time.time()})

    def _on_stages(self, msg: DiagnosticArray) -> None:
        self.stages[_ns(msg.header.stamp)] = {v.key: float(v.value) for v in msg.status[0].values}

    def _on_probe(self, msg: DiagnosticArray) -> None:
        arrived = time.time()
        self.probe[_ns(msg.header.stamp)] = ({v.key: float(v.value)
                                               for v in msg.status[0].values}, arrived)

    def wait_for(self, topic: str, subscribers: int, timeout_s: float = 300.0) -> bool:
        """Whether `topic` has a publisher and the frames `subscribers`, within the timeout."""
        deadline = time.monotonic() + timeout_s
        while self.node.count_publishers(topic) == 0 or \
                self.pub.get_subscription_count() < subscribers:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True

    def send(self, pool: list, count: int, rate_hz: float) -> list:
        """Publish `count` frames at `rate_hz`; their stamps in ns."""
        stamps = []
        start = time.monotonic()
        for i in range(count):
            msg = pool[i % len(pool)]
            msg.header.stamp = self.node.get_clock().now().to_msg()
            stamps.append(_ns(msg.header.stamp))
            self.pub.publish(msg)
            time.sleep(max(0.0, start + (i + 1) / rate_hz - time.monotonic()))
        time.sleep(1.5)  # the last answers
        return stamps

    def close(self) -> None:
        self.running = False
        self.spinner.join()
        self.executor.shutdown()
        self.node.destroy_node()


def _ns(stamp) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def cell_rows(bench: Bench, stamps: list) -> dict:
    """Row label -> per-answer values in ms, for the answers to these frames."""
    rows: dict = {label: [] for label in ('total', 'inference', 'preprocessing', 'overhead')}
    rows.update({label: [] for label, _, _ in STAGE_ROWS})
    for stamp in stamps:
        if stamp not in bench.answers or stamp not in bench.stages:
            continue
        answer, arrival = bench.answers[stamp]
        marks = {'stamp': stamp * 1e-9, **bench.stages[stamp], **arrival}
        total = marks['arrived'] - marks['stamp']
        rows['total'].append(total * 1e3)
        rows['inference'].append(answer.inference_time_s * 1e3)
        rows['preprocessing'].append(marks['preprocess_s'] * 1e3)
        rows['overhead'].append((total - answer.inference_time_s) * 1e3)
        for label, begin, end in STAGE_ROWS:
            rows[label].append((marks[end] - marks[begin]) * 1e3)
    return rows


def print_table(title: str, cells: dict) -> None:
    """One size and transport: a row per stage, a median/p95 column pair per rate."""
    rates = list(cells)
    print(f'\n{title}' + ''.join(f'{f"{r:g} Hz":>16s}' for r in rates))
    print(f'{"":44s}' + '     median   p95' * len(rates))
    print(f'{"answers / frames sent":44s}' + ''.join(
        f'{c["answered"]:>10d}/{c["sent"]:<5d}' for c in cells.values()))
    labels = [('frame stamp -> answer received', 'total'),
              ('model inference (inference_time_s)', 'inference'),
              ('  of which template + image preprocessing', 'preprocessing'),
              ('pipeline overhead (difference)', 'overhead')]
    labels += [(f'  {label}', label) for label, _, _ in STAGE_ROWS]
    for label, key in labels:
        line = f'{label:44s}'
        for cell in cells.values():
            values = cell['rows'][key]
            line += (f'{np.median(values):10.1f}{np.percentile(values, 95):6.1f}' if values
                     else f'{"-":>10s}{"-":>6s}')
        print(line)
    for node in ('edge_node', 'context_fuser'):
        print(f'{node + " CPU ms per frame sent":44s}' + ''.join(
            f'{c["cpu"][node]:10.1f}{"":6s}' for c in cells.values()))
    print(f'{"load average (1 min) after the cell":44s}' + ''.join(
        f'{c["load"]:>10s}{"":6s}' for c in cells.values()))


def floor(bench: Bench, transport: str, size: tuple, pool: list, rate: float) -> dict:
    """A bare subscriber process alone: frame stamp to its callback, and to the frame as an
    array, and its small reply back; each a list of ms."""
    probe = subprocess.Popen([sys.executable, __file__, '--probe', transport],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not bench.wait_for('floor_probe/stage_times', 1, 60.0):
            raise RuntimeError('the floor probe never became ready')
        bench.send(pool, WARMUP_FRAMES, 2.0)
        stamps = bench.send(pool, max(POOL, 2 * POOL), rate)
    finally:
        stop_all({'probe': probe})
    rows = {'crossing': [], 'converted': [], 'reply': []}
    for stamp in stamps:
        if stamp in bench.probe:
            marks, arrived = bench.probe[stamp]
            rows['crossing'].append((marks['callback'] - stamp * 1e-9) * 1e3)
            rows['converted'].append((marks['converted'] - stamp * 1e-9) * 1e3)
            rows['reply'].append((arrived - marks['converted']) * 1e3)
    return rows


def print_floor(title: str, rows: dict) -> None:
    print(f'\n{title}: floor, a bare subscriber process alone ({len(rows["crossing"])} frames)')
    print(f'{"":44s}    median   p95   min')
    for label, key in (('frame stamp -> subscriber callback', 'crossing'),
                       ('  + message -> array (+ decode)', 'converted'),
                       ('small reply back (as an answer)', 'reply')):
        values = rows[key]
        print(f'{label:44s}{np.median(values):10.1f}{np.percentile(values, 95):6.1f}'
              f'{min(values):6.1f}' if values else f'{label:44s}         -')


def run_transport(transport: str, sizes: list, rates: list, seconds: float) -> dict:
    """Measure the floor, then start the nodes for one transport and measure every size and
    rate; cells by size and rate."""
    bench = Bench(transport)
    pools = {size: frame_messages(transport, *size) for size in sizes}
    floors = {size: floor(bench, transport, size, pools[size], rates[0]) for size in sizes}
    edge = {'model.device': 'cpu', 'model.max_new_tokens': 4, 'image_transport': transport,
            'diagnostics.stage_times': 'true'}
    procs = {n: subprocess.Popen(node_command(n, str(CONFIG), '', edge if n == 'edge_node'
                                              else {'image_transport': transport}),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for n in ('context_fuser', 'edge_node')}
    results = {}
    try:
        if not bench.wait_for('edge_node/stage_times', 2):
            raise RuntimeError('nodes never became ready')
        for width, height in sizes:
            pool = pools[(width, height)]
            bench.send(pool, WARMUP_FRAMES, 2.0)
            cells = {}
            for rate in rates:
                count = max(POOL, round(rate * seconds))
                cpu = {n: cpu_seconds(p.pid) for n, p in procs.items()}
                stamps = bench.send(pool, count, rate)
                used = {n: (cpu_seconds(p.pid) - cpu[n]) * 1e3 / count for n, p in procs.items()}
                rows = cell_rows(bench, stamps)
                cells[rate] = {'rows': rows, 'sent': count, 'answered': len(rows['total']),
                               'cpu': used, 'load': load()}
            size = f'{width}x{height}'
            print_table(f'{size} {transport}', cells)
            print_floor(f'{size} {transport} at {rates[0]:g} Hz', floors[(width, height)])
            results[size] = cells
    finally:
        bench.close()
        stop_all(procs)
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes', default='640x480,1920x1080')
    parser.add_argument('--transports', default='raw,compressed')
    parser.add_argument('--rates', default='5,1,4,16', help='Hz; the first is the headline')
    parser.add_argument('--seconds', type=float, default=12.0, help='per rate (>= 20 frames)')
    parser.add_argument('--probe', metavar='TRANSPORT', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe:  # the floor probe's own process
        from spotvlm_ros.nodes.runner import run_node

        return run_node(lambda: FloorProbe(args.probe).node, [])
    sizes = [tuple(int(v) for v in s.split('x')) for s in args.sizes.split(',')]
    rates = [float(r) for r in args.rates.split(',')]
    print(f'pipeline overhead: context_fuser + edge_node (model.max_new_tokens 4, CPU) as '
          f'processes; load average {load()} at start')
    use_frame_transport()  # this process is the camera: its frames go as the nodes' would
    rclpy.init()
    headline = {}
    try:
        for transport in args.transports.split(','):
            for size, cells in run_transport(transport, sizes, rates, args.seconds).items():
                overhead = cells[rates[0]]['rows']['overhead']
                headline[(size, transport)] = np.median(overhead) if overhead else float('nan')
    finally:
        rclpy.try_shutdown()
    print(f'\noverhead median at {rates[0]:g} Hz (target):')
    for (size, transport), value in headline.items():
        target = TARGETS_MS.get((size, transport))
        verdict = '' if target is None else (f' (<= {target:g}: '
                                             f'{"met" if value <= target else "NOT met"})')
        print(f'  {size} {transport:10s} {value:6.1f} ms{verdict}')
    print(f'load average {load()} at end')
    return 0


if __name__ == '__main__':
    sys.exit(main())
