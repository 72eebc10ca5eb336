"""``verdi computer setup``, ``configure firecrest`` and ``test`` in subprocesses, as a user runs them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiida import orm

from aiida_firecrest.server.cli import write_private_json


def test_verdi_computer_test_passes(
    firecrest_code: Callable[[dict[str, Any]], orm.InstalledCode], firecrest_config: dict[str, Any], verdi: Any
) -> None:
    """``verdi computer test`` passes every check; the command FirecREST has no counterpart for is skipped."""
    computer = firecrest_code(firecrest_config).computer
    result = verdi('computer', 'test', computer.label)
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'Success: all 6 tests succeeded' in result.stdout
    assert 'Skipped, remote command execution is not implemented' in result.stdout


def test_setup_and_configure_from_serve_config(firecrest_config: dict[str, Any], tmp_path: Path, verdi: Any) -> None:
    """``verdi computer setup`` and ``configure firecrest --config`` with the file of ``serve --config-out`` give a
    working computer, and the client secret in that file ends up in a private file, not in the database."""
    config_file = tmp_path / 'cfg.json'
    write_private_json(config_file, firecrest_config)
    label = f'firecrest-{uuid.uuid4().hex[:8]}'
    setup = verdi(
        'computer', 'setup', '--non-interactive', '--label', label, '--hostname', 'localhost',
        '--transport', 'firecrest', '--scheduler', 'firecrest', '--work-dir', firecrest_config['workdir'],
    )  # fmt: skip
    assert setup.returncode == 0, setup.stdout + setup.stderr
    configure = verdi('computer', 'configure', 'firecrest', label, '--non-interactive', '--config', str(config_file))
    assert configure.returncode == 0, configure.stdout + configure.stderr

    user = orm.User.collection.get_default()
    assert user is not None, 'the profile has no default user'
    auth_params = orm.Computer.collection.get(label=label).get_authinfo(user).get_auth_params()
    assert firecrest_config['client_secret'] not in json.dumps(auth_params)
    secret_file = Path(auth_params['client_secret'])
    assert secret_file.read_text() == firecrest_config['client_secret']
    assert secret_file.stat().st_mode & 0o077 == 0

    tested = verdi('computer', 'test', label)
    assert tested.returncode == 0, tested.stdout + tested.stderr
