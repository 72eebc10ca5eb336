"""The upgrade from aiida-firecrest 1.0.0: options that 1.0.0 itself stored are refused with the command that migrates
them, and that command makes them work with 2.0 (see ``aiida-firecrest-1.0.0-authinfo.json`` for how they were made)."""

from __future__ import annotations

import json
import stat
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiida import orm
from aiida.engine import run_get_node
from click.testing import CliRunner

from aiida_firecrest.client.exceptions import FirecrestConfigurationError
from aiida_firecrest.command_line import main
from aiida_firecrest.demo.steps import arithmetic_add
from aiida_firecrest.migration import LEGACY_OPTIONS, is_legacy, migrate_computer, migrate_options
from aiida_firecrest.transport import FirecrestTransport
from tests.remote_files import RemoteFiles

FIXTURE = json.loads((Path(__file__).parent / 'aiida-firecrest-1.0.0-authinfo.json').read_text())
LEGACY = FIXTURE['computers']
"""The options aiida-firecrest 1.0.0 stored, by computer label."""

LEGACY_SECRET_MODE = int(FIXTURE['secret_file_mode'], 8)
"""The mode of the secret files 1.0.0 wrote (the default umask)."""

CONNECTION_OPTIONS = ('url', 'token_uri', 'client_id', 'compute_resource', 'temp_directory')


def legacy_params(label: str, secret_file: Path, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """The options 1.0.0 stored for ``label``, with its secret in ``secret_file`` and, if ``config`` is given (the keys
    of ``serve --config-out``), the connection options of that server."""
    params = {**LEGACY[label], 'client_secret': str(secret_file)}
    if config is not None:
        params.update({name: config[name] for name in CONNECTION_OPTIONS})
    return params


def write_legacy_secret(path: Path, secret: str = 'a-client-secret') -> Path:
    """Write ``secret`` to ``path`` as 1.0.0 did (readable by all under the default umask); return ``path``."""
    path.write_text(secret)
    path.chmod(LEGACY_SECRET_MODE)
    return path


def default_user() -> orm.User:
    """The default user of the loaded profile."""
    user = orm.User.collection.get_default()
    assert user is not None, 'the profile has no default user'
    return user


@pytest.fixture
def legacy_computer(aiida_computer: Callable[..., orm.Computer]) -> Callable[[dict[str, Any]], orm.Computer]:
    """A factory: a ``firecrest`` computer whose AuthInfo holds ``params`` as 1.0.0 stored them.

    ``Computer.configure`` refuses options that 2.0 does not know, so the AuthInfo is written directly, as the database
    holds it after the upgrade.
    """

    def factory(params: dict[str, Any]) -> orm.Computer:
        computer = aiida_computer(
            label=f'legacy-{uuid.uuid4().hex[:8]}',
            hostname='firecrest',
            scheduler_type='firecrest',
            transport_type='firecrest',
        )
        authinfo = orm.AuthInfo(computer=computer, user=default_user())
        authinfo.set_auth_params(params)
        authinfo.store()
        return computer

    return factory


@pytest.mark.parametrize('label', sorted(LEGACY))
def test_fixture_is_legacy(label: str) -> None:
    assert is_legacy(LEGACY[label])


def test_options_of_2_0_are_not_legacy() -> None:
    assert not is_legacy({name: value for name, value in LEGACY['legacy'].items() if name not in LEGACY_OPTIONS})


@pytest.mark.parametrize('label', sorted(LEGACY))
def test_transport_refuses_legacy_options_naming_the_command(aiida_profile: Any, label: str) -> None:
    with pytest.raises(FirecrestConfigurationError, match=r'configured by aiida-firecrest 1\.0\.0') as info:
        FirecrestTransport(machine='firecrest', **LEGACY[label])
    assert f'run `aiida-firecrest migrate -p {aiida_profile.name}`' in str(info.value)


@pytest.mark.parametrize('label', sorted(LEGACY))
def test_migrate_options_maps_max_io_allowed(tmp_path: Path, label: str) -> None:
    params = legacy_params(label, write_legacy_secret(tmp_path / 'secret'))
    migrated = migrate_options(params).params
    assert migrated['max_concurrency'] == LEGACY[label]['max_io_allowed']
    assert not set(LEGACY_OPTIONS) & set(migrated)


@pytest.mark.parametrize('label', sorted(LEGACY))
def test_migrate_options_maps_checksum_check(tmp_path: Path, label: str) -> None:
    params = legacy_params(label, write_legacy_secret(tmp_path / 'secret'))
    migrated = migrate_options(params).params
    assert migrated['checksum_uploads'] is LEGACY[label]['checksum_check']


@pytest.mark.parametrize('label', sorted(LEGACY))
def test_migrate_options_keeps_the_other_options(tmp_path: Path, label: str) -> None:
    params = legacy_params(label, write_legacy_secret(tmp_path / 'secret'))
    migrated = migrate_options(params).params
    kept = set(params) - set(LEGACY_OPTIONS)
    assert {name: migrated[name] for name in kept} == {name: params[name] for name in kept}


def test_migrate_options_makes_the_secret_file_private(tmp_path: Path) -> None:
    secret_file = write_legacy_secret(tmp_path / 'secret')
    migrated = migrate_options(legacy_params('legacy', secret_file))
    assert migrated.params['client_secret'] == str(secret_file)
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert any('0644 to 0600' in change for change in migrated.changes)


def test_migrate_options_moves_a_secret_stored_as_such(aiida_profile: Any, tmp_path: Path) -> None:
    params = {**LEGACY['legacy'], 'client_secret': 'the-secret-itself'}
    migrated = migrate_options(params).params
    secret_file = Path(migrated['client_secret'])
    assert secret_file.read_text() == 'the-secret-itself'
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ('change', 'message'),
    [
        ({'client_secret': '/nonexistent/secret'}, 'cannot read the client-secret file'),
        ({'client_secret': ''}, 'has no client_secret'),
        ({'max_io_allowed': 0}, 'not an integer of 1 or more'),
        ({'max_io_allowed': 'many'}, 'not an integer'),
    ],
)
def test_migrate_options_refuses(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    params = {**legacy_params('legacy', write_legacy_secret(tmp_path / 'secret')), **change}
    with pytest.raises(FirecrestConfigurationError, match=message):
        migrate_options(params)


def test_migrate_options_does_not_repeat_a_missing_absolute_path(tmp_path: Path) -> None:
    """1.0.0 may have stored the secret itself, and a secret may start with ``/``: a path that does not exist is not
    repeated (one that exists is named, as it is no secret)."""
    secret = '/s3cr3t-that-starts-with-a-slash'
    with pytest.raises(FirecrestConfigurationError) as info:
        migrate_options({**LEGACY['legacy'], 'client_secret': secret})
    assert secret.lstrip('/') not in f'{info.value} {info.value!r}'


@pytest.mark.parametrize(
    ('secret', 'exit_code', 'message'),
    [
        ('the-secret-itself', 2, 'Invalid value for --client-secret'),
        ('/s3cr3t-that-starts-with-a-slash', 1, 'NOT migrated: cannot read the client-secret file'),
    ],
    ids=['secret', 'secret-starting-with-a-slash'],
)
def test_migrate_command_refuses_the_secret_itself_unrepeated(
    aiida_profile: Any,
    legacy_computer: Callable[[dict[str, Any]], orm.Computer],
    tmp_path: Path,
    secret: str,
    exit_code: int,
    message: str,
) -> None:
    """``--client-secret`` names where the secret is (``ps`` shows a command line): the secret itself is refused (before
    the profile is loaded, which writes the command line to a pid file), one starting with ``/`` as a missing file;
    neither is stored nor repeated, and the computer keeps its options."""
    params = legacy_params('legacy', write_legacy_secret(tmp_path / 'secret'))
    computer = legacy_computer(params)
    result = CliRunner().invoke(main, ['migrate', '-p', aiida_profile.name, '--client-secret', secret, computer.label])
    assert result.exit_code == exit_code
    assert message in result.output
    assert secret.lstrip('/') not in result.output
    assert computer.get_authinfo(default_user()).get_auth_params() == params


def test_migrate_computer_refuses_the_secret_itself(
    legacy_computer: Callable[[dict[str, Any]], orm.Computer], tmp_path: Path
) -> None:
    params = legacy_params('legacy', write_legacy_secret(tmp_path / 'secret'))
    computer = legacy_computer(params)
    with pytest.raises(FirecrestConfigurationError, match='never as the secret itself') as info:
        migrate_computer(computer, client_secret='the-secret-itself')
    assert 'the-secret-itself' not in str(info.value)
    assert computer.get_authinfo(default_user()).get_auth_params() == params


def test_migrate_options_refuses_a_directory_as_secret(tmp_path: Path) -> None:
    with pytest.raises(FirecrestConfigurationError, match='not a regular file'):
        migrate_options(legacy_params('legacy', tmp_path))


@pytest.mark.parametrize('label', sorted(LEGACY))
def test_migrate_computer_stores_options_the_transport_accepts(
    legacy_computer: Callable[[dict[str, Any]], orm.Computer], tmp_path: Path, label: str
) -> None:
    computer = legacy_computer(legacy_params(label, write_legacy_secret(tmp_path / 'secret')))
    assert migrate_computer(computer) is not None
    computer.get_authinfo(default_user()).get_transport()


def test_migrate_computer_leaves_a_2_0_computer_alone(
    legacy_computer: Callable[[dict[str, Any]], orm.Computer], tmp_path: Path
) -> None:
    computer = legacy_computer(legacy_params('legacy', write_legacy_secret(tmp_path / 'secret')))
    migrate_computer(computer)
    assert migrate_computer(computer) is None


def test_migrate_command_migrates_every_legacy_computer(
    aiida_profile: Any, legacy_computer: Callable[[dict[str, Any]], orm.Computer], tmp_path: Path
) -> None:
    computers = [
        legacy_computer(legacy_params(label, write_legacy_secret(tmp_path / label))) for label in sorted(LEGACY)
    ]
    result = CliRunner().invoke(main, ['migrate', '-p', aiida_profile.name])
    assert result.exit_code == 0, result.output
    for computer in computers:
        assert f'Computer {computer.label!r} migrated' in result.output
        assert not is_legacy(computer.get_authinfo(default_user()).get_auth_params())


def test_migrate_command_fails_on_a_computer_it_cannot_migrate(
    aiida_profile: Any, legacy_computer: Callable[[dict[str, Any]], orm.Computer], tmp_path: Path
) -> None:
    computer = legacy_computer(legacy_params('legacy', tmp_path / 'missing'))
    result = CliRunner().invoke(main, ['migrate', '-p', aiida_profile.name, computer.label])
    assert result.exit_code == 1
    assert f'Computer {computer.label!r} NOT migrated' in result.output
    assert is_legacy(computer.get_authinfo(default_user()).get_auth_params())


def test_migrated_computer_runs_a_calcjob(
    legacy_computer: Callable[[dict[str, Any]], orm.Computer],
    firecrest_config: dict[str, Any],
    remote_files: RemoteFiles,
    tmp_path: Path,
) -> None:
    secret_file = write_legacy_secret(tmp_path / 'secret', firecrest_config['client_secret'])
    computer = legacy_computer(legacy_params('legacy', secret_file, firecrest_config))
    workdir = f'{firecrest_config["workdir"]}/aiida-migration-{uuid.uuid4().hex[:8]}'
    computer.set_workdir(workdir)
    migrate_computer(computer)
    code = orm.InstalledCode(
        label='bash', computer=computer, filepath_executable='/bin/bash', default_calc_job_plugin='core.arithmetic.add'
    ).store()
    step = arithmetic_add(code)
    try:
        _, node = run_get_node(step.builder())
        step.check(node)
    finally:
        remote_files.remove(remote_files.path(workdir))


def test_migrate_command_refuses_a_computer_of_another_transport(
    aiida_profile: Any, aiida_computer: Callable[..., orm.Computer]
) -> None:
    computer = aiida_computer(label=f'local-{uuid.uuid4().hex[:8]}')
    result = CliRunner().invoke(main, ['migrate', '-p', aiida_profile.name, computer.label])
    assert result.exit_code == 2
    assert 'not firecrest computers' in result.output


@pytest.mark.parametrize(('option', 'value'), [('max_concurrency', 16), ('checksum_uploads', True)])
def test_migrate_options_keeps_an_option_set_by_2_0(tmp_path: Path, option: str, value: Any) -> None:
    params = {**legacy_params('legacy', write_legacy_secret(tmp_path / 'secret')), option: value}
    assert migrate_options(params).params[option] == value


def test_migrate_command_takes_a_new_client_secret(
    aiida_profile: Any, legacy_computer: Callable[[dict[str, Any]], orm.Computer], tmp_path: Path
) -> None:
    computer = legacy_computer(legacy_params('legacy', tmp_path / 'missing'))
    new_secret = write_legacy_secret(tmp_path / 'new-secret')
    result = CliRunner().invoke(
        main, ['migrate', '-p', aiida_profile.name, '--client-secret', str(new_secret), computer.label]
    )
    assert result.exit_code == 0, result.output
    params = computer.get_authinfo(default_user()).get_auth_params()
    assert params['client_secret'] == str(new_secret)
    assert stat.S_IMODE(new_secret.stat().st_mode) == 0o600


def test_migrate_command_wants_the_computer_of_a_client_secret(aiida_profile: Any, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ['migrate', '-p', aiida_profile.name, '--client-secret', str(tmp_path / 's')])
    assert result.exit_code == 2
    assert '--client-secret needs the COMPUTER' in result.output
