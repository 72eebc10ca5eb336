"""A pytest plugin for the tests of AiiDA plugins: a FirecREST v2 server and AiiDA computers configured for it.

Installed with aiida-firecrest (entry point ``pytest11``), it is active in every pytest run of the environment and adds:

- the option ``--firecrest-config FILE``: run against the FirecREST v2 deployment that ``FILE`` describes, a JSON
  object with the keys that ``firecrest_demo.py serve --config-out`` writes (:data:`CLIENT_CONFIG_KEYS` at least),
  instead of the local server;
- ``firecrest_config`` (session): what a client needs to reach the server under test, with those keys;
- ``firecrest_server`` (session): the local server (:class:`~aiida_firecrest.server.LocalFirecrest`, the ``server``
  extra), whose ``request_log`` counts requests and whose ``faults`` inject faults; built from
  ``firecrest_server_settings``, a fixture to override for other settings; skips against ``--firecrest-config``;
- ``firecrest_slurm_server`` (session): a local server whose jobs go to this machine's Slurm; skips without one;
- ``firecrest_computer`` (function): a factory of AiiDA computers with the ``firecrest`` transport and scheduler,
  configured for the server under test, each in a fresh work directory removed afterwards.

``firecrest_computer`` builds on AiiDA's fixtures, which a test suite loads itself, in its root ``conftest.py``:
``pytest_plugins = ['aiida.tools.pytest_fixtures']`` (this plugin does not load them: their profile is autouse).

Nothing is imported from AiiDA or from the local server until a fixture needs it: the plugin costs nothing to the test
suites that do not use it, and only the server fixtures need the ``server`` extra.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from aiida import orm
    from aiida.transports import Transport

    from aiida_firecrest.server import LocalFirecrest, ServerSettings

CONFIG_OPTION = '--firecrest-config'

CLIENT_CONFIG_KEYS = ('url', 'token_uri', 'client_id', 'client_secret', 'compute_resource', 'workdir')
"""The keys a ``--firecrest-config`` file must have; ``temp_directory`` and ``billing_account`` may be absent."""

COMMAND_TIMEOUT = 2.0
"""The command timeout of the local servers, in seconds: the real server's 20 s, shortened so that the requests that
hang until it (large direct downloads, empty direct uploads) keep the tests fast."""

UPLOAD_CHECK_INTERVAL = 0.2
"""Seconds between the local servers' upload jobs' checks for their object: the real server's 60 s, shortened so that
staged uploads keep the tests fast."""

POLL_INTERVAL = 1
"""The default minimum job poll interval of ``firecrest_computer``'s computers, in seconds."""

SAFE_INTERVAL = 0.1
"""The ``safe_interval`` of ``firecrest_computer``'s computers, in seconds: the engine waits that long before each
transport task of a CalcJob (upload, submit, poll, retrieve); opening a ``firecrest`` transport sends no request, so
the tests need not wait the default 1 s."""

REQUIRE_SLURM_ENV = 'FIRECREST_REQUIRE_SLURM'
"""An environment variable that, when set, turns a missing Slurm into a failure of ``firecrest_slurm_server``."""

_EXTERNAL_CONFIG = pytest.StashKey[dict[str, Any] | None]()


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--firecrest-config FILE``."""
    group = parser.getgroup('aiida-firecrest', 'FirecREST v2 server under test (aiida-firecrest)')
    group.addoption(
        CONFIG_OPTION,
        metavar='FILE',
        default=None,
        help='run against the FirecREST v2 deployment described by this JSON file (the keys of '
        '`firecrest_demo.py serve --config-out`) instead of the local server',
    )


def pytest_configure(config: pytest.Config) -> None:
    """Read the ``--firecrest-config`` file, if any, so that a wrong one stops the run before any test."""
    path = config.getoption(CONFIG_OPTION)
    if path is None:
        config.stash[_EXTERNAL_CONFIG] = None
        return
    check_root_directory(config, Path(path))
    config.stash[_EXTERNAL_CONFIG] = read_client_config(Path(path))


def check_root_directory(config: pytest.Config, path: Path) -> None:
    """Refuse the root directory that pytest took from the file of ``--firecrest-config FILE``.

    pytest looks for its root directory and configuration file before it loads plugins, and so before it knows this
    option: there it takes a ``FILE`` written as a separate argument for a test path (pytest-dev/pytest#8846). When
    ``FILE`` lies outside the current directory, pytest looks for the configuration above ``FILE`` instead, and if it
    finds none there the project's configuration goes unread and the root directory is wrong.

    :raises pytest.UsageError: in that case, saying to write ``--firecrest-config=FILE``.
    """
    directory = path.resolve().parent
    invocation_dir = config.invocation_params.dir
    if (
        CONFIG_OPTION in config.invocation_params.args
        and config.inipath is None
        and not directory.is_relative_to(invocation_dir)
    ):
        raise pytest.UsageError(
            f'{CONFIG_OPTION} {path}: pytest read FILE for a test path when it looked for its configuration and root '
            f'directory (it found none, and took {config.rootpath}); write {CONFIG_OPTION}={path}'
        )


def read_client_config(path: Path) -> dict[str, Any]:
    """Return the client configuration in the JSON file ``path``.

    :raises pytest.UsageError: if it cannot be read, or is not a JSON object with the keys of
        :data:`CLIENT_CONFIG_KEYS`.
    """
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise pytest.UsageError(f'{CONFIG_OPTION}: {path}: cannot read it: {exc}') from exc
    if not isinstance(config, dict):
        raise pytest.UsageError(f'{CONFIG_OPTION}: {path}: not a JSON object')
    missing = [key for key in CLIENT_CONFIG_KEYS if not config.get(key)]
    if missing:
        raise pytest.UsageError(f'{CONFIG_OPTION}: {path}: lacks {", ".join(missing)}')
    return config


def slurm_available() -> bool:
    """Whether a Slurm controller answers on this machine."""
    if shutil.which('sbatch') is None:
        return False
    try:
        return subprocess.run(['sinfo', '-h'], capture_output=True, timeout=10, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def require_slurm() -> None:
    """Skip the calling test without Slurm, or fail it if ``$FIRECREST_REQUIRE_SLURM`` says Slurm must be there."""
    if slurm_available():
        return
    if os.environ.get(REQUIRE_SLURM_ENV):
        pytest.fail(f'${REQUIRE_SLURM_ENV} is set but no Slurm controller answers')
    pytest.skip('no Slurm controller answers on this machine')


@pytest.fixture(scope='session')
def firecrest_external_config(pytestconfig: pytest.Config) -> dict[str, Any] | None:
    """The client configuration given with ``--firecrest-config``, or None when the tests run on the local server."""
    return pytestconfig.stash[_EXTERNAL_CONFIG]


def _skip_against_deployment(external_config: dict[str, Any] | None) -> None:
    if external_config is not None:
        pytest.skip(f'{CONFIG_OPTION}: the test needs the local server')


@pytest.fixture(scope='session')
def firecrest_server_settings(tmp_path_factory: pytest.TempPathFactory) -> ServerSettings:
    """The settings of ``firecrest_server``: jobs run as local processes, files in a temporary directory, command
    timeout :data:`COMMAND_TIMEOUT`, upload checks every :data:`UPLOAD_CHECK_INTERVAL`, the real server's behaviour
    otherwise.

    Override this fixture in a ``conftest.py`` for other settings, such as a small ``max_ops_file_size`` to send
    every file through the S3 staging area, or ``rate_limit=CSCS_RATE_LIMIT`` to run under CSCS's request budget.
    """
    from aiida_firecrest.server import ServerSettings

    return ServerSettings(
        roots=[tmp_path_factory.mktemp('firecrest-root')],
        command_timeout=COMMAND_TIMEOUT,
        upload_check_interval=UPLOAD_CHECK_INTERVAL,
    )


@pytest.fixture(scope='session')
def firecrest_server(
    firecrest_external_config: dict[str, Any] | None, request: pytest.FixtureRequest
) -> Iterator[LocalFirecrest]:
    """The local FirecREST v2 server of the session, with its S3 staging area; skips against ``--firecrest-config``."""
    _skip_against_deployment(firecrest_external_config)
    from aiida_firecrest.server import LocalFirecrest

    with LocalFirecrest(request.getfixturevalue('firecrest_server_settings')) as server:
        yield server


@pytest.fixture(scope='session')
def firecrest_slurm_server(
    firecrest_external_config: dict[str, Any] | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalFirecrest]:
    """A local FirecREST v2 server whose jobs go to this machine's Slurm, as the user running the tests.

    Skips against ``--firecrest-config``, and without a Slurm controller (fails instead if ``$FIRECREST_REQUIRE_SLURM``
    is set).
    """
    _skip_against_deployment(firecrest_external_config)
    require_slurm()
    from aiida_firecrest.server import LocalFirecrest, ServerSettings

    root = tmp_path_factory.mktemp('firecrest-slurm-root')
    root.chmod(0o755)
    settings = ServerSettings(
        roots=[root], scheduler='slurm', command_timeout=COMMAND_TIMEOUT, upload_check_interval=UPLOAD_CHECK_INTERVAL
    )
    with LocalFirecrest(settings) as server:
        yield server


@pytest.fixture(scope='session')
def firecrest_config(
    firecrest_external_config: dict[str, Any] | None, request: pytest.FixtureRequest
) -> dict[str, Any]:
    """What a client needs to reach the server under test (the keys of ``serve --config-out``): the deployment of
    ``--firecrest-config``, else ``firecrest_server``."""
    if firecrest_external_config is not None:
        return firecrest_external_config
    server: LocalFirecrest = request.getfixturevalue('firecrest_server')
    return server.client_config()


def computer_configuration(config: Mapping[str, Any]) -> dict[str, Any]:
    """Return the options of a ``firecrest`` computer for the server that ``config`` describes, as ``verdi computer
    configure firecrest`` stores them (the client secret moved to a file of the AiiDA configuration folder), with a
    ``safe_interval`` of :data:`SAFE_INTERVAL`."""
    from aiida_firecrest.client.client_credentials import store_client_secret

    options = {key: config[key] for key in ('url', 'token_uri', 'client_id', 'compute_resource')}
    options['safe_interval'] = SAFE_INTERVAL
    options['client_secret'] = str(store_client_secret(config['client_secret']))
    options.update({key: config[key] for key in ('temp_directory', 'billing_account') if config.get(key)})
    return options


def _aiida_computer_factory(request: pytest.FixtureRequest) -> Callable[..., orm.Computer]:
    """Return AiiDA's ``aiida_computer`` fixture, or fail the test with what to add to the conftest.py."""
    try:
        factory: Callable[..., orm.Computer] = request.getfixturevalue('aiida_computer')
    except pytest.FixtureLookupError:
        pass
    else:
        return factory
    pytest.fail(
        "firecrest_computer builds on AiiDA's fixtures: add pytest_plugins = ['aiida.tools.pytest_fixtures'] "
        'to the root conftest.py',
        pytrace=False,
    )


def _remove_directory(transport: Transport, path: str) -> None:
    with transport:
        if transport.path_exists(path):
            transport.rmtree(path)


@pytest.fixture
def firecrest_computer(
    firecrest_config: dict[str, Any], request: pytest.FixtureRequest
) -> Iterator[Callable[..., orm.Computer]]:
    """A factory of stored AiiDA computers with the ``firecrest`` transport and scheduler, configured for the current
    user on the server under test (``firecrest_config``), or on the server that ``config`` describes.

    ``firecrest_computer(label=None, *, config=None, minimum_job_poll_interval=POLL_INTERVAL,
    configuration_kwargs=None)``: ``configuration_kwargs`` adds or replaces options of the transport (e.g.
    ``{'max_direct_size': 1024}``). Each computer works in a fresh directory inside the server's ``workdir``, removed
    with what the CalcJobs left there when the test ends. Needs AiiDA's fixtures (``aiida.tools.pytest_fixtures``).
    """
    aiida_computer = _aiida_computer_factory(request)
    workdirs: list[tuple[Transport, str]] = []

    def factory(
        label: str | None = None,
        *,
        config: Mapping[str, Any] | None = None,
        minimum_job_poll_interval: int = POLL_INTERVAL,
        configuration_kwargs: Mapping[str, Any] | None = None,
    ) -> orm.Computer:
        config = firecrest_config if config is None else config
        computer = aiida_computer(
            label=label or f'firecrest-{uuid.uuid4().hex[:8]}',
            scheduler_type='firecrest',
            transport_type='firecrest',
            minimum_job_poll_interval=minimum_job_poll_interval,
        )
        computer.set_workdir(f'{config["workdir"].rstrip("/")}/aiida-{uuid.uuid4().hex[:8]}')
        computer.configure(**{**computer_configuration(config), **(configuration_kwargs or {})})
        workdirs.append((computer.get_transport(), computer.get_workdir()))
        return computer

    yield factory
    for transport, workdir in workdirs:
        _remove_directory(transport, workdir)
