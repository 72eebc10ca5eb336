"""The ``/filesystem/{system_name}/transfer`` routes through pyfirecrest's sync and async clients.

Each operation runs as a real job of the server's backend, and pyfirecrest judges it as with the real server: it waits
for the job, then reads its output log (``ops/view``) for the success line. ``rm``, ``compress`` and ``extract`` reach
their transfer routes only after a direct operation timed out (408); the tests call them as pyfirecrest does then, with
its own request methods.
"""

from __future__ import annotations

import hashlib
import math
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from firecrest.FirecrestException import TransferJobFailedException, UnexpectedStatusException
from firecrest.v2 import AsyncFirecrest, Firecrest

from aiida_firecrest.server import LocalFirecrest
from tests.conftest import make_sync_client
from tests.openapi_contract import ResponseValidator
from tests.server.conftest import realism

SYSTEM = 'cluster'
STAGED_SIZE = 20 * 1024 * 1024
"""Above both pyfirecrest's direct limit (1 MiB) and the server's (5 MiB): always staged, in 3 parts of 8 MiB."""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope='module')
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp('staged') / 'big.bin'
    path.write_bytes(os.urandom(STAGED_SIZE))
    return path


@pytest.fixture(scope='module')
def server_without_s3(external_config: dict[str, Any] | None) -> Iterator[LocalFirecrest]:
    if external_config is not None:
        pytest.skip('needs the local server')
    with LocalFirecrest(staging=False) as server:
        yield server


async def run_transfer_job(client: AsyncFirecrest, method: str, operation: str, **request: Any) -> dict[str, Any]:
    """Call a transfer route as pyfirecrest does after a direct operation timed out, and wait for its job."""
    endpoint = f'/filesystem/{SYSTEM}/transfer/{operation}'
    if method == 'DELETE':
        answer = client._check_response(await client._delete_request(endpoint=endpoint, params=request), 200)
    else:
        answer = client._check_response(await client._post_request(endpoint=endpoint, json_data=request), 201)
    await client._wait_for_transfer_job(answer)
    return answer


def test_copy_and_move(backend_sync_client: Firecrest, job_dir: Path) -> None:
    (job_dir / 'tree' / 'sub').mkdir(parents=True)
    (job_dir / 'tree' / 'sub' / 'file.txt').write_text('content')
    (job_dir / 'tree' / 'link').symlink_to('sub/file.txt')
    answer = backend_sync_client.cp(SYSTEM, str(job_dir / 'tree'), str(job_dir / 'copy'))
    assert (job_dir / 'copy' / 'sub' / 'file.txt').read_text() == 'content'
    assert (job_dir / 'copy' / 'link').is_symlink()
    backend_sync_client.cp(SYSTEM, str(job_dir / 'tree' / 'link'), str(job_dir / 'deref.txt'), dereference=True)
    assert not (job_dir / 'deref.txt').is_symlink()
    assert (job_dir / 'deref.txt').read_text() == 'content'
    backend_sync_client.mv(SYSTEM, str(job_dir / 'copy'), str(job_dir / 'moved'))
    assert not (job_dir / 'copy').exists()
    assert (job_dir / 'moved' / 'sub' / 'file.txt').read_text() == 'content'

    transfer_job = answer['transferJob']
    assert transfer_job['system'] == SYSTEM
    assert set(transfer_job['logs']) == {'outputLog', 'errorLog'}
    assert 'Files were successfully copied.' in Path(transfer_job['logs']['outputLog']).read_text()
    (job,) = backend_sync_client.job_info(SYSTEM, transfer_job['jobId'])
    assert (job['name'], job['status']['state'], job['time']['limit']) == ('CopyFiles', 'COMPLETED', 900)


async def test_failed_copy(async_client: AsyncFirecrest, local_dir: Path) -> None:
    with pytest.raises(TransferJobFailedException) as info:
        await async_client.cp(SYSTEM, str(local_dir / 'missing'), str(local_dir / 'copy'))
    transfer_job = info.value._transfer_job_info['transferJob']  # the exception has no public accessor
    logs = transfer_job['logs']
    assert 'successfully' not in Path(logs['outputLog']).read_text()
    assert 'No such file or directory' in Path(logs['errorLog']).read_text()
    (job,) = await async_client.job_info(SYSTEM, transfer_job['jobId'])
    assert job['status']['state'] == 'FAILED'
    assert job['status']['exitCode'] == 1


async def test_remove_compress_extract(async_client: AsyncFirecrest, local_dir: Path) -> None:
    source = local_dir / 'data'
    (source / 'sub').mkdir(parents=True)
    (source / 'a.txt').write_text('a')
    (source / 'b.log').write_text('b')
    (source / 'sub' / 'c.txt').write_text('c')
    archive = local_dir / 'data.tar.gz'
    request = {'source_path': str(source), 'target_path': str(archive), 'dereference': False, 'compression': 'gzip'}
    await run_transfer_job(async_client, 'POST', 'compress', **request, match_pattern=None)
    with tarfile.open(archive) as tar:
        assert {'data/a.txt', 'data/b.log', 'data/sub/c.txt'} <= set(tar.getnames())

    only_txt = local_dir / 'txt.tar.xz'
    request = {**request, 'target_path': str(only_txt), 'compression': 'xz', 'match_pattern': r'.*\.txt'}
    await run_transfer_job(async_client, 'POST', 'compress', **request)
    with tarfile.open(only_txt) as tar:
        assert sorted(tar.getnames()) == ['./data/a.txt', './data/sub/c.txt']  # find runs in the parent

    target = local_dir / 'extracted'
    target.mkdir()
    await run_transfer_job(
        async_client, 'POST', 'extract', source_path=str(archive), target_path=str(target), compression='gzip'
    )
    assert (target / 'data' / 'sub' / 'c.txt').read_text() == 'c'

    await run_transfer_job(async_client, 'DELETE', 'rm', path=str(source))
    assert not source.exists()
    with pytest.raises(TransferJobFailedException):
        await run_transfer_job(async_client, 'DELETE', 'rm', path=str(source))


def test_paths_are_confined(sync_client: Firecrest, local_dir: Path) -> None:
    with pytest.raises(UnexpectedStatusException) as info:
        sync_client.cp(SYSTEM, str(local_dir), '/etc/copy')
    assert info.value.responses[-1].status_code == 400
    assert 'does not match any of the defined filesystem paths' in info.value.responses[-1].json()['message']
    with pytest.raises(UnexpectedStatusException) as info:
        sync_client.mv(SYSTEM, 'relative/path', str(local_dir / 'x'))
    assert info.value.responses[-1].status_code == 400
    assert 'is not an absolute path' in info.value.responses[-1].json()['message']


def test_staged_upload_and_download(sync_client: Firecrest, local_dir: Path, big_file: Path, tmp_path: Path) -> None:
    upload = sync_client.upload(SYSTEM, str(big_file), str(local_dir), 'big.bin')
    assert upload is not None
    directives = upload.transfer_data['transferDirectives']
    assert len(directives['partsUploadUrls']) == math.ceil(STAGED_SIZE / directives['maxPartSize']) == 3
    assert sha256(local_dir / 'big.bin') == sha256(big_file)
    assert [path.name for path in local_dir.iterdir()] == ['big.bin'], 'the temporary file is gone'

    download = sync_client.download(SYSTEM, str(local_dir / 'big.bin'), str(tmp_path / 'back.bin'))
    assert download is not None
    assert sha256(tmp_path / 'back.bin') == sha256(big_file)
    for transfer, name in ((upload, 'IngressFileTransfer'), (download, 'OutgressFileTransfer')):
        (job,) = sync_client.job_info(SYSTEM, transfer.transfer_data['transferJob']['jobId'])  # not the list: its gap
        assert job['name'] == name


async def test_staged_transfers_async(async_client: AsyncFirecrest, local_dir: Path, big_file: Path) -> None:
    await async_client.upload(SYSTEM, str(big_file), str(local_dir), 'big.bin')
    assert sha256(local_dir / 'big.bin') == sha256(big_file)
    await async_client.download(SYSTEM, str(local_dir / 'big.bin'), str(local_dir / 'back.bin'))
    assert sha256(local_dir / 'back.bin') == sha256(big_file)


async def test_small_file_staged(async_client: AsyncFirecrest, local_dir: Path, tmp_path: Path) -> None:
    """A file below every direct limit, staged all the same (in one part) when the client says so."""
    async_client.MAX_DIRECT_UPLOAD_SIZE = 0
    (tmp_path / 'small.txt').write_text('small content\n')
    upload = await async_client.upload(SYSTEM, str(tmp_path / 'small.txt'), str(local_dir), 'small.txt')
    assert upload is not None
    assert len(upload.transfer_data['transferDirectives']['partsUploadUrls']) == 1
    assert (local_dir / 'small.txt').read_text() == 'small content\n'
    await async_client.download(SYSTEM, str(local_dir / 'small.txt'), str(tmp_path / 'back.txt'))
    assert (tmp_path / 'back.txt').read_text() == 'small content\n'


async def test_upload_request_as_the_spec_words_it(async_client: AsyncFirecrest, local_dir: Path) -> None:
    """The spec's ``sourcePath`` and camelCase directives work as well as pyfirecrest's ``path`` and snake_case."""
    request = {'sourcePath': str(local_dir / 'x.bin'), 'transferDirectives': {'transferMethod': 's3', 'fileSize': 17}}
    response = await async_client._post_request(endpoint=f'/filesystem/{SYSTEM}/transfer/upload', json_data=request)
    answer = async_client._check_response(response, 201)
    assert answer['transferDirectives']['transferMethod'] == 's3'
    assert len(answer['transferDirectives']['partsUploadUrls']) == 1
    await async_client.cancel_job(SYSTEM, answer['transferJob']['jobId'])


def test_staged_transfers_need_s3(server_without_s3: LocalFirecrest, tmp_path: Path) -> None:
    client = make_sync_client(server_without_s3.client_config(), ResponseValidator(server_without_s3.url))
    try:
        client.MAX_DIRECT_UPLOAD_SIZE = 0
        workdir = Path(server_without_s3.client_config()['workdir'])
        (tmp_path / 'small.txt').write_text('small')
        (workdir / 'remote.txt').write_text('remote')
        with pytest.raises(UnexpectedStatusException) as upload:
            client.upload(SYSTEM, str(tmp_path / 'small.txt'), str(workdir), 'small.txt')
        with pytest.raises(UnexpectedStatusException) as download:
            client.download(SYSTEM, str(workdir / 'remote.txt'), str(tmp_path / 'back.txt'))
        for info in (upload, download):
            assert info.value.responses[-1].status_code == 503
            assert 'no S3 staging area' in info.value.responses[-1].json()['message']
    finally:
        client.close_session()


@pytest.mark.slurm
def test_staged_transfers_through_slurm(
    slurm_sync_client: Firecrest, slurm_server: LocalFirecrest, big_file: Path
) -> None:
    workdir = Path(slurm_server.client_config()['workdir'])
    upload = slurm_sync_client.upload(SYSTEM, str(big_file), str(workdir), 'big.bin')
    assert upload is not None
    assert sha256(workdir / 'big.bin') == sha256(big_file)
    slurm_sync_client.download(SYSTEM, str(workdir / 'big.bin'), str(workdir / 'back.bin'))
    assert sha256(workdir / 'back.bin') == sha256(big_file)
    (job,) = slurm_sync_client.job_info(SYSTEM, upload.transfer_data['transferJob']['jobId'])
    assert (job['name'], job['status']['state']) == ('IngressFileTransfer', 'COMPLETED')


@pytest.mark.parametrize(
    ('name', 'escaped'),
    [("it's", 'it&#39;s'), ('a&b', 'a&amp;b'), ('say "hi"', 'say &#34;hi&#34;'), ('<x>', '&lt;x&gt;')],
)
def test_job_paths_are_html_escaped(sync_client: Firecrest, local_dir: Path, name: str, escaped: str) -> None:
    """As the real server renders its job scripts with autoescaping, a copy job acts on the escaped names."""
    (local_dir / escaped).write_text('escaped')
    sync_client.cp(SYSTEM, str(local_dir / name), str(local_dir / f'copy-{name}'))
    assert (local_dir / f'copy-{escaped}').read_text() == 'escaped'
    assert not (local_dir / f'copy-{name}').exists()


def test_job_paths_as_given_when_switched_off(sync_client: Firecrest, local_server: LocalFirecrest, local_dir: Path):
    """The kind switches: paths neither escaped nor able to break their quotes."""
    name = 'it\'s & "quoted" <x>'
    (local_dir / name).write_text('as given')
    with realism(local_server, html_escaped_job_paths=False, shell_quoting=False):
        sync_client.cp(SYSTEM, str(local_dir / name), str(local_dir / f'copy {name}'))
    assert (local_dir / f'copy {name}').read_text() == 'as given'
