"""Staged objects do not accumulate in the local server's S3 store: consumed uploads are deleted by their job, an
abandoned multipart upload is aborted, and the bucket's lifecycle removes downloads once they expired."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from firecrest.v2 import Firecrest

from aiida_firecrest.pytest_plugin import UPLOAD_CHECK_INTERVAL
from aiida_firecrest.server import LocalFirecrest, ServerSettings
from aiida_firecrest.server.jobs.s3_copy import CopyError, fetch
from aiida_firecrest.server.s3 import SeaweedFS
from aiida_firecrest.server.settings import S3Settings
from aiida_firecrest.server.staging import Staging
from tests.conftest import make_sync_client
from tests.server.conftest import wait_until

pytestmark = pytest.mark.local_server

SYSTEM = 'cluster'
LIFETIME = 10.0
"""The lifetime of staged objects on the server of the traffic test: more than a download of them takes."""


def staged_keys(s3: S3Settings, name: str) -> list[str]:
    """Return the keys of the staged objects and open multipart uploads of files named ``name``."""
    client = s3.client()
    objects = client.list_objects_v2(Bucket=s3.bucket).get('Contents', [])
    uploads = client.list_multipart_uploads(Bucket=s3.bucket).get('Uploads', [])
    return [item['Key'] for item in [*objects, *uploads] if item['Key'].endswith(f'/{name}')]


def test_a_consumed_upload_leaves_nothing_staged(
    local_server: LocalFirecrest, staged_client: Firecrest, local_dir: Path, tmp_path: Path
) -> None:
    assert local_server.settings.s3 is not None
    (tmp_path / 'consumed.txt').write_text('consumed')
    staged_client.upload(SYSTEM, str(tmp_path / 'consumed.txt'), str(local_dir), 'consumed.txt')
    assert (local_dir / 'consumed.txt').read_text() == 'consumed'
    assert staged_keys(local_server.settings.s3, 'consumed.txt') == []


async def test_an_upload_that_never_comes_is_aborted(local_server: LocalFirecrest, local_dir: Path) -> None:
    """The transfer job gives up after its wait, and aborts the multipart upload (its parts would stay)."""
    s3 = local_server.settings.s3
    assert s3 is not None
    staged = await Staging(s3).prepare_upload('user', 'abandoned.bin', 10)
    assert len(staged_keys(s3, 'abandoned.bin')) == 1
    with pytest.raises(CopyError, match='did not appear'):
        fetch(
            staged.head_url,
            staged.get_url,
            staged.delete_url,
            staged.abort_url,
            str(local_dir / 'x'),
            wait=0.3,
            check_interval=0.1,
            part_size=s3.max_part_size,
        )
    assert staged_keys(s3, 'abandoned.bin') == []


async def test_the_sweep_removes_what_is_older_than_the_lifetime(local_server: LocalFirecrest) -> None:
    s3 = local_server.settings.s3
    assert s3 is not None
    await Staging(s3).prepare_upload('user', 'started.bin', 10)
    s3.client().put_object(Bucket=s3.bucket, Key='user/0/written.bin', Body=b'written')
    assert await Staging(s3).sweep() == 0, 'both are younger than the lifetime'
    assert await Staging(dataclasses.replace(s3, object_lifetime=0.0)).sweep() >= 2
    assert staged_keys(s3, 'started.bin') == staged_keys(s3, 'written.bin') == []


@pytest.mark.parametrize(('url_lifetime', 'object_lifetime', 'expiry'), [(3600, None, 7200.0), (3600, 5.0, 5.0)])
def test_expiry(url_lifetime: int, object_lifetime: float | None, expiry: float) -> None:
    settings = S3Settings('http://s3', 'key', 'secret', url_lifetime=url_lifetime, object_lifetime=object_lifetime)
    assert settings.expiry == expiry


@pytest.fixture(scope='module')
def lifecycle_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFirecrest]:
    """A server of its own whose staged objects live :data:`LIFETIME` seconds, swept twice a second."""
    with SeaweedFS(tmp_path_factory.mktemp('s3')) as started:
        s3 = dataclasses.replace(started, object_lifetime=LIFETIME, sweep_interval=0.5)
        settings = ServerSettings(
            roots=[tmp_path_factory.mktemp('lifecycle')], s3=s3, upload_check_interval=UPLOAD_CHECK_INTERVAL
        )
        with LocalFirecrest(settings) as server:
            yield server


def test_the_lifecycle_removes_a_download_once_expired(lifecycle_server: LocalFirecrest, tmp_path: Path) -> None:
    """The server cannot see when the client's download ends: the object stays until it expires, then goes."""
    s3 = lifecycle_server.settings.s3
    assert s3 is not None
    size = lifecycle_server.settings.max_ops_file_size + 1  # over the direct limit: staged
    (lifecycle_server.root / 'expiring.bin').write_bytes(os.urandom(size))
    client = make_sync_client(lifecycle_server.client_config())
    try:
        client.download(SYSTEM, str(lifecycle_server.root / 'expiring.bin'), str(tmp_path / 'back.bin'))
    finally:
        client.close_session()
    assert (tmp_path / 'back.bin').stat().st_size == size
    assert len(staged_keys(s3, 'expiring.bin')) == 1
    s3.object_lifetime = 1.0  # read by every sweep
    try:
        wait_until(lambda: staged_keys(s3, 'expiring.bin') == [], timeout=LIFETIME, what='the download to expire')
    finally:
        s3.object_lifetime = LIFETIME


@pytest.mark.slow
def test_staged_traffic_beyond_the_old_capacity(lifecycle_server: LocalFirecrest, tmp_path: Path) -> None:
    """1.5 GiB through the staging area, up and down, more than the store held before it removed objects (1 GiB
    volumes, 8 at most); the bucket is empty once the downloads expired."""
    s3 = lifecycle_server.settings.s3
    assert s3 is not None
    source = tmp_path / 'traffic.bin'
    source.write_bytes(os.urandom(128 * 1024 * 1024))
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    client = make_sync_client(lifecycle_server.client_config())
    try:
        for round_trip in range(6):
            client.upload(SYSTEM, str(source), str(lifecycle_server.root), 'traffic.bin')
            back = tmp_path / f'back-{round_trip}.bin'
            client.download(SYSTEM, str(lifecycle_server.root / 'traffic.bin'), str(back))
            assert hashlib.sha256(back.read_bytes()).hexdigest() == digest
            back.unlink()
    finally:
        client.close_session()
    wait_until(lambda: staged_keys(s3, 'traffic.bin') == [], timeout=3 * LIFETIME, what='the downloads to expire')
