"""Fixtures of the end-to-end tests: an AiiDA computer with the ``firecrest`` transport and scheduler, and its code."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiida import orm

from aiida_firecrest.server.cli import write_private_text
from tests.remote_files import RemoteFiles

POLL_INTERVAL = 1
"""The computer's minimum job poll interval in the tests, in seconds."""


@pytest.fixture
def firecrest_code(
    aiida_computer: Callable[..., orm.Computer], tmp_path_factory: pytest.TempPathFactory, remote_files: RemoteFiles
) -> Iterator[Callable[[dict[str, Any]], orm.InstalledCode]]:
    """A factory: ``firecrest_code(client_config)`` sets up and configures a ``firecrest`` computer for the server
    that ``client_config`` describes (the keys of ``serve --config-out``) and returns a ``/bin/bash`` code on it.

    Each computer's work directory (a fresh one inside the server's) is removed afterwards, with what the CalcJobs left.
    """
    workdirs: list[str] = []

    def factory(client_config: dict[str, Any]) -> orm.InstalledCode:
        secret_file = tmp_path_factory.mktemp('secret') / 'client-secret'
        write_private_text(secret_file, client_config['client_secret'])
        computer = aiida_computer(
            label=f'firecrest-{uuid.uuid4().hex[:8]}',
            scheduler_type='firecrest',
            transport_type='firecrest',
            minimum_job_poll_interval=POLL_INTERVAL,
        )
        workdirs.append(f'{client_config["workdir"]}/aiida-{uuid.uuid4().hex[:8]}')
        computer.set_workdir(workdirs[-1])
        computer.configure(
            url=client_config['url'],
            token_uri=client_config['token_uri'],
            client_id=client_config['client_id'],
            client_secret=str(Path(secret_file)),
            compute_resource=client_config['compute_resource'],
            temp_directory=client_config['temp_directory'],
            billing_account=client_config.get('billing_account') or '',
        )
        return orm.InstalledCode(
            label='bash',
            computer=computer,
            filepath_executable='/bin/bash',
            default_calc_job_plugin='core.arithmetic.add',
        ).store()

    yield factory
    for workdir in workdirs:
        remote_files.remove(remote_files.path(workdir))


@pytest.fixture
def verdi(aiida_config: Any, aiida_profile: Any) -> Callable[..., subprocess.CompletedProcess[str]]:
    """A function that runs ``verdi`` in a subprocess on the test profile and returns its completed process."""
    executable = shutil.which('verdi', path=os.path.dirname(sys.executable)) or shutil.which('verdi')
    assert executable is not None, 'verdi is not installed beside the interpreter'
    environment = {**os.environ, 'AIIDA_PATH': aiida_config.dirpath}

    def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [executable, '-p', aiida_profile.name, *args],
            capture_output=True,
            text=True,
            env=environment,
            timeout=timeout,
            check=False,
        )

    return run
