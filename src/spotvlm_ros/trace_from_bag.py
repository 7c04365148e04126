"""`spotvlm trace-from-bag BAG`: the cloud round trips recorded in a drive's CloudContext
messages, as the latency-trace CSV that `spotvlm eval --trace` and `spotvlm run --trace` replay."""

from __future__ import annotations

import argparse
import csv
import sys
from typing import Optional, Sequence

from spotvlm_ros.cli_types import existing_path

STATUS_NAMES = {0: 'ok', 1: 'timeout', 2: 'error'}


def round_trips(path: str, topic: str = '') -> list:
    """(request time s, round trip s or None for a timeout, status, keyframe_seq) of every
    CloudContext in a bag, by request time; ValueError when the bag holds none."""
    from spotvlm_ros.io.bags import CLOUD_CONTEXT_TYPE, spotvlm_typestore
    from spotvlm_ros.io.frame_sources import SourceError, open_bag

    store = spotvlm_typestore()
    try:
        reader = open_bag(path)
    except SourceError as err:
        raise ValueError(str(err)) from None
    try:
        conns = [c for c in reader.connections if c.msgtype == CLOUD_CONTEXT_TYPE
                 and (not topic or c.topic == topic)]
        if not conns:
            topics = ', '.join(sorted(f'{c.topic} ({c.msgtype})' for c in reader.connections))
            raise ValueError(f'{path} has no {CLOUD_CONTEXT_TYPE} topic'
                             f'{" " + topic if topic else ""} (topics: {topics or "none"})')
        rows = []
        for conn, _, raw in reader.messages(connections=conns):
            msg = store.deserialize_cdr(raw, conn.msgtype)
            sent = msg.request_stamp.sec + msg.request_stamp.nanosec * 1e-9
            status = STATUS_NAMES.get(msg.status, str(msg.status))
            # A timeout is an outage for the trace (no reply ever); an error reply still took
            # its round trip.
            rows.append((sent, None if status == 'timeout' else msg.round_trip_s, status,
                         msg.keyframe_seq))
    finally:
        reader.close()
    return sorted(rows)


def write_trace_csv(rows: list, out) -> None:
    """time_s (from the first request), delay_s ('nan' for an outage), status, keyframe_seq."""
    writer = csv.writer(out)
    writer.writerow(['time_s', 'delay_s', 'status', 'keyframe_seq'])
    start = rows[0][0]
    for sent, delay, status, seq in rows:
        writer.writerow([f'{sent - start:.6f}', 'nan' if delay is None else f'{delay:.6f}',
                         status, seq])


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog='spotvlm trace-from-bag',
                                     description=__doc__.splitlines()[0])
    parser.add_argument('bag', type=existing_path, help='a bag with CloudContext messages')
    parser.add_argument('--topic', default='', help='the CloudContext topic (default: the only one)')
    parser.add_argument('-o', '--out', default='-', help="CSV file to write; '-': stdout")
    args = parser.parse_args(argv)
    try:
        rows = round_trips(args.bag, args.topic)
    except ValueError as err:
        print(f'spotvlm trace-from-bag: {err}', file=sys.stderr)
        return 2
    if args.out == '-':
        write_trace_csv(rows, sys.stdout)
    else:
        with open(args.out, 'w', newline='', encoding='utf-8') as f:
            write_trace_csv(rows, f)
        ok = [d for _, d, s, _ in rows if s == 'ok']
        print(f'{args.out}: {len(rows)} round trips ({len(ok)} ok, '
              f'{sum(d is None for _, d, _, _ in rows)} timeouts)', file=sys.stderr)
    return 0
