"""A plugin's test that runs a CalcJob over the ``firecrest`` transport and scheduler, on the local FirecREST server.

Needs ``pip install 'aiida-firecrest[server]' pytest``; run with ``pytest test_with_local_firecrest.py``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiida import orm
from aiida.calculations.arithmetic.add import ArithmeticAddCalculation
from aiida.engine import run_get_node

from aiida_firecrest.server import LocalFirecrest, ServerSettings
from aiida_firecrest.server.cli import write_private_text

pytest_plugins = ['aiida.tools.pytest_fixtures']


@pytest.fixture(scope='session')
def firecrest_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFirecrest]:
    """A local FirecREST v2 server for the whole session: jobs run as local processes, files in a temporary folder."""
    with LocalFirecrest(ServerSettings(roots=[tmp_path_factory.mktemp('cluster')])) as server:
        yield server


@pytest.fixture
def firecrest_computer(
    aiida_computer: Callable[..., orm.Computer], firecrest_server: LocalFirecrest, tmp_path: Path
) -> orm.Computer:
    """An AiiDA computer on the local server, configured as `verdi computer configure firecrest` would."""
    config = firecrest_server.client_config()
    secret_file = tmp_path / 'client-secret'
    write_private_text(secret_file, config['client_secret'])  # mode 600, as the transport requires
    computer = aiida_computer(
        label=f'firecrest-{uuid.uuid4().hex[:8]}', scheduler_type='firecrest', transport_type='firecrest'
    )
    computer.set_workdir(config['workdir'])
    computer.configure(
        url=config['url'],
        token_uri=config['token_uri'],
        client_id=config['client_id'],
        client_secret=str(secret_file),
        compute_resource=config['compute_resource'],
        temp_directory=config['temp_directory'],
    )
    return computer


def test_arithmetic_add(firecrest_computer: orm.Computer, firecrest_server: LocalFirecrest) -> None:
    """The CalcJob runs on the server, and takes a known number of requests."""
    code = orm.InstalledCode(computer=firecrest_computer, filepath_executable='/bin/bash').store()
    builder = ArithmeticAddCalculation.get_builder()
    builder.code, builder.x, builder.y = code, orm.Int(4), orm.Int(5)
    mark = firecrest_server.request_log.mark()

    results, node = run_get_node(builder)

    assert node.is_finished_ok, node.exit_message
    assert results['sum'].value == 9
    requests = firecrest_server.request_log.counts(mark)
    assert requests['POST /compute/{system_name}/jobs'] == 1
