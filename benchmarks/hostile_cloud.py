"""Hostile cloud: `spotvlm run` on the sample bag against an endpoint that cycles through
every hostile reply (test/resources/fault_server.py mode `cycle`), with recorded stamps.

Reports the answer rate, chat-template markers found in any FusedContext or EdgeAnswer, the
API key and tracebacks found in the logs, and what the fault server served.
Usage: python benchmarks/hostile_cloud.py [--bag bags/sample_scene] [--loops 3]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[1]
FAULT_SERVER = ROOT / 'test' / 'resources' / 'fault_server.py'
KEY_ENV = 'SPOTVLM_CLOUD_API_KEY'  # the bridge's default cloud.api_key_env
KEY = 'sk-hostile-bench-3c9d1e'
MARKERS = ('<|', '|>', '<s>', '</s>', '[INST]', '<<SYS>>', '<think>')


def _texts_of_fused(msg) -> list:
    return ([t.answer for t in msg.turns] + [t.query for t in msg.turns]
            + [r.label for r in msg.focus_regions])


def _texts_of_answer(msg) -> list:
    return [msg.answer, msg.query] + [r.label for r in msg.focus_regions]


class Recorder:
    """Subscribes to fused_context and answer in this process; counts markers in each."""

    def __init__(self):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from spotvlm_msgs.msg import EdgeAnswer, FusedContext

        from spotvlm_ros.nodes.qos import ANSWER_QOS, FUSED_CONTEXT_QOS

        rclpy.init()
        self.rclpy = rclpy
        self.node = rclpy.create_node('hostile_cloud_recorder')
        self.counts = {'fused': 0, 'fused_marked': 0, 'answers': 0, 'answers_marked': 0,
                       'answers_with_context': 0, 'first_answer': None, 'last_answer': None}
        self.examples: list = []
        self.node.create_subscription(FusedContext, 'fused_context', self._on_fused,
                                      FUSED_CONTEXT_QOS)
        self.node.create_subscription(EdgeAnswer, 'answer', self._on_answer, ANSWER_QOS)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        import threading
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _marked(self, texts: list) -> bool:
        found = [t for t in texts if any(m in t for m in MARKERS)]
        if found and len(self.examples) < 3:
            self.examples.append(found[0][:120])
        return bool(found)

    def _on_fused(self, msg) -> None:
        self.counts['fused'] += 1
        self.counts['fused_marked'] += self._marked(_texts_of_fused(msg))

    def _on_answer(self, msg) -> None:
        now = time.monotonic()
        self.counts['answers'] += 1
        self.counts['answers_marked'] += self._marked(_texts_of_answer(msg))
        self.counts['answers_with_context'] += bool(msg.used_context or msg.used_focus)
        self.counts['first_answer'] = self.counts['first_answer'] or now
        self.counts['last_answer'] = now

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.rclpy.try_shutdown()


def _fault_state(port: int) -> dict:
    with urllib.request.urlopen(f'http://127.0.0.1:{port}/_fault', timeout=5) as reply:
        return json.loads(reply.read())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--bag', default=str(ROOT / 'bags' / 'sample_scene'))
    parser.add_argument('--loops', type=int, default=3, help='passes over the bag (looping)')
    args = parser.parse_args(argv)
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    os.environ.setdefault('ROS_DOMAIN_ID', str(10 + os.getpid() % 90))
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    os.environ[KEY_ENV] = KEY
    from spotvlm_ros.run import free_port, port_open

    logs = pathlib.Path(tempfile.mkdtemp(prefix='hostile-cloud-'))
    port = free_port()
    server = subprocess.Popen([sys.executable, str(FAULT_SERVER), '--port', str(port),
                               '--mode', 'cycle', '--api-key-env', KEY_ENV],
                              stdout=open(logs / 'fault_server.log', 'w'), stderr=subprocess.STDOUT)
    while not port_open(port):
        time.sleep(0.1)
    bag_s = 10.0  # the sample bag: 100 frames at 10 Hz
    duration = bag_s * args.loops
    recorder = Recorder()
    run_log = logs / 'spotvlm_run.log'
    cmd = [sys.executable, '-m', 'spotvlm_ros.cli', 'run', '--bag', args.bag,
           '--cloud-url', f'http://127.0.0.1:{port}/v1', '--duration', str(duration + 5),
           '-p', 'image_source:source.image_topic=/camera/image_raw/compressed',
           '-p', 'image_source:restamp=false', '-p', 'image_source:loop=true',
           '-p', 'cloud_bridge:cloud.model=tiny', '-p', 'cloud_bridge:cloud.timeout_s=4.0',
           '-p', 'cloud_bridge:keyframe.min_interval_s=0.3',
           '-p', 'cloud_bridge:keyframe.max_interval_s=0.6', '--quiet']
    start = time.monotonic()
    with open(run_log, 'w') as out:
        code = subprocess.call(cmd, stdout=out, stderr=subprocess.STDOUT)
    wall = time.monotonic() - start
    time.sleep(1.0)
    recorder.close()
    state = _fault_state(port)
    server.terminate()
    server.wait(10)

    text = '\n'.join(p.read_text(errors='replace') for p in logs.iterdir())
    c = recorder.counts
    answering_s = (c['last_answer'] - c['first_answer']) if c['answers'] > 1 else 0.0
    rate = (c['answers'] - 1) / answering_s if answering_s > 0 else 0.0
    cycle = {k.split(':', 1)[1]: v for k, v in state['counts'].items() if k.startswith('cycle:')}
    print(f'spotvlm run exit {code} after {wall:.0f} s; logs in {logs}')
    print(f'cloud requests {state["requests"]}, by reply: {json.dumps(cycle, sort_keys=True)}')
    print(f'answers {c["answers"]} at {rate:.1f} Hz over {answering_s:.1f} s '
          f'({c["answers_with_context"]} used cloud context or focus)')
    print(f'chat-template markers: FusedContext {c["fused_marked"]} of {c["fused"]}, '
          f'EdgeAnswer {c["answers_marked"]} of {c["answers"]}'
          + (f'; e.g. {recorder.examples}' if recorder.examples else ''))
    print(f'tracebacks in logs: {text.count("Traceback")}; API key in logs: '
          f'{text.count(KEY)}; "RecursionError": {text.count("RecursionError")}')
    bad = c['fused_marked'] or c['answers_marked'] or text.count('Traceback') or KEY in text
    return 1 if bad or code != 0 else 0


if __name__ == '__main__':
    sys.exit(main())
