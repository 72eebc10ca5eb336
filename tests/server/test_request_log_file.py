"""``serve --request-log FILE``: the request log written as JSON lines, for benchmarks in other processes."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from aiida_firecrest.server.cli import follow_request_log
from aiida_firecrest.server.middleware import RequestLog, RequestRecord

RECORDS = [
    RequestRecord('POST', '/auth/token', '/auth/token', 200, 0.01, 1000.0),
    RequestRecord('GET', '/status/systems', '/status/systems', 200, 0.02, 1000.5, 'client'),
    RequestRecord('GET', '/compute/cluster/jobs', '/compute/{system_name}/jobs', 429, 0.001, 1000.7, 'client'),
]
WAIT_TIMEOUT = 5.0


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_every_record_is_one_line_with_its_fields_and_time(tmp_path: Path) -> None:
    log, path, stop = RequestLog(), tmp_path / 'requests.jsonl', threading.Event()
    for record in RECORDS:
        log.append(record)
    before = time.time()
    stop.set()
    follow_request_log(log, path, stop)
    lines = read_lines(path)
    assert [{key: line[key] for key in line if key != 'time'} for line in lines] == [
        dataclasses.asdict(record) for record in RECORDS
    ]
    assert all(line['time'] >= before for line in lines)


@pytest.mark.parametrize('count', [1, 3])
def test_lines_are_written_while_the_server_runs(tmp_path: Path, count: int) -> None:
    log, path, stop = RequestLog(), tmp_path / 'requests.jsonl', threading.Event()
    thread = threading.Thread(target=follow_request_log, args=(log, path, stop))
    thread.start()
    try:
        for record in RECORDS[:count]:
            log.append(record)
        deadline = time.monotonic() + WAIT_TIMEOUT
        while len(read_lines(path)) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [line['path'] for line in read_lines(path)] == [record.path for record in RECORDS[:count]]
    finally:
        stop.set()
        thread.join()
