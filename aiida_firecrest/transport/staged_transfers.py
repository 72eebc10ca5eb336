"""Staged transfers that fail cleanly: through the staging area (S3) and a transfer job, and nothing left behind.

A staged download lands in a temporary file beside its destination and is moved into place only when complete: a
failed or cancelled download leaves no file at the destination. A staged upload or download that fails or is cancelled
(by the caller, an S3 error or a lost connection) cancels its transfer job, which would otherwise wait for its object
for the lifetime of the presigned URLs (and be billed meanwhile). The errors say which party failed: the staging area
(S3), or the transfer job, with its error log.

FirecREST's answer to ``transfer/upload`` holds the URLs of the parts and the completion of the multipart upload, but
none to abort it: a multipart upload that the client leaves unfinished is removed by the bucket's lifecycle.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
from collections.abc import AsyncIterator
from typing import Any

import httpx
from firecrest.FirecrestException import MultipartUploadException

from ..client.exceptions import TransferFailedError, translate_errors
from ..client.firecrest_client import FirecrestClient

__all__ = ('staged_download', 'staged_upload')

LOGGER = logging.getLogger(__name__)

S3_ERRORS = (MultipartUploadException, httpx.HTTPError)
"""What pyfirecrest raises when a request to the staging area (a presigned S3 URL) fails."""


async def staged_upload(
    client: FirecrestClient, system: str, localpath: str, remotepath: str, *, account: str | None
) -> None:
    """Send ``localpath`` to ``remotepath`` through the staging area: start the transfer job, upload the parts of
    the multipart upload, complete it and wait for the job; on any failure or cancellation, cancel the job.

    :raises TransferFailedError: if the staging area refused a part or the completion, or the transfer job failed.
    :calls: POST ``/filesystem/{system}/transfer/upload``, the S3 parts and completion, the job's status and log;
        on failure DELETE ``/compute/{system}/jobs/{id}``
    """
    directory, filename = os.path.split(remotepath)
    with translate_errors(remotepath):
        transfer = await client.upload(system, localpath, directory or '/', filename, account=account, blocking=False)
    if transfer is None:  # pyfirecrest uploaded it directly (its limit was raised meanwhile)
        return
    async with _cancelled_on_failure(client, transfer.transfer_data, remotepath):
        async with _s3_errors('upload', remotepath):
            await transfer.upload_file_to_stage()
        await client.wait_for_transfer(transfer.transfer_data, remotepath)


async def staged_download(
    client: FirecrestClient, system: str, remotepath: str, localpath: str, *, account: str | None
) -> None:
    """Fetch ``remotepath`` into ``localpath`` through the staging area: the transfer job puts it into S3, the
    object is downloaded to a temporary file beside ``localpath`` and moved into place; on any failure or
    cancellation, the transfer job is cancelled and the temporary file removed.

    :raises TransferFailedError: if the transfer job failed or the staging area refused the download.
    :calls: POST ``/filesystem/{system}/transfer/download``, the job's status and log, the S3 object; on failure
        DELETE ``/compute/{system}/jobs/{id}``
    """
    temporary = await asyncio.to_thread(_temporary_beside, localpath)
    try:
        with translate_errors(remotepath):
            transfer = await client.start_staged_download(system, remotepath, temporary, account=account)
        async with _cancelled_on_failure(client, transfer.transfer_data, remotepath):
            await client.wait_for_transfer(transfer.transfer_data, remotepath)
            async with _s3_errors('download', remotepath):
                await transfer.download_file_from_stage()
        await asyncio.to_thread(os.replace, temporary, localpath)
    except BaseException:
        await asyncio.to_thread(_remove_quietly, temporary)
        raise


def _temporary_beside(localpath: str) -> str:
    """Create an empty temporary file in the directory of ``localpath`` (so that the final move is a rename)."""
    directory, name = os.path.split(os.path.abspath(localpath))
    descriptor, temporary = tempfile.mkstemp(prefix=f'.{name}.', suffix='.part', dir=directory)
    os.close(descriptor)
    return temporary


def _remove_quietly(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


@contextlib.asynccontextmanager
async def _s3_errors(direction: str, remotepath: str) -> AsyncIterator[None]:
    """Name the staging area as the party that failed."""
    try:
        yield
    except S3_ERRORS as exc:
        raise TransferFailedError(
            f'the staging area (S3) failed during the staged {direction} of {remotepath}: {_s3_reason(exc)}'
        ) from exc


def _s3_reason(exc: BaseException) -> str:
    """What S3 answered, without the presigned URL (its signature is a credential for its lifetime)."""
    if isinstance(exc, httpx.HTTPStatusError):
        return f'HTTP {exc.response.status_code}'
    if isinstance(exc, httpx.HTTPError):
        return type(exc).__name__
    return 'a part or the completion of the multipart upload was refused'


@contextlib.asynccontextmanager
async def _cancelled_on_failure(
    client: FirecrestClient, transfer_info: dict[str, Any], path: str
) -> AsyncIterator[None]:
    """Cancel the transfer job of ``transfer_info`` if the block fails or is cancelled; a failed cancellation is
    logged (the job then ends at its own timeout), never raised over the error that caused it."""
    try:
        yield
    except BaseException:
        await asyncio.shield(_cancel_transfer_job(client, transfer_info, path))
        raise


async def _cancel_transfer_job(client: FirecrestClient, transfer_info: dict[str, Any], path: str) -> None:
    job = transfer_info['transferJob']
    try:
        with translate_errors(path):
            await client.cancel_job(job['system'], str(job['jobId']))
    except OSError as exc:  # the job may have ended already
        LOGGER.warning(f'could not cancel the transfer job {job["jobId"]} of {path}: {exc}')
    else:
        LOGGER.debug(f'cancelled the transfer job {job["jobId"]} of {path}')
