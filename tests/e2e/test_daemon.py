"""CalcJobs through the AiiDA daemon with a real RabbitMQ: many at once, and a kill that reaches the cluster."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from aiida import orm
from aiida.engine import ProcessState, submit

from aiida_firecrest.demo.calculations import ScriptCalculation
from aiida_firecrest.demo.steps import arithmetic_add
from tests.conftest import make_sync_client

pytestmark = pytest.mark.daemon

CALCJOBS = 20


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` every half second until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f'timed out after {timeout} s waiting for {what}')
        time.sleep(0.5)


@pytest.fixture
def code(
    broker_profile: Any,
    server_config: dict[str, Any],
    firecrest_code: Callable[[dict[str, Any]], orm.InstalledCode],
) -> orm.InstalledCode:
    """A code on the server under test with each job backend, in a profile with RabbitMQ."""
    return firecrest_code(server_config)


def test_many_calcjobs_at_once(code: orm.InstalledCode, started_daemon_client: Any):
    """20 CalcJobs submitted at once to the daemon all finish with exit status 0."""
    nodes = [submit(arithmetic_add(code, index, 1).builder()) for index in range(CALCJOBS)]
    wait_for(lambda: all(node.is_terminated for node in nodes), timeout=600, what=f'{CALCJOBS} CalcJobs to end')
    assert [node.exit_status for node in nodes] == [0] * CALCJOBS
    assert [node.outputs.sum.value for node in nodes] == [index + 1 for index in range(CALCJOBS)]


def test_kill_cancels_the_job(
    code: orm.InstalledCode, server_config: dict[str, Any], started_daemon_client: Any, verdi: Any
):
    """``verdi process kill`` of a CalcJob whose job runs cancels the job on the cluster."""
    builder: Any = ScriptCalculation.get_builder()
    builder.code = code
    builder.script = orm.Str('sleep 600\n')
    node = submit(builder)
    wait_for(lambda: node.get_job_id() is not None, timeout=120, what='the job to be submitted')
    job_id = node.get_job_id()

    killed = verdi('process', 'kill', str(node.pk))
    assert killed.returncode == 0, killed.stdout + killed.stderr

    wait_for(lambda: node.is_terminated, timeout=120, what='the CalcJob to be killed')
    assert node.process_state == ProcessState.KILLED
    config = server_config
    client = make_sync_client(config)

    def job_state() -> str:
        return client.job_info(config['compute_resource'], job_id)[0]['status']['state']

    wait_for(lambda: job_state().startswith('CANCELLED'), timeout=60, what=f'job {job_id} to be cancelled')
