"""The ``/filesystem/{system_name}/ops`` routes, driven through pyfirecrest's sync and async v2 clients.

The clients are made once for the module (making one costs tens of milliseconds, a request a few), and every JSON
answer they receive is checked against the OpenAPI specification by the session's validator; the last test asserts
that this happened for every ops endpoint. Tests that need the local server's internals (its settings, its files) ask
for the ``local_server`` fixture and skip against a real deployment.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import io
import os
import re
import stat
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import firecrest
import pytest
from firecrest.FirecrestException import UnexpectedStatusException
from firecrest.v2 import AsyncFirecrest, Firecrest

from aiida_firecrest.server import LocalFirecrest, listing
from tests.conftest import make_sync_client
from tests.openapi_contract import ResponseValidator

FAILED = 'Remote process failed with exit status:{status} and error message:'
LAST_MODIFIED = re.compile(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d')
PERMISSIONS = re.compile(r'[-r][-w][-xsS][-r][-w][-xsS][-r][-w][-xtT]')
FILE_KEYS = {'name', 'type', 'linkTarget', 'user', 'group', 'permissions', 'lastModified', 'size'}
STAT_KEYS = {'mode', 'ino', 'dev', 'nlink', 'uid', 'gid', 'size', 'atime', 'ctime', 'mtime'}
TEXT = b''.join(b'l%d\n' % number for number in range(1, 21))
"""Twenty lines, ``l1`` to ``l20``."""

UPLOAD_NAMES = ['plain.txt', '-leading-dash', 'semi;colon$dollar*star?', 'dots..and_underscores']
"""File names that every operation of the real server carries: in a multipart part, a command line, ``ls`` and
``sha256sum`` output."""

LINK_NAMES = {
    'new\nline': 'new\\nline',
    'double"quote': 'double"quote',
    'tab\tname': 'tab\\tname',
    'control\x01char': 'control\\001char',
    'ünï.txt': '\\303\\274n\\303\\257.txt',
    'a -> b': 'a -> b',
}
"""Names that httpx percent-encodes in a multipart part, made as links instead (a JSON body carries them unchanged),
and how the real server lists them: C escapes kept, ``\\"`` undone."""


class Client:
    """A pyfirecrest v2 client, sync or async, whose methods are all awaited."""

    def __init__(self, client: Any, system: str) -> None:
        self.raw = client
        self.system = system

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        method = getattr(self.raw, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            result = method(self.system, *args, **kwargs)
            return await result if inspect.isawaitable(result) else result

        return call


@pytest.fixture(scope='module')
def module_sync_client(firecrest_config: dict[str, Any], response_validator: ResponseValidator) -> Iterator[Firecrest]:
    """A pyfirecrest v2 sync client for the module, made as the ``sync_client`` fixture makes one."""
    client = make_sync_client(firecrest_config, response_validator)
    yield client
    client.close_session()


@pytest.fixture(scope='module')
async def module_async_client(
    firecrest_config: dict[str, Any], response_validator: ResponseValidator
) -> AsyncIterator[AsyncFirecrest]:
    """A pyfirecrest v2 async client for the module, made as the ``async_client`` fixture makes one."""
    auth = firecrest.ClientCredentialsAuth(
        firecrest_config['client_id'], firecrest_config['client_secret'], firecrest_config['token_uri'], 60
    )
    client = AsyncFirecrest(firecrest_config['url'], authorization=auth)
    client.timeout = 60
    client.num_retries_rate_limit = 3
    response_validator.install(client._session)
    yield client
    await client.close_session()


@pytest.fixture(params=['sync', 'async'])
def client(request: pytest.FixtureRequest, firecrest_config: dict[str, Any]) -> Client:
    """Each pyfirecrest client in turn, bound to the system under test: for what the two clients do differently."""
    return Client(request.getfixturevalue(f'module_{request.param}_client'), firecrest_config['compute_resource'])


@pytest.fixture
def sync(module_sync_client: Firecrest, firecrest_config: dict[str, Any]) -> Client:
    """The sync client alone: for the matrices of server behaviour, where the client makes no difference."""
    return Client(module_sync_client, firecrest_config['compute_resource'])


@pytest.fixture
def remote_dir(module_sync_client: Firecrest, firecrest_config: dict[str, Any]) -> Iterator[str]:
    """A fresh directory in the work directory, removed afterwards (``remote_dir`` with the module's client)."""
    system = firecrest_config['compute_resource']
    path = f'{firecrest_config["workdir"]}/test-{uuid.uuid4().hex[:12]}'
    module_sync_client.mkdir(system, path)
    yield path
    module_sync_client.rm(system, path)


@pytest.fixture(scope='module')
def tree(module_sync_client: Firecrest, firecrest_config: dict[str, Any]) -> Iterator[str]:
    """A directory shared by the tests that only read it: ``a.txt`` (:data:`TEXT`), ``.hidden``, ``sub/b.txt``
    (``b``), ``sub/.h2``, ``link -> a.txt`` and ``dirlink -> sub`` (no empty file: the real server cannot upload
    one)."""
    client, system = module_sync_client, firecrest_config['compute_resource']
    path = f'{firecrest_config["workdir"]}/tree-{uuid.uuid4().hex[:12]}'
    client.mkdir(system, f'{path}/sub', create_parents=True)
    files = [('a.txt', TEXT), ('.hidden', b'hidden\n'), ('sub/b.txt', b'b'), ('sub/.h2', b'h2\n')]
    for name, data in files:
        directory, _, base = f'{path}/{name}'.rpartition('/')
        client.upload(system, io.BytesIO(data), directory, base, file_size=len(data))
    client.symlink(system, f'{path}/a.txt', f'{path}/link')
    client.symlink(system, f'{path}/sub', f'{path}/dirlink')
    yield path
    client.rm(system, path)


Put = Callable[..., Awaitable[str]]


@pytest.fixture
def put(tmp_path: Path) -> Put:
    """Upload bytes with a client to a directory of the server under a name; return the remote path."""

    async def upload(client: Client, directory: str, name: str, data: bytes = TEXT) -> str:
        local = tmp_path / f'upload-{uuid.uuid4().hex}'
        local.write_bytes(data)
        await client.upload(str(local), directory, name)
        return f'{directory}/{name}'

    return upload


@pytest.fixture
async def work(client: Client, remote_dir: str, put: Put) -> str:
    """A fresh directory to change: ``a.txt`` (:data:`TEXT`), ``sub/b.txt`` (``b``) and ``sub/.h2``."""
    await put(client, remote_dir, 'a.txt')
    await client.mkdir(f'{remote_dir}/sub')
    await put(client, f'{remote_dir}/sub', 'b.txt', b'b')
    await put(client, f'{remote_dir}/sub', '.h2', b'h2\n')
    return remote_dir


async def failure(call: Awaitable[Any], status: int) -> str:
    """Await ``call``, which must fail with ``status``, and return the message of the error envelope."""
    with pytest.raises(UnexpectedStatusException) as info:
        await call
    response = info.value.responses[-1]
    assert response.status_code == status, response.text
    body = response.json()
    assert body['errorType'] in {'error', 'validation'}
    return body['message']


def assert_file(entry: dict[str, Any], name: str, kind: str) -> None:
    """Check a ``File`` of an answer, field for field and type for type, as the real server gives it."""
    assert set(entry) == FILE_KEYS
    assert (entry['name'], entry['type']) == (name, kind)
    assert PERMISSIONS.fullmatch(entry['permissions'])
    assert LAST_MODIFIED.fullmatch(entry['lastModified'])
    assert entry['size'].isdigit()
    assert isinstance(entry['user'], str) and isinstance(entry['group'], str)
    assert (entry['linkTarget'] is None) is (kind != 'l')


@contextlib.contextmanager
def setting(server: LocalFirecrest, name: str, value: Any) -> Iterator[None]:
    """Change a setting of the (session-scoped) local server for the duration of the block."""
    previous = getattr(server.settings, name)
    setattr(server.settings, name, value)
    try:
        yield
    finally:
        setattr(server.settings, name, previous)


# --- mkdir, ls, stat ---


async def test_mkdir(client: Client, remote_dir: str) -> None:
    path = f'{remote_dir}/new'
    assert_file(await client.mkdir(path), path, 'd')
    message = await failure(client.mkdir(path), 400)
    assert message == f"{FAILED.format(status=1)}mkdir: cannot create directory '{path}': File exists"
    assert_file(await client.mkdir(path, create_parents=True), path, 'd')


async def test_mkdir_parents(client: Client, remote_dir: str) -> None:
    path = f'{remote_dir}/a/b/c'
    message = await failure(client.mkdir(path), 404)
    assert message == f"{FAILED.format(status=1)}mkdir: cannot create directory '{path}': No such file or directory"
    assert_file(await client.mkdir(path, create_parents=True), path, 'd')


async def test_not_a_directory(sync: Client, tree: str) -> None:
    """An error the real server does not recognise is a 500."""
    message = await failure(sync.mkdir(f'{tree}/a.txt/sub', create_parents=True), 500)
    assert message == f"{FAILED.format(status=1)}mkdir: cannot create directory '{tree}/a.txt': Not a directory"


@pytest.mark.parametrize(
    ('options', 'expected'),
    [
        ({}, {'a.txt': '-', 'sub': 'd', 'link': 'l', 'dirlink': 'l'}),
        ({'show_hidden': True}, {'a.txt': '-', '.hidden': '-', 'sub': 'd', 'link': 'l', 'dirlink': 'l'}),
        ({'recursive': True}, {'a.txt': '-', 'sub': 'd', 'link': 'l', 'dirlink': 'l', 'sub/b.txt': '-'}),
        (
            {'recursive': True, 'show_hidden': True},
            {'a.txt': '-', '.hidden': '-', 'sub': 'd', 'link': 'l', 'dirlink': 'l', 'sub/b.txt': '-', 'sub/.h2': '-'},
        ),
        ({'dereference': True}, {'a.txt': '-', 'sub': 'd', 'link': '-', 'dirlink': 'd'}),
        (
            {'dereference': True, 'recursive': True},
            {'a.txt': '-', 'sub': 'd', 'link': '-', 'dirlink': 'd', 'sub/b.txt': '-', 'dirlink/b.txt': '-'},
        ),
    ],
)
async def test_ls_directory(sync: Client, tree: str, options: dict[str, bool], expected: dict[str, str]) -> None:
    """Entries are named by their names, those of subdirectories in a recursive listing by their relative paths."""
    entries = await sync.list_files(tree, **options)
    assert {entry['name']: entry['type'] for entry in entries} == expected
    for entry in entries:
        assert_file(entry, entry['name'], entry['type'])
    targets = {entry['name']: entry['linkTarget'] for entry in entries if entry['type'] == 'l'}
    assert targets == ({} if options.get('dereference') else {'link': f'{tree}/a.txt', 'dirlink': f'{tree}/sub'})


async def test_ls_entry_fields(client: Client, tree: str) -> None:
    by_name = {entry['name']: entry for entry in await client.list_files(tree)}
    assert (by_name['a.txt']['size'], by_name['a.txt']['permissions']) == (str(len(TEXT)), 'rw-r--r--')
    assert (by_name['link']['size'], by_name['link']['permissions']) == (str(len(f'{tree}/a.txt')), 'rwxrwxrwx')
    user = (await client.userinfo())['user']
    numeric = {entry['name']: entry for entry in await client.list_files(tree, numeric_uid=True)}
    assert (by_name['a.txt']['user'], numeric['a.txt']['user']) == (user['name'], user['id'])


@pytest.mark.parametrize(
    ('name', 'dereference', 'expected'),
    [
        ('a.txt', False, [('{path}', '-', None)]),
        ('link', False, [('{path}', 'l', '{tree}/a.txt')]),
        ('link', True, [('{path}', '-', None)]),
        ('dirlink', False, [('{path}', 'l', '{tree}/sub')]),
        ('dirlink', True, [('b.txt', '-', None)]),
    ],
)
async def test_ls_single_path(
    sync: Client, tree: str, name: str, dereference: bool, expected: list[tuple[str, str, str | None]]
) -> None:
    """A file or link listed itself is named by its full path; a link to a directory with dereference lists it."""
    path = f'{tree}/{name}'
    fill = {'path': path, 'tree': tree}
    assert [(e['name'], e['type'], e['linkTarget']) for e in await sync.list_files(path, dereference=dereference)] == [
        (entry_name.format(**fill), kind, target and target.format(**fill)) for entry_name, kind, target in expected
    ]


async def test_stat(client: Client, tree: str) -> None:
    regular = await client.stat(f'{tree}/a.txt')
    assert set(regular) == STAT_KEYS
    assert all(isinstance(value, int) for value in regular.values())
    assert stat.S_ISREG(regular['mode']) and regular['size'] == len(TEXT) and regular['nlink'] == 1
    link = await client.stat(f'{tree}/link')
    assert stat.S_ISLNK(link['mode']) and link['size'] == len(f'{tree}/a.txt')
    assert (await client.stat(f'{tree}/link', dereference=True))['ino'] == regular['ino']
    assert stat.S_ISDIR((await client.stat(f'{tree}/sub'))['mode'])


@pytest.mark.parametrize(
    ('method', 'message'),
    [
        ('list_files', "{failed2}ls: cannot access '{path}': No such file or directory"),
        ('stat', "{failed1}stat: cannot statx? '{path}': No such file or directory"),
        ('checksum', '{failed1}sha256sum: {path}: No such file or directory'),
        ('head', "{failed1}head: cannot open '{path}' for reading: No such file or directory"),
        ('tail', "{failed1}tail: cannot open '{path}' for reading: No such file or directory"),
        ('view', "{failed1}dd: failed to open '{path}': No such file or directory"),
        ('rm', "{failed1}rm: cannot remove '{path}': No such file or directory"),
    ],
)
async def test_missing_path(sync: Client, tree: str, method: str, message: str) -> None:
    """A missing path is 404 with the command's message, as the real server answers it (``file`` reports it itself)."""
    path = f'{tree}/missing'
    fill = {'path': re.escape(path), 'failed1': re.escape(FAILED.format(status=1))}
    fill['failed2'] = re.escape(FAILED.format(status=2))
    assert re.fullmatch(message.format(**fill), await failure(getattr(sync, method)(path), 404))


@pytest.mark.parametrize(
    ('method', 'message'),
    [
        ('head', "head: error reading '{path}'"),
        ('tail', "tail: error reading '{path}'"),
        ('view', "dd: error reading '{path}'"),
        ('checksum', 'sha256sum: {path}'),
    ],
)
async def test_directory_where_a_file_is_expected(sync: Client, tree: str, method: str, message: str) -> None:
    """``Is a directory`` is not among the errors the real server recognises: 500."""
    answer = await failure(getattr(sync, method)(tree), 500)
    assert answer.startswith(f'{FAILED.format(status=1)}{message.format(path=tree)}: Is a directory')


# --- names ---


@pytest.mark.parametrize('name', UPLOAD_NAMES)
async def test_names_through_upload(sync: Client, remote_dir: str, put: Put, name: str, tmp_path: Path) -> None:
    data = name.encode() * 3
    path = await put(sync, remote_dir, name, data)
    [entry] = await sync.list_files(remote_dir)
    assert_file(entry, name, '-')
    assert_file((await sync.list_files(path))[0], path, '-')
    assert (await sync.checksum(path))['checksum'] == hashlib.sha256(data).hexdigest()
    await sync.download(path, str(tmp_path / 'back'))
    assert (tmp_path / 'back').read_bytes() == data
    await sync.rm(path)
    assert await sync.list_files(remote_dir) == []


@pytest.mark.parametrize(('name', 'listed'), LINK_NAMES.items())
async def test_names_through_symlink(sync: Client, tree: str, remote_dir: str, name: str, listed: str) -> None:
    """Names come back from ``ls`` as the real server parses its C-quoted output: escapes kept."""
    path = f'{remote_dir}/{name}'
    answer = await sync.symlink(f'{tree}/a.txt', path)
    assert_file(answer['output'], f'{remote_dir}/{listed}', 'l')
    [entry] = await sync.list_files(remote_dir)
    assert (entry['name'], entry['linkTarget']) == (listed, f'{tree}/a.txt')
    assert (await sync.list_files(path))[0]['name'] == f'{remote_dir}/{listed}'


async def test_upload_name_with_double_quote_is_percent_encoded(sync: Client, remote_dir: str, put: Put) -> None:
    """httpx writes ``"`` in a part's file name as ``%22`` and the server (like the real one) keeps it verbatim."""
    await put(sync, remote_dir, 'say "hi"')
    assert [entry['name'] for entry in await sync.list_files(remote_dir)] == ['say %22hi%22']


# --- contents ---


@pytest.mark.parametrize(
    ('method', 'options', 'content', 'unit', 'positions'),
    [
        ('head', {}, b'l1\nl2\nl3\nl4\nl5\nl6\nl7\nl8\nl9\nl10\n', 'lines', (0, 10)),
        ('head', {'num_lines': 3}, b'l1\nl2\nl3\n', 'lines', (0, 3)),
        ('head', {'num_bytes': 5}, b'l1\nl2', 'bytes', (0, 5)),
        ('head', {'num_lines': 18, 'exclude_trailing': True}, b'l1\nl2\n', 'lines', (0, -18)),
        ('head', {'num_bytes': 50, 'exclude_trailing': True}, TEXT[:-50], 'bytes', (0, -50)),
        ('tail', {}, b'l11\nl12\nl13\nl14\nl15\nl16\nl17\nl18\nl19\nl20\n', 'lines', (10, -1)),
        ('tail', {'num_lines': 2}, b'l19\nl20\n', 'lines', (-2, -1)),
        ('tail', {'num_bytes': 4}, b'l20\n', 'bytes', (-4, -1)),
        ('tail', {'num_lines': 18, 'exclude_beginning': True}, b'l18\nl19\nl20\n', 'lines', (18, -1)),
        ('tail', {'num_bytes': 50, 'exclude_beginning': True}, TEXT[49:], 'bytes', (50, -1)),
    ],
)
async def test_head_and_tail(
    sync: Client,
    tree: str,
    method: str,
    options: dict[str, Any],
    content: bytes,
    unit: str,
    positions: tuple[int, int],
) -> None:
    """The positions are the real server's: the count, negative from the end, 10 (positive) without a count; ``tail``
    from line or byte N on (``+N``) starts at the N-th."""
    answer = await getattr(sync, method)(f'{tree}/a.txt', **options)
    start, end = positions
    assert answer == {'content': content.decode(), 'contentType': unit, 'startPosition': start, 'endPosition': end}


async def test_view_and_checksum(client: Client, tree: str) -> None:
    assert await client.view(f'{tree}/a.txt') == TEXT.decode()
    expected = {'algorithm': 'SHA256', 'checksum': hashlib.sha256(TEXT).hexdigest()}
    assert await client.checksum(f'{tree}/a.txt') == expected


async def test_undecodable_contents_are_replaced(sync: Client, remote_dir: str, put: Put) -> None:
    path = await put(sync, remote_dir, 'binary', b'ok\xff\xfe')
    assert await sync.view(path) == 'ok\ufffd\ufffd'
    assert (await sync.head(path, num_bytes=3))['content'] == 'ok\ufffd'


@pytest.mark.parametrize(
    ('name', 'expected'),
    [('a.txt', 'ASCII text'), ('sub', 'directory'), ('missing', "cannot open `{path}' (No such file or directory)")],
)
async def test_file_type(sync: Client, tree: str, name: str, expected: str) -> None:
    """``file`` reports a missing path itself, and the real server answers 200."""
    path = f'{tree}/{name}'
    assert await sync.file_type(path) == expected.format(path=path)


# --- chmod, chown, symlink, rm ---


async def test_chmod(client: Client, work: str) -> None:
    path = f'{work}/a.txt'
    assert_file(entry := await client.chmod(path, '750'), path, '-')
    assert entry['permissions'] == 'rwxr-x---'
    message = await failure(client.chmod(path, 'abc'), 500)
    assert message.startswith(f"{FAILED.format(status=1)}chmod: invalid mode: 'abc'")


async def test_chown(client: Client, work: str) -> None:
    path = f'{work}/a.txt'
    info = await client.userinfo()
    entry = await client.chown(path, info['user']['name'], info['group']['name'])
    assert_file(entry, path, '-')
    assert (entry['user'], entry['group']) == (info['user']['name'], info['group']['name'])
    message = await failure(client.chown(path, 'no-such-user-f7t', ''), 500)
    assert message == f"{FAILED.format(status=1)}chown: invalid spec: 'no-such-user-f7t:'"


async def test_symlink(client: Client, work: str) -> None:
    answer = await client.symlink(f'{work}/sub', f'{work}/link')
    assert answer['output']['linkTarget'] == f'{work}/sub'
    assert_file(answer['output'], f'{work}/link', 'l')
    message = await failure(client.symlink(f'{work}/sub', f'{work}/a.txt'), 400)
    assert message == f"{FAILED.format(status=1)}ln: failed to create symbolic link '{work}/a.txt': File exists"


async def test_rm(client: Client, work: str) -> None:
    """``rm`` removes a link (not its target) and a directory with its contents."""
    await client.symlink(f'{work}/a.txt', f'{work}/link')
    await client.rm(f'{work}/link')
    await client.rm(f'{work}/sub')
    assert [entry['name'] for entry in await client.list_files(work, show_hidden=True)] == ['a.txt']


# --- upload and download ---


async def test_upload_replaces(client: Client, work: str, put: Put, tmp_path: Path) -> None:
    """An upload replaces a file; onto a directory, the shell's redirection fails with a 500."""
    path = await put(client, work, 'a.txt', b'second')
    await client.download(path, str(tmp_path / 'back'))
    assert (tmp_path / 'back').read_bytes() == b'second'
    message = await failure(put(client, work, 'sub'), 500)
    assert message == f'{FAILED.format(status=1)}bash: line 1: {work}/sub: Is a directory'


async def test_upload_to_a_missing_directory(client: Client, remote_dir: str, put: Put) -> None:
    message = await failure(put(client, f'{remote_dir}/missing', 'a.txt'), 404)
    path = f'{remote_dir}/missing/a.txt'
    assert message == f'{FAILED.format(status=1)}bash: line 1: {path}: No such file or directory'


async def test_download_a_directory(client: Client, tree: str, tmp_path: Path) -> None:
    message = await failure(client.download(tree, str(tmp_path / 'back')), 500)
    assert message == f'{FAILED.format(status=1)}base64: read error: Is a directory'


async def test_download_a_missing_file(client: Client, tree: str, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        await client.download(f'{tree}/missing', str(tmp_path / 'back'))


SMALL_LIMIT = 3000
"""A direct-transfer limit for the tests of its edges."""
USABLE = (SMALL_LIMIT // 4 - 1) * 3
"""The largest file that a direct download of the real server answers: its base64 text is below the limit."""


@pytest.fixture
def small_limit(local_server: LocalFirecrest, client: Client) -> Iterator[int]:
    """A direct-transfer limit of :data:`SMALL_LIMIT` bytes, and a client that transfers files up to 3 times it
    directly."""
    client.raw.MAX_DIRECT_UPLOAD_SIZE = 3 * SMALL_LIMIT
    with setting(local_server, 'max_ops_file_size', SMALL_LIMIT):
        yield SMALL_LIMIT
    del client.raw.MAX_DIRECT_UPLOAD_SIZE  # back to the class's


@pytest.mark.local_server
@pytest.mark.parametrize('size', [USABLE, SMALL_LIMIT])
async def test_direct_upload_up_to_the_limit(
    client: Client, remote_dir: str, put: Put, small_limit: int, size: int
) -> None:
    """An upload is limited by its own size, checked before anything runs."""
    data = os.urandom(size)
    await put(client, remote_dir, 'file', data)
    assert Path(remote_dir, 'file').read_bytes() == data
    too_large = os.urandom(small_limit + 1)
    assert await failure(put(client, remote_dir, 'big', too_large), 413) == 'File to upload is too large.'


@pytest.mark.local_server
@pytest.mark.parametrize(
    ('size', 'status', 'message'),
    [
        (USABLE + 1, 413, 'Command output exceeded buffer limit.'),
        (SMALL_LIMIT, 413, 'Command output exceeded buffer limit.'),
        (SMALL_LIMIT + 1, 500, "('Channel not open for sending',)"),
        (2 * SMALL_LIMIT + 1, 408, 'Command execution timeout limit exceeded.'),
    ],
)
async def test_direct_download_above_the_usable_size(
    sync: Client, remote_dir: str, small_limit: int, size: int, status: int, message: str, tmp_path: Path
) -> None:
    """The base64 text of the file goes through the limit: a file of about 3/4 of it is the largest that comes back;
    up to the limit the answer is a quick 413, above it the answer waits the command timeout."""
    Path(remote_dir, 'file').write_bytes(os.urandom(size))
    assert await failure(sync.download(f'{remote_dir}/file', str(tmp_path / 'back')), status) == message


@pytest.mark.local_server
async def test_direct_download_of_the_usable_size(
    sync: Client, remote_dir: str, small_limit: int, tmp_path: Path
) -> None:
    data = os.urandom(USABLE)
    Path(remote_dir, 'file').write_bytes(data)
    await sync.download(f'{remote_dir}/file', str(tmp_path / 'back'))
    assert (tmp_path / 'back').read_bytes() == data


# --- compress and extract ---


@pytest.mark.parametrize('compression', ['none', 'gzip', 'bzip2', 'xz'])
async def test_compress_and_extract(sync: Client, tree: str, remote_dir: str, compression: str) -> None:
    await sync.compress(f'{tree}/sub', f'{remote_dir}/archive', compression=compression)
    await sync.extract(f'{remote_dir}/archive', remote_dir, compression=compression)
    entries = await sync.list_files(f'{remote_dir}/sub', show_hidden=True)
    assert {entry['name'] for entry in entries} == {'b.txt', '.h2'}
    assert await sync.view(f'{remote_dir}/sub/b.txt') == 'b'


@pytest.mark.parametrize(('dereference', 'kind'), [(False, 'l'), (True, '-')])
async def test_compress_dereference(sync: Client, tree: str, remote_dir: str, dereference: bool, kind: str) -> None:
    await sync.compress(tree, f'{remote_dir}/tree.tgz', dereference=dereference)
    await sync.extract(f'{remote_dir}/tree.tgz', remote_dir)
    entries = await sync.list_files(f'{remote_dir}/{Path(tree).name}')
    assert {entry['name']: entry['type'] for entry in entries} == {
        'a.txt': '-',
        'sub': 'd',
        'link': kind,
        'dirlink': 'd' if dereference else 'l',
    }


@pytest.mark.parametrize('compression', ['none', 'gzip', 'xz'])
async def test_compress_match_pattern(sync: Client, tree: str, remote_dir: str, compression: str) -> None:
    """With a pattern, ``find`` runs in the parent of the source and matches ``./<source name>/...``, and the archive
    is gzip whatever the compression asked for, as on the real server."""
    name = Path(tree).name
    await sync.compress(tree, f'{remote_dir}/txt.tar', match_pattern=rf'\./{name}/.*\.txt', compression=compression)
    await sync.extract(f'{remote_dir}/txt.tar', remote_dir, compression='gzip')
    entries = await sync.list_files(remote_dir, recursive=True, show_hidden=True)
    expected = ['txt.tar', name, f'{name}/a.txt', f'{name}/sub', f'{name}/sub/b.txt']
    assert sorted(entry['name'] for entry in entries) == sorted(expected)


async def test_compress_and_extract_failures(client: Client, tree: str, remote_dir: str) -> None:
    message = await failure(client.compress(f'{tree}/missing', f'{remote_dir}/a.tgz'), 404)
    assert message.startswith(f'{FAILED.format(status=2)}tar: missing: Cannot stat: No such file or directory')
    message = await failure(client.extract(f'{tree}/missing.tgz', remote_dir), 404)
    assert f'{tree}/missing.tgz: Cannot open: No such file or directory' in message
    message = await failure(client.compress(tree, f'{remote_dir}/a.tgz', compression='rar'), 400)
    assert message.startswith('1 validation error:')


# --- the system, path confinement, permissions and timeouts ---


async def test_unknown_system(client: Client, tree: str) -> None:
    client.system = 'no-such-system'
    assert await failure(client.list_files(tree), 404) == 'System not found'


OUTSIDE = (
    'The provided path ({path}) does not match any of the defined filesystem paths for the requested system ({system}).'
)
NOT_ABSOLUTE = 'The provided path ({path}) is not an absolute path.'
CONFINED_CALLS: dict[str, Callable[[Client, str], Awaitable[Any]]] = {
    'ls': lambda client, path: client.list_files(path),
    'stat': lambda client, path: client.stat(path),
    'file': lambda client, path: client.file_type(path),
    'checksum': lambda client, path: client.checksum(path),
    'head': lambda client, path: client.head(path),
    'tail': lambda client, path: client.tail(path),
    'view': lambda client, path: client.view(path),
    'mkdir': lambda client, path: client.mkdir(path),
    'chmod': lambda client, path: client.chmod(path, '700'),
    'chown': lambda client, path: client.chown(path, 'root', ''),
    'symlink': lambda client, path: client.symlink(path, path),
    'rm': lambda client, path: client.rm(path),
    'compress': lambda client, path: client.compress(path, path),
    'extract': lambda client, path: client.extract(path, path),
}


@pytest.mark.local_server
@pytest.mark.parametrize('endpoint', CONFINED_CALLS)
async def test_path_confinement(sync: Client, local_server: LocalFirecrest, endpoint: str) -> None:
    """Paths outside the roots (also through ``..``, or in a sibling with the root's name as prefix) and relative
    paths are refused with the real server's 400 messages, which name the normalised path."""
    root = local_server.root
    cases = {
        '/etc': OUTSIDE,
        f'{root}/../etc': OUTSIDE,
        f'{root}/../../{root}-sibling': OUTSIDE,
        'relative/path': NOT_ABSOLUTE,
    }
    for path, message in cases.items():
        answer = await failure(CONFINED_CALLS[endpoint](sync, path), 400)
        assert answer == message.format(path=os.path.normpath(path), system=sync.system)


@pytest.mark.local_server
async def test_path_confinement_of_uploads(
    client: Client, local_server: LocalFirecrest, remote_dir: str, put: Put
) -> None:
    """The target directory of an upload is confined, and so is the path the part's file name makes of it."""
    assert await failure(put(client, '/etc', 'passwd'), 400) == OUTSIDE.format(path='/etc', system=client.system)
    escape = '../' * len(Path(remote_dir).parts) + 'etc/passwd'
    message = await failure(put(client, remote_dir, escape), 400)
    assert message == OUTSIDE.format(path=os.path.normpath(f'{remote_dir}/{escape}'), system=client.system)


@pytest.fixture
def immutable(local_server: LocalFirecrest, remote_dir: str) -> Iterator[str]:
    """A file that not even root may delete (``chattr +i``); skips where the file system has no such attribute."""
    path = Path(remote_dir, 'immutable')
    path.write_text('fixed')
    if subprocess.run(['chattr', '+i', str(path)], capture_output=True, check=False).returncode != 0:
        pytest.skip('chattr +i is not available here')
    yield str(path)
    subprocess.run(['chattr', '-i', str(path)], check=True)


@pytest.mark.local_server
async def test_operation_not_permitted(client: Client, immutable: str) -> None:
    message = await failure(client.rm(immutable), 403)
    assert message == f"{FAILED.format(status=1)}rm: cannot remove '{immutable}': Operation not permitted"


@pytest.mark.local_server
@pytest.mark.skipif(os.geteuid() == 0, reason='root may read any directory')
async def test_permission_denied(sync: Client, local_server: LocalFirecrest, remote_dir: str) -> None:
    closed = f'{remote_dir}/closed'
    await sync.mkdir(closed)
    await sync.chmod(closed, '000')
    try:
        message = await failure(sync.list_files(closed), 403)
    finally:
        await sync.chmod(closed, '700')
    assert message == f"{FAILED.format(status=2)}ls: cannot open directory '{closed}': Permission denied"


@pytest.mark.local_server
async def test_command_timeout(sync: Client, local_server: LocalFirecrest, remote_dir: str) -> None:
    """A command outlasting the server's timeout is killed and answered 408, whence clients fall back to jobs."""
    fifo = f'{remote_dir}/fifo'
    os.mkfifo(fifo)  # reading it blocks until a writer comes, and none does
    with setting(local_server, 'command_timeout', 0.3):
        message = await failure(sync.head(fifo), 408)
    assert message == 'Command execution timeout limit exceeded.'


# --- the parsing of ``ls`` ---

LS_LINE = '-rw-r--r-- 1 me us 16 2026-11-23T19:38:51 {name}'


@pytest.mark.parametrize(
    ('printed', 'real', 'decoded'),
    [
        (r'"a b"', 'a b', 'a b'),
        (r'"back\\slash"', 'back\\slash', 'back\\slash'),
        (r'"q\"uote"', 'q"uote', 'q"uote'),
        (r'"new\nline\ttab"', r'new\nline\ttab', 'new\nline\ttab'),
        (r'"\303\251t\303\251"', r'\303\251t\303\251', 'été'),
        (r'"bad\377"', r'bad\377', 'bad\ufffd'),
        ('"colon:"', 'colon:', 'colon:'),
    ],
)
def test_parse_c_quoted_names(printed: str, real: str, decoded: str) -> None:
    """The real server's :func:`shlex.split` undoes ``\\"`` and ``\\\\`` only; the kind parsing decodes everything."""
    assert [entry['name'] for entry in listing.parse_ls(LS_LINE.format(name=printed))] == [real]
    assert [entry['name'] for entry in listing.parse_ls(LS_LINE.format(name=printed), decode=True)] == [decoded]


def test_parse_recursive_listing() -> None:
    output = """"/r/a b":
total 8
drwxr-xr-x 2 me us 4096 2026-11-23T19:38:51 "s\\t1"
lrwxrwxrwx 1 me us 3 2026-11-23T19:38:51 "l -> x" -> "s\\t1"
crw-r--r-- 1 me us 5, 1 2026-11-23T19:38:51 "device"

"/r/a b/s\\t1":
total 0
prw-r--r-- 1 me us 0 2026-11-23T19:38:51 "fifo:"
"""
    entries = listing.parse_ls(output)
    assert [(entry['name'], entry['type'], entry['linkTarget']) for entry in entries] == [
        ('s\\t1', 'd', None),
        ('l -> x', 'l', 's\\t1'),
        ('s\\t1/fifo:', 'p', None),
    ]


# --- the contract ---

OPS_ENDPOINTS = {
    'GET': ['ls', 'stat', 'file', 'checksum', 'head', 'tail', 'view', 'download'],
    'POST': ['mkdir', 'symlink', 'upload', 'compress', 'extract'],
    'PUT': ['chmod', 'chown'],
    'DELETE': ['rm'],
}


def test_every_ops_endpoint_was_validated(
    response_validator: ResponseValidator, firecrest_config: dict[str, Any]
) -> None:
    """Runs last: every ops endpoint answered JSON (a result or an error) that the specification accepted."""
    system = firecrest_config['compute_resource']
    expected = {
        f'{method} /filesystem/{system}/ops/{name}' for method, names in OPS_ENDPOINTS.items() for name in names
    }
    assert expected <= set(response_validator.validated), expected - set(response_validator.validated)
