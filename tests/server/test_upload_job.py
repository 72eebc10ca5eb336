"""The transfer job of a staged upload does what the real server's does (``job_s3_downloader.sh``), defects included:
it removes the file it replaces once the object is there, appends the object part by part under the final name, leaves
what it wrote when a part fails, ignores errors writing a part, and checks for the object at intervals."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest
from firecrest.v2 import Firecrest

from aiida_firecrest.server import LocalFirecrest
from aiida_firecrest.server.jobs import s3_copy
from aiida_firecrest.server.jobs.s3_copy import object_exists
from aiida_firecrest.server.staging import Staging

pytestmark = pytest.mark.local_server

SYSTEM = 'cluster'


@pytest.fixture
def three_parts(local_server: LocalFirecrest, tmp_path: Path) -> bytes:
    """The content of a file of two full parts and a shorter third, in ``tmp_path / 'source.bin'``."""
    assert local_server.settings.s3 is not None
    data = os.urandom(2 * local_server.settings.s3.max_part_size + 1000)
    (tmp_path / 'source.bin').write_bytes(data)
    return data


def test_the_object_is_written_part_by_part(
    staged_client: Firecrest, local_dir: Path, tmp_path: Path, three_parts: bytes
) -> None:
    (local_dir / 'target.bin').write_bytes(b'the old content')
    staged_client.upload(SYSTEM, str(tmp_path / 'source.bin'), str(local_dir), 'target.bin')
    assert (local_dir / 'target.bin').read_bytes() == three_parts
    assert os.listdir(local_dir) == ['target.bin']


@pytest.mark.usefixtures('upload_job_fails_at_part_two')
def test_a_failed_part_leaves_the_parts_before_it_under_the_final_name(
    staged_client: Firecrest, local_server: LocalFirecrest, local_dir: Path, tmp_path: Path, three_parts: bytes
) -> None:
    """The file it replaces is gone, the first part is there, and the second part's file holds the error's body."""
    assert local_server.settings.s3 is not None
    part_size = local_server.settings.s3.max_part_size
    (local_dir / 'target.bin').write_bytes(b'the old content')
    with pytest.raises(Exception, match='Transfer job failed'):
        staged_client.upload(SYSTEM, str(tmp_path / 'source.bin'), str(local_dir), 'target.bin')
    assert (local_dir / 'target.bin').read_bytes() == three_parts[:part_size]
    assert b'InternalError' in (local_dir / 'target.bin.2').read_bytes()


def test_an_error_writing_a_part_is_ignored(
    staged_client: Firecrest, local_server: LocalFirecrest, local_dir: Path, tmp_path: Path, three_parts: bytes
) -> None:
    """The job succeeds without the part it could not write (``curl`` and ``cat`` fail, the script goes on)."""
    assert local_server.settings.s3 is not None
    part_size = local_server.settings.s3.max_part_size
    (local_dir / 'target.bin.2').mkdir()
    staged_client.upload(SYSTEM, str(tmp_path / 'source.bin'), str(local_dir), 'target.bin')
    assert (local_dir / 'target.bin').read_bytes() == three_parts[:part_size] + three_parts[2 * part_size :]


def test_a_directory_as_target_fails_the_job(
    staged_client: Firecrest, local_dir: Path, tmp_path: Path, three_parts: bytes
) -> None:
    (local_dir / 'target.bin').mkdir()
    with pytest.raises(Exception, match='Transfer job failed'):
        staged_client.upload(SYSTEM, str(tmp_path / 'source.bin'), str(local_dir), 'target.bin')
    assert os.listdir(local_dir / 'target.bin') == []


async def test_the_object_is_looked_for_at_intervals(
    local_server: LocalFirecrest, local_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An object completed after a check is found at the next one, ``check_interval`` later."""
    s3 = local_server.settings.s3
    assert s3 is not None
    name = f'late-{uuid.uuid4().hex}.bin'
    staged = await Staging(s3).prepare_upload('user', name, 10)
    client = s3.client()
    uploads = client.list_multipart_uploads(Bucket=s3.bucket)['Uploads']
    [upload] = [upload for upload in uploads if upload['Key'].endswith(f'/{name}')]
    checks = []

    def exists_then_complete(head_url: str) -> bool:
        """Check, and complete the multipart upload right after the first check found nothing."""
        checks.append(time.monotonic())
        found = object_exists(head_url)
        if len(checks) == 1:
            part = client.upload_part(
                Bucket=s3.bucket, Key=upload['Key'], UploadId=upload['UploadId'], PartNumber=1, Body=b'0123456789'
            )
            client.complete_multipart_upload(
                Bucket=s3.bucket,
                Key=upload['Key'],
                UploadId=upload['UploadId'],
                MultipartUpload={'Parts': [{'ETag': part['ETag'], 'PartNumber': 1}]},
            )
        return found

    monkeypatch.setattr(s3_copy, 'object_exists', exists_then_complete)
    target = local_dir / 'late.bin'
    s3_copy.fetch(
        staged.head_url,
        staged.get_url,
        staged.delete_url,
        staged.abort_url,
        str(target),
        wait=10.0,
        check_interval=1.5,
        part_size=s3.max_part_size,
    )
    assert len(checks) == 2
    assert checks[1] - checks[0] >= 1.5
    assert target.read_bytes() == b'0123456789'
