"""Latency the cloud client adds on top of the server's own processing, over loopback.

Run: python benchmarks/bench_cloud.py [--requests N]. The local server runs in its own
process with the scripted responder (no model cost) and reports its time per request in a
Server-Timing header; added = the client's request() time minus that. Prints median and
p95 in milliseconds at 1, 4 and 16 requests in flight.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import multiprocessing
import os
import platform
import re
import sys
import time
from pathlib import Path

import numpy as np

try:
    import spotvlm_ros  # noqa: F401
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'src'))

import aiohttp  # noqa: E402

from spotvlm_ros.cloud.client import CloudClient, CloudClientConfig  # noqa: E402
from spotvlm_ros.cloud.encoding import encode_keyframe  # noqa: E402
from spotvlm_ros.cloud.responders import ScriptedResponder  # noqa: E402
from spotvlm_ros.cloud.server import make_app, start_server  # noqa: E402

MODEL = 'bench'
IN_FLIGHT = (1, 4, 16)
WIDTH, HEIGHT = 640, 480
_TOTAL = re.compile(r'total;dur=([\d.]+)')


def scene() -> np.ndarray:
    """A 640x480 frame with a few solid objects, so replies carry regions to parse."""
    frame = np.full((HEIGHT, WIDTH, 3), 90, np.uint8)
    for x, y, colour in ((60, 200, (220, 30, 30)), (300, 260, (30, 30, 220)),
                         (480, 80, (230, 220, 30))):
        frame[y:y + 120, x:x + 100] = colour
    return frame


def serve(port_queue) -> None:
    """Child process: the local server with the scripted responder, until terminated."""
    async def run():
        server = await start_server(make_app(ScriptedResponder(), served_model=MODEL))
        port_queue.put(server.port)
        await asyncio.Event().wait()
    asyncio.run(run())


def server_time_recorder(times: dict) -> aiohttp.TraceConfig:
    """Hooks that store each reply's Server-Timing total (s) under its X-Request-Id."""
    async def on_request_end(session, context, params):
        match = _TOTAL.search(params.response.headers.get('Server-Timing', ''))
        if match:
            times[params.headers['X-Request-Id']] = float(match.group(1)) / 1000.0

    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(on_request_end)
    return trace


async def run_level(base_url: str, in_flight: int, requests: int, frame: np.ndarray) -> dict:
    """`requests` requests kept `in_flight` at a time; end-to-end and server seconds."""
    server_times: dict = {}
    config = CloudClientConfig(base_url=base_url, model=MODEL, api_key_env='',
                               max_in_flight=in_flight, max_image_side=WIDTH, retries=0,
                               timeout_s=30.0)
    samples = []
    stamps = itertools.count()  # rising across warm-up and measurement, as camera stamps do
    async with CloudClient(config, trace_configs=[server_time_recorder(server_times)]) as client:
        async def worker(index: int, count: int) -> None:
            # One query per worker: answers to the same query would supersede each other.
            for _ in range(count):
                seq = next(stamps)
                started = time.perf_counter()
                answer = await client.request(frame, float(seq), seq, f'query {index}')
                elapsed = time.perf_counter() - started
                if answer.status != 'ok':
                    raise RuntimeError(f'request failed: {answer.error}')
                samples.append((f'kf{seq}-1', elapsed))

        await asyncio.gather(*(worker(i, 3) for i in range(in_flight)))  # warm-up
        samples.clear()
        per_worker = max(1, requests // in_flight)
        await asyncio.gather(*(worker(i, per_worker) for i in range(in_flight)))
    e2e = np.array([s for _, s in samples])
    server = np.array([server_times[request_id] for request_id, _ in samples])
    added = (e2e - server) * 1000.0
    return {'requests': len(samples), 'e2e_ms': float(np.median(e2e) * 1000),
            'server_ms': float(np.median(server) * 1000),
            'added_median_ms': float(np.median(added)),
            'added_p95_ms': float(np.percentile(added, 95))}


def encode_ms(frame: np.ndarray, repeat: int = 50) -> float:
    """Median time of the client's JPEG encoding alone, part of what it adds."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        encode_keyframe(frame, 85, WIDTH, 28)
        samples.append(time.perf_counter() - started)
    return float(np.median(samples) * 1000)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--requests', type=int, default=160,
                        help='measured requests per level (default: %(default)s)')
    args = parser.parse_args(argv)

    ports = multiprocessing.get_context('spawn').Queue()
    server = multiprocessing.get_context('spawn').Process(target=serve, args=(ports,),
                                                          daemon=True)
    server.start()
    try:
        base_url = f'http://127.0.0.1:{ports.get(timeout=60)}/v1'
        frame = scene()
        sent = encode_keyframe(frame, 85, WIDTH, 28)[1]
        print(f'cloud client overhead over loopback: Python {platform.python_version()}, '
              f'{os.cpu_count()} CPUs, aiohttp {aiohttp.__version__}; '
              f'{WIDTH}x{HEIGHT} keyframe, JPEG q85, sent {sent[0]}x{sent[1]}; '
              f'server in its own process, scripted responder; '
              f'load average {os.getloadavg()[0]:.1f}')
        print(f'JPEG encoding alone: {encode_ms(frame):.2f} ms median')
        print(f'{"in flight":>9}  {"requests":>8}  {"e2e med ms":>10}  {"server med ms":>13}  '
              f'{"added med ms":>12}  {"added p95 ms":>12}')
        for in_flight in IN_FLIGHT:
            row = asyncio.run(run_level(base_url, in_flight, args.requests, frame))
            print(f'{in_flight:>9}  {row["requests"]:>8}  {row["e2e_ms"]:>10.2f}  '
                  f'{row["server_ms"]:>13.2f}  {row["added_median_ms"]:>12.2f}  '
                  f'{row["added_p95_ms"]:>12.2f}')
    finally:
        server.terminate()
        server.join(10)
    return 0


if __name__ == '__main__':
    sys.exit(main())
