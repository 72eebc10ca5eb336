"""The client secret appears nowhere but in its private file: not in the database, the logs, aiida-core's pid files,
exception messages or reprs, whatever the way it was given or the way it failed."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
import yaml

from aiida_firecrest.client.client_credentials import check_client_secret_source, read_client_secret
from aiida_firecrest.client.exceptions import FirecrestConfigurationError


def _configure(label: str, arguments: list[str]) -> Any:
    from aiida.cmdline.commands.cmd_computer import computer_configure
    from click.testing import CliRunner

    return CliRunner().invoke(computer_configure, ['firecrest', label, '--non-interactive', *arguments])


def capture_every_record(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """Capture every log record at DEBUG, AiiDA's too: once a profile is loaded, AiiDA's logger (where the plugin
    logs) does not propagate to the root logger that ``caplog`` listens to."""
    from aiida.common.log import AIIDA_LOGGER

    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger=AIIDA_LOGGER.name)
    if caplog.handler not in AIIDA_LOGGER.handlers:
        monkeypatch.setattr(AIIDA_LOGGER, 'handlers', [*AIIDA_LOGGER.handlers, caplog.handler])


def _options(config: dict[str, Any], secret: str) -> dict[str, Any]:
    keys = ('url', 'token_uri', 'client_id', 'compute_resource', 'temp_directory')
    return {**{key: config[key] for key in keys}, 'client_secret': secret}


def database_text() -> str:
    """Every value of every row of every table of the profile's storage, as text (in full: the ``str`` of a row
    shortens long values)."""
    from aiida.manage import get_manager
    from aiida.storage.psql_dos import PsqlDosBackend

    storage = get_manager().get_profile_storage()
    assert isinstance(storage, PsqlDosBackend), f'the profile has no SQL database: {type(storage).__name__}'
    session = storage.get_session()
    tables = sqlalchemy.inspect(session.bind).get_table_names()
    rows = (row for table in tables for row in session.execute(sqlalchemy.text(f'SELECT * FROM {table}')))
    return '\n'.join('\t'.join(str(value) for value in row) for row in rows)


def aiida_files_text() -> str:
    """The files of the AiiDA configuration folder (pid files of ``access/``, logs, the configuration), but the
    private files that hold secrets on purpose."""
    from aiida.manage.configuration.settings import AiiDAConfigDir

    root = Path(AiiDAConfigDir.get())
    files = [path for path in root.rglob('*') if path.is_file() and not path.name.startswith('client-secret-')]
    return '\n'.join(path.read_text(errors='replace') for path in files)


@pytest.mark.parametrize('prefix', ['', '/'], ids=['secret', 'secret-starting-with-a-slash'])
def test_secret_appears_nowhere(
    aiida_computer: Any,
    firecrest_config: dict[str, Any],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The secret on the command line (refused), in a ``--config`` file (stored in a private file; with a leading
    ``/`` refused as a missing file), refused by the checks, and used to open a transport and fetch a token."""
    capture_every_record(caplog, monkeypatch)
    secret = prefix + str(firecrest_config['client_secret'])
    label = f'secrets-{"slash" if prefix else "plain"}'
    computer = aiida_computer(label=label, transport_type='firecrest', scheduler_type='core.direct')
    seen: list[str] = []

    on_command_line = _configure(computer.label, [f'--client-secret={secret}'])
    seen += [on_command_line.output, repr(on_command_line.exception)]

    config_file = tmp_path / 'computer.yml'
    config_file.write_text(yaml.safe_dump(_options(firecrest_config, secret)))
    from_file = _configure(computer.label, [f'--config={config_file}'])
    seen += [from_file.output, repr(from_file.exception)]

    for refused in (lambda: check_client_secret_source(secret), lambda: read_client_secret(secret)):
        with pytest.raises(FirecrestConfigurationError) as info:
            refused()
        seen += [str(info.value), repr(info.value)]

    assert on_command_line.exit_code != 0
    if prefix:
        assert from_file.exit_code != 0
    else:
        assert from_file.exit_code == 0, from_file.output
        transport = computer.get_transport()
        seen.append(repr(transport))
        with transport:
            assert transport.whoami()

    seen += [database_text(), aiida_files_text(), caplog.text]
    assert [text for text in seen if secret in text] == []
