"""The local server behaves like the real FirecREST 2.5 server by default, and each ``RealismSettings`` switch gives the
kind behaviour instead.

The requests go through httpx with a token of the session's local server, so that the tests see statuses and messages
exactly; every JSON answer is validated against the OpenAPI specification. The answers recorded on the real server
(``firecrest-v2-observed.json`` beside the checkout) are compared where they exist.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from aiida_firecrest.server import LocalFirecrest
from tests.openapi_contract import ResponseValidator
from tests.server.conftest import realism

pytestmark = pytest.mark.local_server

OBSERVED = Path(__file__).resolve().parents[3] / 'shared' / 'firecrest-v2-observed.json'
FAILED = 'Remote process failed with exit status:{status} and error message:'
GZIP_MAGIC = b'\x1f\x8b'
UNEXPECTED_EOF = "bash: -c: line 1: unexpected EOF while looking for matching `''"


@pytest.fixture(scope='module')
def http(local_server: LocalFirecrest) -> Iterator[httpx.Client]:
    """An httpx client of the local server with a valid token, whose JSON answers are validated against the spec."""
    config = local_server.client_config()
    token = httpx.post(
        config['token_uri'],
        data={
            'grant_type': 'client_credentials',
            'client_id': config['client_id'],
            'client_secret': config['client_secret'],
        },
    ).json()['access_token']
    validator = ResponseValidator(config['url'])
    with httpx.Client(base_url=config['url'], headers={'Authorization': f'Bearer {token}'}, timeout=30) as client:
        client.event_hooks['response'].append(lambda response: _validate(validator, response))
        yield client


def _validate(validator: ResponseValidator, response: httpx.Response) -> None:
    if 'json' in response.headers.get('content-type', ''):
        response.read()
        validator.validate(response)


@pytest.fixture
def workdir(local_server: LocalFirecrest) -> Iterator[Path]:
    """A fresh directory in the local server's work directory."""
    path = Path(local_server.client_config()['workdir']) / f'realism-{uuid.uuid4().hex[:12]}'
    path.mkdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


OPS = '/filesystem/cluster/ops'


def upload(http: httpx.Client, directory: Path, name: str, data: bytes) -> httpx.Response:
    """Upload ``data`` as ``name`` into ``directory`` directly."""
    return http.post(f'{OPS}/upload', params={'path': str(directory)}, files={'file': (name, data)})


def error(response: httpx.Response, status: int) -> str:
    """Check that ``response`` is an error envelope with ``status``; return its message."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {'errorType', 'message', 'causedBy', 'data', 'user'}
    return str(body['message'])


# --- quoting ---


@pytest.mark.parametrize(
    ('method', 'endpoint', 'request_of'),
    [
        ('GET', 'ls', lambda path: {'params': {'path': path}}),
        ('GET', 'stat', lambda path: {'params': {'path': path}}),
        ('GET', 'checksum', lambda path: {'params': {'path': path}}),
        ('DELETE', 'rm', lambda path: {'params': {'path': path}}),
    ],
)
def test_quote_in_a_name_breaks_the_command(
    http: httpx.Client, workdir: Path, method: str, endpoint: str, request_of: Any
) -> None:
    """Paths go inside single quotes unescaped: a ``'`` leaves a quote open, and bash fails the line (500)."""
    (workdir / "it's").write_text('x')
    response = http.request(method, f'{OPS}/{endpoint}', **request_of(f"{workdir}/it's"))
    assert error(response, 500) == f'{FAILED.format(status=2)}{UNEXPECTED_EOF}'


def test_quote_in_a_name_when_switched_off(http: httpx.Client, local_server: LocalFirecrest, workdir: Path) -> None:
    with realism(local_server, shell_quoting=False):
        assert upload(http, workdir, "it's", b'x').status_code == 204
        response = http.get(f'{OPS}/ls', params={'path': f"{workdir}/it's"})
    assert response.json()['output'][0]['name'] == f"{workdir}/it's"


def test_a_quote_pair_in_mkdir_makes_other_folders(http: httpx.Client, workdir: Path) -> None:
    """A name with two quotes closes and reopens them: ``mkdir`` makes two folders, as on the real server."""
    response = http.post(f'{OPS}/mkdir', json={'path': f"{workdir}/a' '{workdir}/b"})
    assert response.status_code == 201
    assert response.json()['output']['name'] == f'{workdir}/a'
    assert sorted(path.name for path in workdir.iterdir()) == ['a', 'b']


# --- error statuses ---


@pytest.mark.parametrize(('real', 'status'), [(True, 500), (False, 400)])
def test_unrecognised_error(http: httpx.Client, local_server: LocalFirecrest, workdir: Path, real: bool, status: int):
    """``Not a directory`` is not among the messages the real server maps: 500; the kind switch answers 400."""
    (workdir / 'file').write_text('x')
    with realism(local_server, real_error_statuses=real):
        response = http.post(f'{OPS}/mkdir', json={'path': f'{workdir}/file/sub'})
    assert error(response, status).endswith('Not a directory')


def test_unknown_system_before_validation(http: httpx.Client) -> None:
    """The system is checked before the body, as the real server's dependencies run first."""
    response = http.post('/filesystem/nowhere/ops/mkdir', json={'no': 'path'})
    assert error(response, 404) == 'System not found'


def test_validation_error(http: httpx.Client, workdir: Path) -> None:
    """An invalid request is a 400 with errorType ``validation`` and the fields, as the real server answers it."""
    response = http.post(f'{OPS}/compress', json={'path': str(workdir), 'targetPath': 'x', 'compression': 'rar'})
    assert response.status_code == 400
    body = response.json()
    assert body['errorType'] == 'validation'
    assert body['message'].startswith('1 validation error:')
    assert body['data']['fields'][0]['location'] == 'body'


# --- listings ---


@pytest.mark.parametrize(
    ('name', 'real', 'decoded'),
    [('ünï.txt', r'\303\274n\303\257.txt', 'ünï.txt'), ('tab\tname', r'tab\tname', 'tab\tname')],
)
def test_c_quoted_names(
    http: httpx.Client, local_server: LocalFirecrest, workdir: Path, name: str, real: str, decoded: str
) -> None:
    (workdir / name).write_text('x')
    for c_quoted, expected in ((True, real), (False, decoded)):
        with realism(local_server, c_quoted_names=c_quoted):
            response = http.get(f'{OPS}/ls', params={'path': str(workdir)})
        assert [entry['name'] for entry in response.json()['output']] == [expected]


def test_trailing_slash_on_a_link_lists_the_directory(http: httpx.Client, workdir: Path) -> None:
    (workdir / 'dir').mkdir()
    (workdir / 'dir' / 'inside').write_text('x')
    (workdir / 'link').symlink_to('dir')
    itself = http.get(f'{OPS}/ls', params={'path': f'{workdir}/link'}).json()['output']
    through = http.get(f'{OPS}/ls', params={'path': f'{workdir}/link/'}).json()['output']
    assert [(entry['name'], entry['type']) for entry in itself] == [(f'{workdir}/link', 'l')]
    assert [entry['name'] for entry in through] == ['inside']


def test_ls_answers_as_recorded(http: httpx.Client, workdir: Path) -> None:
    """The shapes of ``ls`` of a directory match those recorded on the real server, field for field."""
    recorded = json.loads(OBSERVED.read_text())['ls_dir']['body']['output'][0] if OBSERVED.is_file() else None
    if recorded is None:
        pytest.skip(f'no recorded answers at {OBSERVED}')
    upload(http, workdir, 'a.txt', b'0123456789abcdef')
    [entry] = http.get(f'{OPS}/ls', params={'path': str(workdir)}).json()['output']
    assert {key: type(value) for key, value in entry.items()} == {key: type(value) for key, value in recorded.items()}
    assert (entry['name'], entry['size'], entry['permissions']) == (recorded['name'], recorded['size'], 'rw-r--r--')


# --- checksum ---


@pytest.mark.parametrize('name', ['with space', 'arrow -> name', ' leading', 'tab\there'])
def test_checksum_of_a_name_with_whitespace(
    http: httpx.Client, local_server: LocalFirecrest, workdir: Path, name: str
) -> None:
    (workdir / name).write_text('x')
    response = http.get(f'{OPS}/checksum', params={'path': f'{workdir}/{name}'})
    assert error(response, 500).startswith(f'Invalid output: {hashlib.sha256(b"x").hexdigest()}  {workdir}/{name}')
    with realism(local_server, checksum_splits_output=False):
        response = http.get(f'{OPS}/checksum', params={'path': f'{workdir}/{name}'})
    assert response.json()['output']['checksum'] == hashlib.sha256(b'x').hexdigest()


def test_checksum_of_a_name_with_a_backslash(http: httpx.Client, local_server: LocalFirecrest, workdir: Path) -> None:
    """``sha256sum`` marks an escaped name with a leading ``\\``, which the real server keeps in the checksum."""
    (workdir / 'back\\slash').write_text('x')
    digest = hashlib.sha256(b'x').hexdigest()
    assert http.get(f'{OPS}/checksum', params={'path': f'{workdir}/back\\slash'}).json()['output']['checksum'] == (
        f'\\{digest}'
    )
    with realism(local_server, checksum_splits_output=False):
        response = http.get(f'{OPS}/checksum', params={'path': f'{workdir}/back\\slash'})
    assert response.json()['output']['checksum'] == digest


# --- direct transfers ---


def test_empty_upload_hangs(http: httpx.Client, local_server: LocalFirecrest, workdir: Path) -> None:
    """No end of input is sent for empty content: the file exists, and the answer is 408 after the timeout."""
    assert error(upload(http, workdir, 'empty', b''), 408) == 'Command execution timeout limit exceeded.'
    assert (workdir / 'empty').read_bytes() == b''
    with realism(local_server, empty_upload_hangs=False):
        assert upload(http, workdir, 'empty2', b'').status_code == 204
    assert (workdir / 'empty2').read_bytes() == b''


def test_upload_goes_through_base64(http: httpx.Client, workdir: Path) -> None:
    data = bytes(range(256)) * 4
    assert upload(http, workdir, 'binary', data).status_code == 204
    assert (workdir / 'binary').read_bytes() == data


@pytest.mark.parametrize('excess', [0, 1])
def test_download_without_the_buffer_limit(
    http: httpx.Client, local_server: LocalFirecrest, workdir: Path, excess: int
) -> None:
    """The kind switch: any file up to the limit comes back, a larger one gets a quick 413."""
    limit = local_server.settings.max_ops_file_size
    size = limit + excess
    (workdir / 'file').write_bytes(b'\0' * size)
    with realism(local_server, download_buffer_limit=False):
        response = http.get(f'{OPS}/download', params={'path': f'{workdir}/file'})
    if size <= limit:
        assert response.content == b'\0' * size
    else:
        assert error(response, 413) == 'File to download is too large.'


# --- compress ---


@pytest.mark.parametrize('in_parent', [True, False])
def test_compress_with_a_pattern(
    http: httpx.Client, local_server: LocalFirecrest, workdir: Path, in_parent: bool
) -> None:
    """Real: ``find`` runs in the parent (paths ``./<name>/...``) and the archive is gzip whatever was asked."""
    (workdir / 'data').mkdir()
    (workdir / 'data' / 'a.txt').write_text('a')
    pattern = r'\./data/.*\.txt' if in_parent else r'\./.*\.txt'
    body = {'path': f'{workdir}/data', 'targetPath': f'{workdir}/out.tar', 'matchPattern': pattern}
    with realism(local_server, compress_pattern_in_parent=in_parent):
        assert http.post(f'{OPS}/compress', json={**body, 'compression': 'none'}).status_code == 204
    assert (workdir / 'out.tar').read_bytes().startswith(GZIP_MAGIC) is in_parent
    with tarfile.open(workdir / 'out.tar') as tar:
        assert tar.getnames() == (['./data/a.txt'] if in_parent else ['./a.txt'])


def test_compress_pattern_runs_in_the_outer_shell(http: httpx.Client, workdir: Path) -> None:
    """The real line is ``bash -c "..."``: a ``$`` in the pattern is expanded by the outer shell."""
    (workdir / 'data').mkdir()
    (workdir / 'data' / 'a.txt').write_text('a')
    body = {'path': f'{workdir}/data', 'targetPath': f'{workdir}/out.tgz', 'matchPattern': '.*$HOME.*'}
    assert http.post(f'{OPS}/compress', json=body).status_code == 204
    with tarfile.open(workdir / 'out.tgz') as tar:
        assert tar.getnames() == []  # the pattern became ``.*<home>.*``
