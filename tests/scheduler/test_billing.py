"""Which account a CalcJob is billed to: its own ``account`` option, else the computer's ``billing_account``.

The batch script says it (``#SBATCH --account``), written when the engine prepares the CalcJob; the submission names
no account, so nothing overrides the script's (FirecREST passes a submitted account to ``sbatch --account``). The
scripts are checked with dry runs through the engine; what Slurm (and the local job backend) make of them, with jobs.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_firecrest.demo.calculations import ScriptCalculation
from aiida_firecrest.scheduler import FirecrestScheduler
from tests.remote_files import RemotePath
from tests.scheduler.test_scheduler_server import done, submit

BILLING = 'proj-billing'
OWN = 'proj-own'
CUSTOM = 'proj-custom'
NO_SUCH_ACCOUNT = 'no-such-account'


@pytest.fixture
def firecrest_computer(
    aiida_computer: Callable[..., orm.Computer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[[str | None], orm.Computer]:
    """A factory of ``firecrest`` computers configured with a given billing account, or not configured (None).

    They are never contacted: the tests make dry runs, which write into ``submit_test`` of the current directory, here
    a temporary one."""
    monkeypatch.chdir(tmp_path)

    def factory(billing_account: str | None) -> orm.Computer:
        computer = aiida_computer(
            label=f'billing-{uuid.uuid4().hex[:8]}',
            scheduler_type='firecrest',
            transport_type='firecrest',
        )
        if billing_account is None:  # not configured for the user: no AuthInfo
            return computer
        computer.configure(
            url='https://firecrest.invalid',
            token_uri='https://auth.invalid/token',
            client_id='client',
            client_secret='/nonexistent/secret',
            compute_resource='cluster',
            billing_account=billing_account,
        )
        return computer

    return factory


def dry_run_script(computer: orm.Computer, **options: Any) -> list[str]:
    """Prepare a ``firecrest.script`` CalcJob on ``computer`` with ``options`` as a dry run; return its script's
    ``#SBATCH`` lines."""
    code = orm.InstalledCode(computer=computer, filepath_executable='/bin/bash').store()
    builder: Any = ScriptCalculation.get_builder()
    builder.code = code
    builder.script = orm.Str('true')
    builder.metadata.dry_run = True
    for name, value in options.items():
        builder.metadata.options[name] = value
    _, node = run_get_node(builder)
    info: Any = node.dry_run_info
    script = Path(info['folder']) / info['script_filename']
    return [line for line in script.read_text().splitlines() if line.startswith('#SBATCH')]


def account_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith(('#SBATCH --account', '#SBATCH -A'))]


@pytest.mark.parametrize(
    ('billing_account', 'options', 'expected'),
    [
        (BILLING, {}, [f'#SBATCH --account={BILLING}']),
        (BILLING, {'account': OWN}, [f'#SBATCH --account={OWN}']),
        ('', {'account': OWN}, [f'#SBATCH --account={OWN}']),
        ('', {}, []),
        (None, {}, []),
        # sbatch takes the last of repeated options: the custom command's account wins
        (
            BILLING,
            {'custom_scheduler_commands': f'#SBATCH --account={CUSTOM}'},
            [f'#SBATCH --account={BILLING}', f'#SBATCH --account={CUSTOM}'],
        ),
    ],
    ids=['billing-account', 'own-account-wins', 'own-account', 'none', 'not-configured', 'custom-account-last'],
)
def test_account_in_script(
    firecrest_computer: Callable[[str | None], orm.Computer],
    billing_account: str | None,
    options: dict[str, Any],
    expected: list[str],
) -> None:
    assert account_lines(dry_run_script(firecrest_computer(billing_account), **options)) == expected


def test_header_outside_a_calcjob_names_no_billing_account() -> None:
    """Without a CalcJob being prepared there is no computer to take a billing account from."""
    from tests.scheduler.test_script import make_template

    assert '--account' not in FirecrestScheduler()._get_submit_script_header(make_template())


@pytest.fixture
def bogus_billing_scheduler(aiida_profile: Any, transport_params: dict[str, Any]) -> Iterator[FirecrestScheduler]:
    """A FirecREST scheduler whose transport's billing account is one that no Slurm knows."""
    from aiida_firecrest.transport import FirecrestTransport

    with FirecrestTransport(**{**transport_params, 'billing_account': NO_SUCH_ACCOUNT}) as transport:
        scheduler = FirecrestScheduler()
        scheduler.set_transport(transport)
        yield scheduler


@pytest.fixture
def valid_account(bogus_billing_scheduler: FirecrestScheduler, scheduler_workdir: RemotePath) -> str:
    """An account the server's user may bill: the one a job submitted without an account gets (the user's default
    account of Slurm); any name for a job backend that knows no accounts."""
    job_id = submit(bogus_billing_scheduler, scheduler_workdir, 'true', name='default-account')
    return done(bogus_billing_scheduler, job_id).account or OWN


def test_script_account_is_the_jobs(
    bogus_billing_scheduler: FirecrestScheduler, scheduler_workdir: RemotePath, valid_account: str
) -> None:
    """The job is billed to its script's account, not to the transport's billing account: no account goes with the
    submission (Slurm would refuse the bogus one)."""
    job_id = submit(bogus_billing_scheduler, scheduler_workdir, 'true', name='billed', account=valid_account)
    assert done(bogus_billing_scheduler, job_id).account == valid_account


def test_last_account_line_wins(
    bogus_billing_scheduler: FirecrestScheduler, scheduler_workdir: RemotePath, valid_account: str
) -> None:
    """Of two ``#SBATCH --account`` lines (the billing account, then a custom command's), the last one bills: Slurm
    would refuse the first."""
    job_id = submit(
        bogus_billing_scheduler,
        scheduler_workdir,
        'true',
        name='twice',
        account=NO_SUCH_ACCOUNT,
        custom_scheduler_commands=f'#SBATCH --account={valid_account}',
    )
    assert done(bogus_billing_scheduler, job_id).account == valid_account
