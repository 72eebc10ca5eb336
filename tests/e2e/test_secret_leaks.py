"""The client secret appears nowhere but in its private file after a user's whole way, as the documentation shows it:
``verdi computer configure firecrest`` in subprocesses (the secret refused on the command line, typed at the hidden
prompt, in a ``--config`` file, in a file named by its path, in ``env:VARNAME``), ``verdi computer test``, then a
CalcJob with every logger at DEBUG. Looked for: the database, every file of the AiiDA folder (aiida-core's
``access/<profile>/<pid>.pid`` files, which keep each command line, and the logs), what the commands printed, the log
records, and the ``str`` and ``repr`` of the transport, its client and its credentials."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiida import orm
from aiida.engine import run_get_node, submit

from aiida_firecrest.client.client_credentials import shared_auth
from aiida_firecrest.demo.steps import arithmetic_add
from aiida_firecrest.server.cli import write_private_text
from tests.transport.test_secrets import aiida_files_text, capture_every_record, database_text

SECRET_VARIABLE = 'AIIDA_FIRECREST_LEAK_TEST_SECRET'
CONNECTION = ('url', 'token_uri', 'client_id', 'compute_resource', 'temp_directory')


def verdi(
    config: Any, profile: Any, *args: str, input: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``verdi -p PROFILE ARGS`` in a subprocess, as a user would (``input`` typed at its prompts)."""
    return run_command(config, 'verdi', '-p', profile.name, *args, input=input, env=env)


def run_command(
    config: Any, command: str, *args: str, input: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the command installed beside the interpreter in a subprocess on the AiiDA folder of ``config``."""
    executable = shutil.which(command, path=os.path.dirname(sys.executable))
    assert executable is not None, f'{command} is not installed beside the interpreter'
    environment = {**os.environ, 'AIIDA_PATH': config.dirpath, **(env or {})}
    return subprocess.run(
        [executable, *args],
        input=input,
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
        check=False,
    )


def plugin_records(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The names of the loggers of the plugin that recorded something (to show that the capture saw them)."""
    return sorted({record.name for record in caplog.records if record.name.startswith('aiida.transport.Firecrest')})


def test_secret_appears_nowhere_after_the_documented_commands_and_a_calcjob(
    firecrest_computer: Any,
    firecrest_config: dict[str, Any],
    aiida_config: Any,
    aiida_profile: Any,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = str(firecrest_config['client_secret'])
    computer = firecrest_computer()
    configure = ('computer', 'configure', 'firecrest', computer.label)
    options = [f'--{name.replace("_", "-")}={firecrest_config[name]}' for name in CONNECTION]
    secret_file = tmp_path / 'client-secret'
    write_private_text(secret_file, secret)
    config_file = tmp_path / 'computer.yml'
    config_file.write_text(
        yaml.safe_dump({**{name: firecrest_config[name] for name in CONNECTION}, 'client_secret': secret})
    )
    with_variable = {SECRET_VARIABLE: secret}

    refused = [
        verdi(aiida_config, aiida_profile, *configure, '--non-interactive', *options, f'--client-secret={secret}'),
        verdi(aiida_config, aiida_profile, *configure, f'--client-secret={secret}', '--non-interactive', *options),
    ]
    accepted = [
        verdi(aiida_config, aiida_profile, *configure, *options, input=f'{secret}\n' + '\n' * 20),
        verdi(aiida_config, aiida_profile, *configure, '--non-interactive', f'--config={config_file}'),
        verdi(aiida_config, aiida_profile, *configure, '--non-interactive', *options, f'--client-secret={secret_file}'),
        verdi(
            aiida_config, aiida_profile, *configure, '--non-interactive', *options,
            f'--client-secret=env:{SECRET_VARIABLE}', env=with_variable,
        ),
        verdi(aiida_config, aiida_profile, 'computer', 'test', computer.label, env=with_variable),
    ]  # fmt: skip
    assert [result.returncode for result in refused] == [2, 2]
    assert [result.returncode for result in accepted] == [0] * len(accepted), [r.stderr for r in accepted]
    assert 'Client secret' in accepted[0].stdout, 'the secret was typed at the prompt'

    monkeypatch.setenv(SECRET_VARIABLE, secret)
    capture_every_record(caplog, monkeypatch)
    code = orm.InstalledCode(label='bash', computer=computer, filepath_executable='/bin/bash').store()
    step = arithmetic_add(code)
    _, node = run_get_node(step.builder())
    step.check(node)
    transport = computer.get_transport()
    with transport:
        transport.whoami()
        objects = [
            transport,
            transport.client,
            shared_auth(firecrest_config['token_uri'], firecrest_config['client_id']),
        ]

    assert plugin_records(caplog), 'the plugin logged and the capture saw it'
    pid_files = list(Path(aiida_config.dirpath).rglob('access/*/*.pid'))
    assert sum('configure' in path.read_text() for path in pid_files) >= 3, 'the commands left their pid files'
    seen = {
        'command output': '\n'.join(result.stdout + result.stderr for result in [*refused, *accepted]),
        'database': database_text(),
        'AiiDA folder': aiida_files_text(),
        'log records': caplog.text,
        'str and repr': '\n'.join(text for thing in objects for text in (str(thing), repr(thing))),
    }
    assert f'env:{SECRET_VARIABLE}' in seen['database'], "the computer's AuthInfo was looked at"
    assert [where for where, text in seen.items() if secret in text] == []


def test_secret_given_to_the_migrate_command_is_refused_before_it_is_kept(
    aiida_computer: Any, aiida_config: Any, aiida_profile: Any
) -> None:
    """``aiida-firecrest migrate --client-secret`` refuses the secret itself before the profile is loaded: aiida-core
    writes the command line of every process that loads it to ``access/<profile>/<pid>.pid``."""
    secret = 'a-secret-typed-where-a-file-was-asked'
    computer = aiida_computer(label='secret-migrate', transport_type='firecrest', scheduler_type='core.direct')
    refused = run_command(
        aiida_config, 'aiida-firecrest', 'migrate', '-p', aiida_profile.name, '--client-secret', secret, computer.label
    )
    assert refused.returncode == 2, refused.stderr
    assert 'env:VARNAME' in refused.stderr
    assert secret not in refused.stdout + refused.stderr + aiida_files_text()


@pytest.mark.daemon
def test_secret_appears_nowhere_after_a_calcjob_through_the_daemon(
    broker_profile: Any, firecrest_code: Any, firecrest_config: dict[str, Any], started_daemon_client: Any
) -> None:
    """The daemon's workers open the transport and fetch tokens: nothing of the secret in the database or the AiiDA
    folder (the daemon's log, its circus files) afterwards."""
    secret = str(firecrest_config['client_secret'])
    code = firecrest_code(firecrest_config)
    step = arithmetic_add(code)
    node = submit(step.builder())
    deadline = time.monotonic() + 300
    while not node.is_terminated and time.monotonic() < deadline:
        time.sleep(0.5)
    step.check(node)
    assert Path(started_daemon_client.daemon_log_file).is_file()
    assert secret not in database_text() + aiida_files_text()
