"""A plugin's test of its CalcJob over the ``firecrest`` transport and scheduler, with the fixtures of aiida-firecrest's
pytest plugin and AiiDA's alone.

Beside the ``conftest.py`` of this directory, ``pytest`` runs it on the local FirecREST server (started once per
session; needs ``pip install 'aiida-firecrest[server]'``), and ``pytest --firecrest-config cfg.json`` on the deployment
that ``cfg.json`` describes, where the request count, which needs the local server's log, skips.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiida import orm
from aiida.calculations.arithmetic.add import ArithmeticAddCalculation  # your plugin's CalcJob
from aiida.engine import run_get_node

if TYPE_CHECKING:
    from aiida_firecrest.server import LocalFirecrest  # the `server` extra, needed by the local server alone

MAX_REQUESTS = 25
"""The FirecREST requests that one such CalcJob may take, token requests aside: this plugin's own budget (about 15,
depending on how many times the engine polls the job)."""


def run_calcjob(code: orm.InstalledCode) -> tuple[dict[str, Any], orm.ProcessNode]:
    """Run the CalcJob with ``code`` through the engine, as a user of the plugin would; return its outputs and node."""
    builder = ArithmeticAddCalculation.get_builder()
    builder.code = code
    builder.x = orm.Int(4)
    builder.y = orm.Int(5)
    return run_get_node(builder)


def test_calcjob(firecrest_computer: Callable[..., orm.Computer], aiida_code_installed: Callable[..., Any]) -> None:
    """The CalcJob runs on the server under test and its parser gives the expected output."""
    code = aiida_code_installed(computer=firecrest_computer(), filepath_executable='/bin/bash')

    results, node = run_calcjob(code)

    assert node.is_finished_ok, node.exit_message
    assert results['sum'].value == 9


def test_calcjob_requests(
    firecrest_computer: Callable[..., orm.Computer],
    aiida_code_installed: Callable[..., Any],
    firecrest_server: LocalFirecrest,
) -> None:
    """The CalcJob submits one job and stays within its request budget, as counted by the local server."""
    code = aiida_code_installed(computer=firecrest_computer(), filepath_executable='/bin/bash')
    mark = firecrest_server.request_log.mark()

    _, node = run_calcjob(code)

    assert node.is_finished_ok, node.exit_message
    requests = firecrest_server.request_log.counts(mark)
    assert requests['POST /compute/{system_name}/jobs'] == 1
    assert sum(requests.values()) <= MAX_REQUESTS, requests
