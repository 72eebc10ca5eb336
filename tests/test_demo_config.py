"""``firecrest_demo.py --config FILE``: reading the file, counting a deployment's requests on the client side, and
finding the log files its transfer jobs leave there."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import click
import httpx
import pytest

from aiida_firecrest.client.firecrest_client import FirecrestClient
from aiida_firecrest.demo.run import CONFIG_KEYS, ClientRequestLog, TransferJobLogs, read_config
from tests.client_fakes import Auth, Budget

URL = 'https://firecrest.example/api/v2'
TOKEN_URI = 'https://firecrest.example/api/v2/auth/token'
CONFIG = {
    'url': URL,
    'token_uri': TOKEN_URI,
    'client_id': 'client',
    'client_secret': 'secret',
    'compute_resource': 'daint',
    'workdir': '/scratch/me/aiida',
}


def send(*urls: str) -> None:
    """Send a GET to each of ``urls`` through httpx (answered in-process with 200)."""
    with httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(200))) as client:
        for url in urls:
            client.get(url)


@pytest.mark.parametrize(
    ('url', 'endpoint'),
    [
        (f'{URL}/filesystem/daint/ops/ls?path=/scratch', 'GET /filesystem/{system_name}/ops/ls'),
        (f'{URL}/compute/daint/jobs/123456', 'GET /compute/{system_name}/jobs/{job_id}'),
        (f'{URL}/compute/daint/jobs', 'GET /compute/{system_name}/jobs'),
        (f'{URL}/status/systems', 'GET /status/systems'),
    ],
)
def test_client_request_log_counts_api_requests_by_route(url: str, endpoint: str) -> None:
    log = ClientRequestLog(URL, TOKEN_URI, 'daint')
    with log.installed():
        send(url)
    assert log.counts() == {endpoint: 1}


@pytest.mark.parametrize('url', [TOKEN_URI, 'https://s3.example/bucket/object?X-Amz-Signature=abc'])
def test_client_request_log_leaves_out_tokens_and_staging(url: str) -> None:
    log = ClientRequestLog(URL, TOKEN_URI, 'daint')
    with log.installed():
        send(url)
    assert not log.counts()


def test_client_request_log_counts_after_a_mark() -> None:
    log = ClientRequestLog(URL, TOKEN_URI, 'daint')
    with log.installed():
        send(f'{URL}/status/systems')
        mark = log.mark()
        send(f'{URL}/status/systems', f'{URL}/status/systems')
    assert log.counts(mark) == {'GET /status/systems': 2}


def test_client_request_log_stops_counting_when_removed() -> None:
    log = ClientRequestLog(URL, TOKEN_URI, 'daint')
    with log.installed():
        pass
    send(f'{URL}/status/systems')
    assert not log.counts()


def test_read_config_reads_the_serve_file(tmp_path: Path) -> None:
    path = tmp_path / 'cfg.json'
    path.write_text(json.dumps({**CONFIG, 'billing_account': None}))
    assert read_config(path) == {**CONFIG, 'billing_account': None}


@pytest.mark.parametrize('key', CONFIG_KEYS)
def test_read_config_names_a_missing_key(tmp_path: Path, key: str) -> None:
    path = tmp_path / 'cfg.json'
    path.write_text(json.dumps({name: value for name, value in CONFIG.items() if name != key}))
    with pytest.raises(click.BadParameter, match=f'lacks {key}'):
        read_config(path)


def test_read_config_refuses_what_is_not_json(tmp_path: Path) -> None:
    path = tmp_path / 'cfg.json'
    path.write_text('url: https://firecrest.example')
    with pytest.raises(click.BadParameter, match='cannot read'):
        read_config(path)


OUTPUT_LOG = '/home/me/.f7t_file_handling_job_1.log'
ERROR_LOG = '/home/me/.f7t_file_handling_job_error_1.log'


def answer(request: httpx.Request) -> httpx.Response:
    """A transfer job for ``mv``, an empty listing for ``ls``."""
    if request.url.path.endswith('/transfer/mv'):
        job = {'jobId': 1, 'system': 'daint', 'logs': {'outputLog': OUTPUT_LOG, 'errorLog': ERROR_LOG}}
        return httpx.Response(201, json={'transferJob': job})
    return httpx.Response(200, json={'output': []})


@pytest.fixture
async def client() -> Any:
    firecrest = FirecrestClient(
        URL,
        Auth(),
        budget=Budget(),
        timeout=5.0,
        verify=False,
        http_transport=httpx.MockTransport(answer),
        rng=random.Random(1),
    )
    yield firecrest
    await firecrest.close_session()


async def test_transfer_job_logs_are_recorded(client: FirecrestClient) -> None:
    with TransferJobLogs().installed() as logs:
        await client.mv('daint', '/home/me/a', '/home/me/b', blocking=False)
        await client.list_files('daint', '/home/me')
    assert logs.paths == [OUTPUT_LOG, ERROR_LOG]


async def test_transfer_job_logs_stop_recording_when_removed(client: FirecrestClient) -> None:
    logs = TransferJobLogs()
    with logs.installed():
        pass
    await client.mv('daint', '/home/me/a', '/home/me/b', blocking=False)
    assert logs.paths == []
