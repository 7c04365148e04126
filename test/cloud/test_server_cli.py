"""`spotvlm cloud-server`: the command line, trace loading, and a real checkpoint served."""

import asyncio
import math
import os
import queue
import re
import secrets
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from spotvlm_ros.cloud.client import CloudClient, CloudClientConfig
from spotvlm_ros.cloud.server import _arguments, load_trace, main
from spotvlm_ros.core.traces import LatencyTrace


def test_server_binds_loopback_by_default():
    assert _arguments([]).host == '127.0.0.1'
    assert _arguments(['--host', '0.0.0.0']).host == '0.0.0.0'


def test_unset_api_key_variable_is_refused(capsys, monkeypatch):
    monkeypatch.delenv('SPOTVLM_TEST_UNSET_KEY', raising=False)
    assert main(['--api-key-env', 'SPOTVLM_TEST_UNSET_KEY']) == 2
    assert 'SPOTVLM_TEST_UNSET_KEY is empty or unset' in capsys.readouterr().err


def test_unknown_trace_kind_is_refused(capsys):
    assert main(['--trace', 'weather']) == 2
    assert 'unknown trace kind' in capsys.readouterr().err


def test_missing_checkpoint_is_refused_with_its_path(capsys, tmp_path):
    assert main(['--model', str(tmp_path / 'nowhere')]) == 2
    assert 'nowhere' in capsys.readouterr().err


def test_trace_from_csv_and_from_kind(tmp_path):
    path = tmp_path / 'link.csv'
    LatencyTrace([0.0, 1.0, 2.0], [0.5, math.nan, 2.0]).to_csv(path)
    loaded = load_trace(str(path), seed=0, duration_s=10.0)
    assert [loaded.delay_at(t) for t in (0.1, 1.1, 2.1)] == [0.5, None, 2.0]
    generated = load_trace('constant', seed=3, duration_s=10.0, params=['delay_s=0.7'])
    assert generated.delay_at(4.0) == 0.7
    with pytest.raises(ValueError, match='--trace-param'):
        load_trace('constant', seed=3, duration_s=10.0, params=['delay_s'])
    with pytest.raises(ValueError, match='delay_s must be a number'):
        load_trace('constant', seed=3, duration_s=10.0, params=['delay_s=fast'])


def _lines(stream, into: queue.Queue):
    for line in stream:
        into.put(line)


def test_cli_serves_a_local_checkpoint_behind_a_trace_and_a_key(monkeypatch):
    from spotvlm_ros.models.tiny import tiny_checkpoint

    key_env, key = 'SPOTVLM_TEST_SERVER_KEY', 'sk-' + secrets.token_hex(16)
    monkeypatch.setenv(key_env, key)
    command = [sys.executable, '-m', 'spotvlm_ros.cloud.server', '--model', str(tiny_checkpoint()),
               '--served-model-name', 'tiny', '--port', '0', '--api-key-env', key_env,
               '--trace', 'constant', '--trace-param', 'delay_s=0.3', '--max-new-tokens', '8',
               '--log-level', 'DEBUG']
    env = dict(os.environ, OMP_NUM_THREADS='1')
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    lines = queue.Queue()
    threading.Thread(target=_lines, args=(process.stderr, lines), daemon=True).start()
    log = []
    try:
        url = None
        deadline = time.monotonic() + 120
        while url is None and time.monotonic() < deadline and process.poll() is None:
            try:
                log.append(lines.get(timeout=1))
            except queue.Empty:
                continue
            match = re.search(r"serving 'tiny' on (http://127\.0\.0\.1:\d+/v1)", log[-1])
            url = match and match.group(1)
        assert url, ''.join(log)

        async def ask():
            config = CloudClientConfig(base_url=url, model='tiny', api_key_env=key_env,
                                       timeout_s=30.0, max_image_side=320)
            async with CloudClient(config) as client:
                started = time.perf_counter()
                frame = np.full((240, 320, 3), 120, np.uint8)
                answer = await client.request(frame, 1.0, 1, 'What is ahead?')
                return answer, time.perf_counter() - started

        answer, elapsed = asyncio.run(ask())
        assert answer.status == 'ok', answer.error
        assert answer.model == 'tiny' and answer.image_size == (320, 240)
        assert elapsed >= 0.3
    finally:
        process.send_signal(signal.SIGINT)
        returncode = process.wait(30)
    time.sleep(0.1)
    while not lines.empty():
        log.append(lines.get())
    text = ''.join(log)
    assert returncode == 0
    assert re.search(r'kf1-1: 308x252 image \(\d+ bytes\), upload 0\.000 s, delay 0\.300 s', text), text
    assert key not in text
