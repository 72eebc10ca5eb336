"""The plugin logs through AiiDA's logger: its records reach the handlers and levels AiiDA configures (the daemon log,
``verdi config set logging.aiida_loglevel``), not loggers of their own that nothing configures."""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from types import ModuleType

import httpx
import pytest
from aiida.common.log import AIIDA_LOGGER

from aiida_firecrest.client import client_credentials, firecrest_client
from aiida_firecrest.client.firecrest_client import FirecrestClient
from aiida_firecrest.client.retry_policy import Backoff
from aiida_firecrest.scheduler import job_submission
from aiida_firecrest.transport import archive_routes, backend
from tests.client_fakes import Auth, Budget

MODULES = [firecrest_client, client_credentials, backend, archive_routes, job_submission]


class Records(logging.Handler):
    """Keeps the records that reach it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def aiida_records() -> Iterator[Records]:
    """The records reaching AiiDA's logger (at DEBUG, for the test)."""
    handler = Records()
    level = AIIDA_LOGGER.level
    AIIDA_LOGGER.addHandler(handler)
    AIIDA_LOGGER.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        AIIDA_LOGGER.removeHandler(handler)
        AIIDA_LOGGER.setLevel(level)


@pytest.mark.parametrize('module', MODULES, ids=[module.__name__ for module in MODULES])
def test_module_logger_is_below_aiida_logger(module: ModuleType, aiida_records: Records) -> None:
    logger: logging.Logger = module.LOGGER
    assert logger.name.startswith(f'{AIIDA_LOGGER.name}.')
    logger.warning('a record of %s', module.__name__)
    assert [record.getMessage() for record in aiida_records.records] == [f'a record of {module.__name__}']


async def test_repeated_request_is_logged_to_aiida(aiida_records: Records) -> None:
    """A request repeated after a 503 says so on the transport's logger, below AiiDA's."""
    answers = iter([httpx.Response(503), httpx.Response(200, json={'output': []})])
    client = FirecrestClient(
        'https://firecrest.test',
        Auth(),
        budget=Budget(),
        timeout=5.0,
        verify=False,
        http_transport=httpx.MockTransport(lambda request: next(answers)),
        backoff=Backoff(attempts=1, base=0.001, cap=0.001),
        rng=random.Random(1),
    )
    try:
        await client.list_files('cluster', '/home')
    finally:
        await client.close_session()
    (record,) = aiida_records.records
    assert record.name == 'aiida.transport.FirecrestTransport.client'
    assert record.levelno == logging.DEBUG
    assert record.getMessage().startswith('repeating GET /filesystem/cluster/ops/ls after HTTP 503')
