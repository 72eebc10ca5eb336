"""The pytest plugin that other AiiDA plugins use (:mod:`aiida_firecrest.pytest_plugin`), as they use it: in pytest runs
of their own, in a fresh directory with no conftest.py but the one the documentation gives."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aiida_firecrest.pytest_plugin import CLIENT_CONFIG_KEYS, CONFIG_OPTION

EXAMPLE = Path(__file__).parent.parent / 'docs' / 'examples' / 'plugin_tests'
"""The example of the documentation: a plugin's conftest.py and its test of a CalcJob."""

DEPLOYMENT = {
    'url': 'https://firecrest.example.org',
    'token_uri': 'https://auth.example.org/token',
    'client_id': 'client',
    'client_secret': 'secret',
    'compute_resource': 'cluster',
    'temp_directory': '/scratch/tmp',
    'workdir': '/scratch/work',
    'billing_account': None,
}
"""A deployment's configuration file, as ``serve --config-out`` writes it; the inner runs only read it."""

READS_EXTERNAL_CONFIG = """
def test_config(firecrest_config, firecrest_external_config):
    assert firecrest_config == firecrest_external_config == {config!r}
"""


def run_inner(pytester: pytest.Pytester, *arguments: str) -> pytest.RunResult:
    """Run pytest in ``pytester``'s directory, in this process, without pytest-asyncio (whose configuration warning
    would reach this run's warning filters)."""
    return pytester.runpytest('-p', 'no:asyncio', *arguments)


@pytest.fixture
def deployment_file(pytester: pytest.Pytester) -> Path:
    """The configuration file of :data:`DEPLOYMENT`, in the directory of the inner pytest runs."""
    path = pytester.path / 'deployment.json'
    path.write_text(json.dumps(DEPLOYMENT))
    return path


@pytest.mark.parametrize('separate', [True, False], ids=['FILE', '=FILE'])
def test_config_option_forms(pytester: pytest.Pytester, deployment_file: Path, separate: bool) -> None:
    """``--firecrest-config FILE`` and ``--firecrest-config=FILE`` both give the deployment to the fixtures."""
    pytester.makepyfile(READS_EXTERNAL_CONFIG.format(config=DEPLOYMENT))
    arguments = [CONFIG_OPTION, str(deployment_file)] if separate else [f'{CONFIG_OPTION}={deployment_file}']

    result = run_inner(pytester, *arguments)

    result.assert_outcomes(passed=1)


def test_separate_file_outside_the_project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--firecrest-config FILE`` with ``FILE`` outside the project, where pytest took ``FILE``'s directory for the
    root, stops the run with what to write instead."""
    path = pytester.mkdir('elsewhere') / 'deployment.json'
    path.write_text(json.dumps(DEPLOYMENT))
    project = pytester.mkdir('project')
    (project / 'test_nothing.py').write_text('def test_nothing(): pass')
    monkeypatch.chdir(project)

    result = run_inner(pytester, CONFIG_OPTION, str(path))

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f'ERROR: {CONFIG_OPTION} {path}: *; write {CONFIG_OPTION}={path}'])


@pytest.mark.parametrize(
    ('content', 'message'),
    [
        ('{"url": ', 'cannot read it'),
        ('[]', 'not a JSON object'),
        *[
            (json.dumps({k: v for k, v in DEPLOYMENT.items() if k != key}), f'lacks {key}')
            for key in CLIENT_CONFIG_KEYS
        ],
    ],
    ids=['invalid-json', 'not-an-object', *(f'no-{key}' for key in CLIENT_CONFIG_KEYS)],
)
def test_config_file_refused(pytester: pytest.Pytester, content: str, message: str) -> None:
    """A configuration file that is not a JSON object with every needed key stops the run before any test."""
    path = pytester.path / 'deployment.json'
    path.write_text(content)
    pytester.makepyfile('def test_nothing(): pass')

    result = run_inner(pytester, f'{CONFIG_OPTION}={path}')

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f'ERROR: {CONFIG_OPTION}: {path}: {message}*'])


@pytest.mark.parametrize('fixture', ['firecrest_server', 'firecrest_slurm_server'])
def test_local_servers_skip_against_deployment(pytester: pytest.Pytester, deployment_file: Path, fixture: str) -> None:
    """The local servers' fixtures skip, saying why, when the tests run against a deployment."""
    pytester.makepyfile(f'def test_server({fixture}): pass')

    result = run_inner(pytester, '-rs', CONFIG_OPTION, str(deployment_file))

    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines([f'*{CONFIG_OPTION}: the test needs the local server*'])


def test_computer_without_aiida_fixtures(pytester: pytest.Pytester, deployment_file: Path) -> None:
    """Without AiiDA's fixtures, ``firecrest_computer`` fails with what to add to the conftest.py."""
    pytester.makepyfile('def test_computer(firecrest_computer): pass')

    result = run_inner(pytester, CONFIG_OPTION, str(deployment_file))

    result.assert_outcomes(errors=1)
    assert "add pytest_plugins = ['aiida.tools.pytest_fixtures'] to the root conftest.py" in result.stdout.str()


def test_plugin_also_listed_in_pytest_plugins(pytester: pytest.Pytester) -> None:
    """A conftest.py that lists the plugin in ``pytest_plugins`` as well runs, the plugin loaded once."""
    pytester.makeconftest("pytest_plugins = ['aiida_firecrest.pytest_plugin']")
    pytester.makepyfile('def test_config(firecrest_external_config): assert firecrest_external_config is None')

    result = run_inner(pytester)

    result.assert_outcomes(passed=1)


def test_plugin_imports_neither_aiida_nor_the_server() -> None:
    """Loaded in every pytest run of the environment, the plugin imports neither AiiDA nor the local server (and so
    needs no ``server`` extra) until a fixture needs them."""
    probe = (
        'import sys, aiida_firecrest.pytest_plugin; '
        "print(sorted(name for name in sys.modules if name.split('.')[0] in ('aiida', 'fastapi', 'uvicorn') "
        "or name.startswith('aiida_firecrest.server')))"
    )
    loaded = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == '[]'


def test_documented_example(pytester: pytest.Pytester, pytestconfig: pytest.Config) -> None:
    """The documentation's example, a plugin's CalcJob test with the plugin's fixtures and AiiDA's alone, passes in a
    pytest run of its own: on a local server of its own, or on the deployment of this run's ``--firecrest-config``."""
    for source in EXAMPLE.glob('*.py'):
        shutil.copy(source, pytester.path)
    deployment = pytestconfig.getoption(CONFIG_OPTION)
    arguments = [] if deployment is None else [CONFIG_OPTION, str(pytestconfig.invocation_params.dir / deployment)]

    result = pytester.runpytest_subprocess('-p', 'no:cacheprovider', *arguments, timeout=240)

    if deployment is None:
        result.assert_outcomes(passed=2)
    else:
        result.assert_outcomes(passed=1, skipped=1)
