"""The soak of ``benchmarks/soak.py`` at a reduced size: CalcJobs through the daemon under every fault and a restart."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiida import orm

from aiida_firecrest.demo.soak import every_fault, run_soak, soak_server_settings
from aiida_firecrest.server import LocalFirecrest

pytestmark = [pytest.mark.daemon, pytest.mark.local_server(reason='injects faults into a local server and restarts it')]

CALCJOBS = 4
FAULT_RATE = 0.1
WORKERS = 2
TIMEOUT = 200.0
"""Seconds the CalcJobs may take to end (about a minute on a busy two-core machine)."""
DAEMON_TIMEOUT = 60
"""Seconds the daemon may take to answer (its default, a few seconds, is too short on a busy machine)."""
SHORT_FAULTS = {'delay': 1.0, 'job_invisible': 2.0, 'restart_downtime': 1.0}
"""Every fault kind lasts less than in the soak of the script, to keep the test short."""


@pytest.fixture
def soak_server(tmp_path: Path) -> Iterator[LocalFirecrest]:
    """A local server of the test's own (the soak restarts it: the session's server must keep its tokens)."""
    with LocalFirecrest(soak_server_settings(tmp_path)) as server:
        yield server


@pytest.fixture
def workers(started_daemon_client: Any) -> Iterator[int]:
    """The daemon with :data:`WORKERS` workers during the test."""
    added = WORKERS - started_daemon_client.get_number_of_workers(timeout=DAEMON_TIMEOUT)
    if added > 0:
        started_daemon_client.increase_workers(added, timeout=DAEMON_TIMEOUT, wait=True)
    yield WORKERS
    if added > 0:
        started_daemon_client.decrease_workers(added, timeout=DAEMON_TIMEOUT, wait=True)


def test_soak(
    broker_profile: Any,
    soak_server: LocalFirecrest,
    firecrest_code: Callable[[dict[str, Any]], orm.InstalledCode],
    workers: int,
) -> None:
    """Every CalcJob finishes OK with the right sum and one job on the server, though every fault kind hits 10 % of
    the requests and the server restarts halfway (its tokens revoked)."""
    code = firecrest_code(soak_server.client_config())
    faults = every_fault(FAULT_RATE, seed=0, **SHORT_FAULTS)
    result = run_soak(soak_server, code, CALCJOBS, faults, timeout=TIMEOUT)
    table = '\n'.join(' | '.join(row) for row in result.rows())
    assert result.violations(expect_all_ok=True) == [], '\n'.join([table, *result.reports])
    assert (result.final.count('finished OK'), result.jobs_on_server, result.restarts) == (CALCJOBS, CALCJOBS, 1), table
