"""The account a CalcJob is billed to, through ``aiida.engine.run`` on each job backend of the local server: its own
``account`` option, else the ``billing_account`` of its computer."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Any

import pytest
from aiida import orm
from aiida.engine import CalcJob, run_get_node

from aiida_firecrest.demo.steps import arithmetic_add

pytestmark = pytest.mark.local_server(reason='knows which accounts the local Slurm accepts')

NO_SUCH_ACCOUNT = 'no-such-account'
"""An account no Slurm knows: one that bills a job makes ``sbatch`` refuse it."""
ANY_ACCOUNT = 'proj-own'
"""An account for the ``local`` job backend, which knows no accounts."""


@pytest.fixture
def valid_account(job_backend: str) -> str:
    """An account that the user may bill: Slurm's default account of the user, any name for the ``local`` backend."""
    if job_backend != 'slurm':
        return ANY_ACCOUNT
    user = subprocess.run(['id', '-un'], capture_output=True, text=True, check=True).stdout.strip()
    answer = subprocess.run(
        ['sacctmgr', '-n', '-P', 'show', 'user', user, 'format=defaultaccount'],
        capture_output=True,
        text=True,
        check=True,
    )
    return answer.stdout.strip()


@pytest.fixture
def code_billed_to(
    server_config: dict[str, Any], firecrest_code: Callable[[dict[str, Any]], orm.InstalledCode]
) -> Callable[[str], orm.InstalledCode]:
    """A factory of codes on computers of the server under test whose ``billing_account`` is the one given."""

    def factory(billing_account: str) -> orm.InstalledCode:
        return firecrest_code({**server_config, 'billing_account': billing_account})

    return factory


def job_account(node: orm.ProcessNode) -> str:
    """The account that the job of a finished CalcJob was billed to, as FirecREST reported it."""
    assert isinstance(node, orm.CalcJobNode), f'{node} is not a CalcJob'
    detailed = node.get_detailed_job_info()
    assert detailed is not None, 'the CalcJob stored no detailed job info'
    return str(detailed['job']['account'])


def test_own_account_wins(code_billed_to: Callable[[str], orm.InstalledCode], valid_account: str) -> None:
    """A CalcJob with an ``account`` option is billed to it, not to the computer's billing account (which Slurm would
    refuse)."""
    step = arithmetic_add(code_billed_to(NO_SUCH_ACCOUNT))
    builder = step.builder()
    builder['metadata']['options']['account'] = valid_account
    _, node = run_get_node(builder)
    step.check(node)
    assert job_account(node) == valid_account


def test_billing_account_without_own(code_billed_to: Callable[[str], orm.InstalledCode], valid_account: str) -> None:
    step = arithmetic_add(code_billed_to(valid_account))
    _, node = run_get_node(step.builder())
    step.check(node)
    assert job_account(node) == valid_account


def test_billing_account_reaches_the_scheduler(
    code_billed_to: Callable[[str], orm.InstalledCode], job_backend: str
) -> None:
    """Without an ``account`` option the computer's billing account bills the job: Slurm refuses an unknown one."""
    step = arithmetic_add(code_billed_to(NO_SUCH_ACCOUNT))
    _, node = run_get_node(step.builder())
    if job_backend == 'slurm':
        assert node.exit_status == CalcJob.exit_codes.ERROR_SCHEDULER_INVALID_ACCOUNT.status
    else:
        step.check(node)
        assert job_account(node) == NO_SUCH_ACCOUNT
