"""The S3 staging area of large transfers: its bucket, multipart uploads and presigned URLs.

Staged transfers go through S3 as on the real server: for an upload, the client PUTs the parts of a multipart upload
the server created and completes it, and a transfer job moves the object to the cluster; for a download, a transfer job
PUTs the file to S3 and the client GETs it. Everything reaches S3 through presigned URLs, which the server signs without
a request; the calls to S3 itself (bucket and multipart upload creation, the lifecycle sweep) run in threads, away from
the event loop.

Staged objects do not accumulate: the upload job deletes the object it consumed (and aborts the multipart upload it
waited for in vain), and :meth:`Staging.run_lifecycle` removes what is older than ``S3Settings.expiry``, as the real
server's bucket lifecycle does (downloads, and uploads a client gave up).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
import math
import uuid
from typing import Any

import botocore.config
import botocore.exceptions

from .errors import ApiError
from .settings import S3Settings

MAX_PARTS = 10000
"""S3's limit of parts in a multipart upload."""

LOGGER = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class StagedUpload:
    """A multipart upload waiting for the client's parts, and the URLs a transfer job needs to fetch the result."""

    parts_upload_urls: list[str]
    complete_upload_url: str
    head_url: str
    get_url: str
    delete_url: str
    abort_url: str
    """Aborts the multipart upload (removing its parts), for a job that waited for it in vain."""


@dataclasses.dataclass(frozen=True)
class StagedDownload:
    """Where a transfer job puts a file for the client, and where the client gets it."""

    put_url: str
    download_url: str


class Staging:
    """The staging bucket of one S3 server.

    :param s3: where the S3 server listens and how to sign requests for it.
    """

    def __init__(self, s3: S3Settings) -> None:
        self.s3 = s3
        self._client = s3.client(
            signature_version='s3v4',
            request_checksum_calculation='when_required',
            response_checksum_validation='when_required',
            retries={'max_attempts': 3},
        )
        self._bucket_ready = False
        self._bucket_lock = asyncio.Lock()

    def _presign(self, operation: str, **params: Any) -> str:
        url: str = self._client.generate_presigned_url(
            operation, Params={'Bucket': self.s3.bucket, **params}, ExpiresIn=self.s3.url_lifetime
        )
        return url

    async def _ensure_bucket(self) -> None:
        async with self._bucket_lock:
            if not self._bucket_ready:
                await asyncio.to_thread(self._create_bucket)
                self._bucket_ready = True

    def _create_bucket(self) -> None:
        try:
            self._client.create_bucket(Bucket=self.s3.bucket)
        except self._client.exceptions.BucketAlreadyOwnedByYou:
            pass

    @staticmethod
    def _key(user: str, filename: str) -> str:
        """Return a fresh object key for a file of ``user``, as the real server's ``<user>/<uuid>/<file name>``."""
        return f'{user}/{uuid.uuid4()}/{filename}'

    async def prepare_upload(self, user: str, filename: str, size: int) -> StagedUpload:
        """Create a multipart upload for a file of ``size`` bytes, in parts of ``s3.max_part_size`` bytes.

        :raises ApiError: 400 if the file needs more than :data:`MAX_PARTS` parts.
        """
        parts = max(1, math.ceil(size / self.s3.max_part_size))
        if parts > MAX_PARTS:
            raise ApiError(400, f'File to upload is too large: it needs more than {MAX_PARTS} parts.')
        await self._ensure_bucket()
        key = self._key(user, filename)
        created = await asyncio.to_thread(self._client.create_multipart_upload, Bucket=self.s3.bucket, Key=key)
        upload_id = created['UploadId']
        return StagedUpload(
            parts_upload_urls=[
                self._presign('upload_part', Key=key, UploadId=upload_id, PartNumber=number)
                for number in range(1, parts + 1)
            ],
            complete_upload_url=self._presign('complete_multipart_upload', Key=key, UploadId=upload_id),
            head_url=self._presign('head_object', Key=key),
            get_url=self._presign('get_object', Key=key),
            delete_url=self._presign('delete_object', Key=key),
            abort_url=self._presign('abort_multipart_upload', Key=key, UploadId=upload_id),
        )

    async def prepare_download(self, user: str, filename: str) -> StagedDownload:
        """Return the URLs to stage a file of ``user`` for download: one to PUT it, one to GET it."""
        await self._ensure_bucket()
        key = self._key(user, filename)
        return StagedDownload(
            put_url=self._presign('put_object', Key=key), download_url=self._presign('get_object', Key=key)
        )

    async def sweep(self) -> int:
        """Remove the objects written, and abort the multipart uploads started, more than ``s3.expiry`` seconds ago;
        return how many."""
        before = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=self.s3.expiry)
        return await asyncio.to_thread(self._sweep, before)

    def _sweep(self, before: datetime.datetime) -> int:
        bucket = self.s3.bucket
        try:
            self._client.head_bucket(Bucket=bucket)
        except botocore.exceptions.ClientError as exc:
            if exc.response.get('Error', {}).get('Code') in ('404', 'NoSuchBucket'):
                return 0  # nothing staged yet
            raise
        removed = 0
        for page in self._client.get_paginator('list_objects_v2').paginate(Bucket=bucket):
            for item in page.get('Contents', []):
                if item['LastModified'] < before:
                    self._client.delete_object(Bucket=bucket, Key=item['Key'])
                    removed += 1
        for upload in self._client.list_multipart_uploads(Bucket=bucket).get('Uploads', []):
            if upload['Initiated'] < before:
                self._client.abort_multipart_upload(Bucket=bucket, Key=upload['Key'], UploadId=upload['UploadId'])
                removed += 1
        return removed

    async def run_lifecycle(self) -> None:
        """Sweep the bucket every ``s3.sweep_interval`` seconds until cancelled; a failed sweep is logged."""
        while True:
            await asyncio.sleep(self.s3.sweep_interval)
            try:
                await self.sweep()
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
                LOGGER.warning('sweeping the staging bucket failed: %s', exc)
