"""`spotvlm run`: starts the nodes as separate processes with one params file, like the launch file.

launch_ros is not installable from the package registries, so this is the bring-up where only
the ros-jazzy-* wheels exist. It stops every process it started on Ctrl-C or when the bag ends.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Optional, Sequence

from spotvlm_ros.scenes.large_model import is_simulated
from spotvlm_ros.share import DEFAULT_CLOUD_CHECKPOINT, SAMPLE_BAG, SCHEME

NODES = ('context_fuser', 'cloud_bridge', 'edge_node', 'image_source')
CONFIG = pathlib.Path(__file__).resolve().parents[2] / 'config' / 'spotvlm.yaml'


class UsageError(ValueError):
    """A bad command-line input: reported in one line with exit code 2, before anything starts."""


def served_name(model: str) -> str:
    """The name the local server serves a checkpoint under: a folder's name, or the hub id."""
    model = str(model)
    if model.startswith(SCHEME) or os.path.isdir(model) or model.startswith(('/', '.', '~')):
        return pathlib.PurePath(model.rstrip('/')).name
    return model


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def port_open(port: int) -> bool:
    """Whether something accepts connections on a loopback port."""
    with socket.socket() as sock:
        return sock.connect_ex(('127.0.0.1', port)) == 0


def node_command(node: str, params_file: str, namespace: str, overrides: dict) -> list:
    """The command line of one node process."""
    cmd = [sys.executable, '-m', f'spotvlm_ros.nodes.{node}', '--ros-args',
           '--params-file', params_file]
    if namespace:
        cmd += ['-r', f'__ns:={namespace}']
    for key, value in overrides.items():
        cmd += ['-p', f"{key}:={value if value != '' else repr('')}"]  # YAML '' is empty
    return cmd


def stop_all(procs: dict, timeout_s: float = 10.0) -> dict:
    """SIGINT every running process, then SIGKILL what is left; exit codes by name."""
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + timeout_s
    for proc in procs.values():
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return {name: proc.returncode for name, proc in procs.items()}


class AnswerPrinter:
    """Subscribes to the answers in this process, prints each, and sums them up at the end."""

    def __init__(self, namespace: str, quiet: bool):
        import rclpy
        from spotvlm_msgs.msg import EdgeAnswer

        from spotvlm_ros.nodes.qos import ANSWER_QOS

        rclpy.init(args=[])
        self.rclpy = rclpy
        self.node = rclpy.create_node('spotvlm_run')
        self.topic = f'{namespace.rstrip("/")}/answer' if namespace else 'answer'
        self.latencies_ms: list = []  # floats only: a long run must not keep every message
        self.ages_s: list = []
        self.dropped = 0
        self.with_context = 0
        self.quiet = quiet
        self.node.create_subscription(EdgeAnswer, self.topic, self._on_answer, ANSWER_QOS)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException

        try:
            self.rclpy.spin(self.node)
        except ExternalShutdownException:
            pass

    def _on_answer(self, msg) -> None:
        self.latencies_ms.append(msg.latency_s * 1e3)
        if msg.context_age_s >= 0:
            self.ages_s.append(msg.context_age_s)
        self.dropped += msg.frames_dropped
        self.with_context += msg.used_context or msg.used_focus
        if self.quiet:
            return
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        age = f'{msg.context_age_s:5.2f} s' if msg.context_age_s >= 0 else ' none '
        print(f'[answer] frame {stamp:.3f} latency {msg.latency_s * 1e3:6.0f} ms '
              f'context age {age} | {msg.answer!r}', flush=True)

    def edge_ready(self) -> bool:
        return self.node.count_publishers(self.topic) > 0

    def summary(self) -> str:
        import numpy as np

        if not self.latencies_ms:
            return 'no answers'
        lat = np.array(self.latencies_ms)
        ages = self.ages_s
        age_text = (f'context age median {np.median(ages):.2f} s' if ages else 'no context')
        return (f'{len(lat)} answers, {self.dropped} frames dropped (latest-frame policy); '
                f'latency p50 {np.percentile(lat, 50):.0f} ms p95 {np.percentile(lat, 95):.0f} ms; '
                f'{self.with_context} used cloud context; {age_text}')

    def close(self) -> None:
        self.rclpy.try_shutdown()
        self._thread.join(5)
        self.node.destroy_node()


def start_recorder(path: str, namespace: str):
    """An AnswerRecorder into `path` (an existing bag there is replaced), subscribed before
    any node starts: the bag's first frame waits for its image subscription."""
    import shutil

    from spotvlm_ros.nodes.recorder import AnswerRecorder

    if os.path.exists(path):
        shutil.rmtree(path)
    return AnswerRecorder(path, namespace)


def _arguments(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='spotvlm run', description=__doc__.splitlines()[0])
    parser.add_argument('--params-file', default=str(CONFIG))
    parser.add_argument('--bag', help='bag to replay (sets source.path; default: the sample bag)')
    parser.add_argument('--namespace', default='', help="e.g. 'front' for /front/image ...")
    parser.add_argument('--no-cloud', action='store_true', help='edge only: no bridge, no server')
    parser.add_argument('--cloud-url', help='an external OpenAI-compatible endpoint (no local server)')
    parser.add_argument('--cloud-model', default=DEFAULT_CLOUD_CHECKPOINT,
                        help="local server's checkpoint (default: the trained %(default)s); "
                             "'tiny' = random weights, for tests; 'simulated' = a stand-in for "
                             "a 72B-class model that reads the bag's ground truth")
    parser.add_argument('--trace', default='lognormal', help='latency trace of the local server')
    parser.add_argument('--trace-param', action='append', default=[], metavar='KEY=VALUE')
    parser.add_argument('--trace-columns', metavar='TIME,DELAY',
                        help="header names of a CSV trace's columns (_ms: milliseconds)")
    parser.add_argument('--uplink-mbps', type=float, default=None,
                        help="local server: emulate the uplink a keyframe's bytes (JPEG or "
                             'visual tokens) take, Mbit/s (default: none)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--duration', type=float, default=0.0, help='stop after this many seconds')
    parser.add_argument('--grace', type=float, default=3.0, help='seconds to wait for last answers')
    parser.add_argument('-p', '--param', action='append', default=[], metavar='NODE:NAME=VALUE',
                        help="a parameter override, e.g. 'edge_node:strategy=edge_only'")
    parser.add_argument('--quiet', action='store_true', help='print only the summary')
    parser.add_argument('--record', metavar='BAG',
                        help="record the edge answers and the bag's ground truth into this "
                             'MCAP bag (replaced if it exists), as the evaluator reads them')
    return parser.parse_args(argv)


def _overrides(args, port: Optional[int]) -> dict:
    overrides = {node: {} for node in NODES}
    if args.bag:
        overrides['image_source']['source.path'] = os.path.abspath(args.bag)
    # Every consumer must see the first frame: the bag starts once they all match (the
    # recorder's image subscription is one of them).
    overrides['image_source']['wait_for_subscribers'] = (
        (2 if args.no_cloud else 3) + (1 if args.record else 0))
    if args.cloud_url:
        overrides['cloud_bridge']['cloud.base_url'] = args.cloud_url
    elif port is not None:
        overrides['cloud_bridge']['cloud.base_url'] = f'http://127.0.0.1:{port}/v1'
        overrides['cloud_bridge']['cloud.model'] = served_name(args.cloud_model)
        overrides['cloud_bridge']['cloud.api_key_env'] = ''
    for item in args.param:
        node, _, assignment = item.partition(':')
        name, _, value = assignment.partition('=')
        if node not in overrides or not name:
            raise UsageError(f"bad --param '{item}' (NODE:NAME=VALUE, NODE in {', '.join(NODES)})")
        overrides[node][name] = value
    # The fuser counts its token budget with the edge model's tokenizer: the same checkpoint.
    edge_model = overrides['edge_node'].get('model.path')
    if edge_model:
        overrides['context_fuser'].setdefault('tokenizer', edge_model)
    # Visual tokens are read by the served checkpoint's decoder: its own encoder makes them.
    if port is not None and not is_simulated(args.cloud_model):
        overrides['cloud_bridge'].setdefault('cloud.encoder_model', _server_checkpoint(args))
    return overrides


def _server_checkpoint(args) -> str:
    """The checkpoint (or 'simulated') the local cloud server loads."""
    if args.cloud_model == 'tiny':
        from spotvlm_ros.models.tiny import tiny_checkpoint

        return str(tiny_checkpoint())
    return args.cloud_model


def _cloud_server(args, port: int) -> subprocess.Popen:
    model = _server_checkpoint(args)
    cmd = [sys.executable, '-m', 'spotvlm_ros.cloud.server', '--model', model,
           '--served-model-name', served_name(args.cloud_model), '--port', str(port), '--seed', str(args.seed),
           '--log-level', 'WARNING']
    if is_simulated(model):  # it answers from the replayed drive's own ground truth
        cmd += ['--truth-bag', args.bag]
    if args.trace:
        cmd += ['--trace', args.trace]
    for param in args.trace_param:
        cmd += ['--trace-param', param]
    if args.trace_columns:
        cmd += ['--trace-columns', args.trace_columns]
    if args.uplink_mbps is not None:
        cmd += ['--uplink-mbps', str(args.uplink_mbps)]
    return subprocess.Popen(cmd)


def _interrupt(signum, frame):
    raise KeyboardInterrupt  # SIGTERM stops the nodes the way Ctrl-C does


def _wait_for(condition, timeout_s: float, procs: dict) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        if any(p.poll() is not None for p in procs.values()):
            return False
        time.sleep(0.2)
    return False


def check_arguments(args) -> None:
    """UsageError for inputs that cannot work, before any process starts."""
    from spotvlm_ros.share import resolve

    if not os.path.isfile(args.params_file):
        raise UsageError(f'--params-file {args.params_file}: no such file')
    if args.bag is None and not any('source.path=' in p for p in args.param):
        args.bag = SAMPLE_BAG
    if args.bag is not None:
        args.bag = resolve(args.bag)
        if not os.path.exists(args.bag):
            raise UsageError(f'--bag {args.bag}: no such bag (a bag folder or .mcap/.db3 file)')
    for name in ('duration', 'grace'):
        value = getattr(args, name)
        if not value >= 0 or value == float('inf'):
            raise UsageError(f'--{name} must be a finite number >= 0, got {value}')
    if args.uplink_mbps is not None and not 0 < args.uplink_mbps < float('inf'):
        raise UsageError(f'--uplink-mbps must be a positive number, got {args.uplink_mbps}')
    if not args.no_cloud and not args.cloud_url:
        if is_simulated(args.cloud_model) and args.bag is None:
            raise UsageError('--cloud-model simulated answers from the ground truth of --bag')
        if args.cloud_model != 'tiny' and not is_simulated(args.cloud_model):
            from spotvlm_ros.models.base import ModelLoadError
            from spotvlm_ros.models.checkpoint import looks_like_path, resolve_checkpoint

            if args.cloud_model.startswith(SCHEME) or looks_like_path(args.cloud_model):
                try:
                    args.cloud_model = str(resolve_checkpoint(args.cloud_model))
                except ModelLoadError as err:
                    raise UsageError(f'--cloud-model: {err}') from None
        from spotvlm_ros.cloud.server import load_trace

        try:
            load_trace(args.trace, args.seed, 600.0, args.trace_param, args.trace_columns)
        except (OSError, ValueError) as err:
            raise UsageError(f'--trace: {err}') from None
    _overrides(args, None)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _arguments(argv)
    try:
        check_arguments(args)
    except UsageError as err:
        print(f'spotvlm run: {err}', file=sys.stderr)
        return 2
    if args.namespace and not args.namespace.startswith('/'):
        args.namespace = '/' + args.namespace  # rcl takes only fully qualified namespaces
    cloud = not args.no_cloud
    port = free_port() if cloud and not args.cloud_url else None
    overrides = _overrides(args, port)
    procs: dict = {}
    printer = AnswerPrinter(args.namespace, args.quiet)
    recorder = None
    interrupted = False
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        if args.record:
            recorder = start_recorder(args.record, args.namespace)
        if port is not None:
            procs['cloud_server'] = _cloud_server(args, port)
        for node in NODES[:-1]:
            if node == 'cloud_bridge' and not cloud:
                continue
            procs[node] = subprocess.Popen(
                node_command(node, args.params_file, args.namespace, overrides[node]))
        if not _wait_for(printer.edge_ready, 300, procs):
            print('spotvlm run: the edge node never became ready', file=sys.stderr)
            return 1
        if port is not None and not _wait_for(lambda: port_open(port), 300, procs):
            print('spotvlm run: the local cloud server never became ready', file=sys.stderr)
            return 1
        procs['image_source'] = subprocess.Popen(node_command(
            'image_source', args.params_file, args.namespace, overrides['image_source']))
        start = time.monotonic()
        while procs['image_source'].poll() is None:
            if args.duration and time.monotonic() - start >= args.duration:
                break
            failed = [n for n, p in procs.items() if p.poll() not in (None, 0)]
            if failed:
                print(f'spotvlm run: {", ".join(failed)} exited with an error', file=sys.stderr)
                return 1
            time.sleep(0.2)
        time.sleep(args.grace)  # answers for the last frames are still on their way
    except KeyboardInterrupt:
        interrupted = True
    finally:
        codes = stop_all(procs)
        signal.signal(signal.SIGTERM, previous)
        print(f'[summary] {printer.summary()}', flush=True)
        printer.close()
        if recorder is not None:
            recorder.close()
        bad = {n: c for n, c in codes.items() if c not in (0, -signal.SIGINT, 130)}
        if bad:
            print(f'spotvlm run: processes ended badly: {bad}', file=sys.stderr)
    # A source that failed (a bag that cannot be read) is no normal end of the bag.
    return 130 if interrupted else int(codes.get('image_source', 0) > 0)
