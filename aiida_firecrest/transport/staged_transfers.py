"""Staged transfers: through the staging area (S3) and a transfer job, verified, nothing left behind.

**Safety.** Every staged download is compared with its source by SHA-256 (the server's ``checksum`` against the sum
computed while the object comes down; the server hashes meanwhile, so it costs no time). A staged upload is compared
by its size, and by SHA-256 if asked (the transport's ``checksum_uploads``): there the server can only hash the copy
once the transfer job has written it, which adds about a second per 250 MB to every upload. The size catches what the
real server's upload job does wrong (it ignores its errors writing the copy, which leaves it short), and its state
and log catch a failed part; S3's own checks and TLS cover the way to the staging area. The server's ``checksum`` runs
``sha256sum`` under the SSH command timeout (20 s at CSCS), so it answers 408 for a file of some gigabytes: such a
copy is compared by its size, with a warning that says so, and the smallest size that timed out is remembered
(:class:`ChecksumReach`), so that larger files are not hashed in vain.
A staged download is written to a temporary file beside its destination and moved into place only when complete and
verified: a failed, cancelled or corrupted download leaves no file at the destination. A staged upload whose copy
differs from its source is removed, and so is what an upload job that failed part-way wrote (the real server's job
removes the file it replaces, then appends the object to the destination part by part, so this is the only way to
leave no wrong file under the final name; a file it replaced is then gone, as after any failed overwrite). A staged
upload or download that fails or is cancelled (by the caller, an S3 error or a lost connection) before its transfer
job ended cancels the job, which would otherwise wait for its object for the lifetime of the presigned URLs (and be
billed meanwhile). The errors say which party failed: the staging area (S3), or the transfer job, quoting its error
log (also when an upload job completed without writing the file: the real one ignores its write errors).

FirecREST's answer to ``transfer/upload`` holds the URLs of the parts and the completion of the multipart upload, but
none to abort it: a multipart upload that the client leaves unfinished is removed by the bucket's lifecycle rule (the
local server's ``S3Settings.expiry``; the real server's bucket lifecycle of a few days).

**Speed** (measured against the raw API path, ``benchmarks/transfers.py``): nothing is read twice and nothing waits
for what can run alongside. A download's object is fetched as soon as it exists in the staging area (probed with its
presigned URL every few percent of the time waited, which costs no FirecREST request) while the transfer job is
polled only to learn about its failure; it is streamed to disk in large chunks, its SHA-256 computed on the way,
while the server computes its own. An upload's local SHA-256, when asked, is computed once its parts are sent, while
the transfer job moves the object into place and the server hashes it (the client waits then). A transfer job that
completed is taken at its word (pyfirecrest also reads its output log, one more request): the checksum follows.

**Progress**: bytes done and rate, logged at INFO on the transport's logger (which reaches the daemon log) at most
every :data:`PROGRESS_INTERVAL` seconds, and once at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import os
import stat
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import IO, Any, TypeVar
from xml.etree import ElementTree

import httpx
from aiida.common.log import AIIDA_LOGGER
from firecrest.FirecrestException import MultipartUploadException

from ..client.exceptions import (
    ChecksumMismatchError,
    FirecrestTimeoutError,
    TransferFailedError,
    error_from_answer,
    translate_errors,
)
from ..client.firecrest_client import FirecrestClient
from ..client.server_facts import FACTS
from ..client.transfer_wait import job_state
from .carried_names import check_commands_carry
from .local_archives import sha256_of

__all__ = ('PROGRESS_INTERVAL', 'ChecksumReach', 'Progress', 'staged_download', 'staged_upload')

LOGGER = AIIDA_LOGGER.getChild('transport.FirecrestTransport')
"""The logger of the ``firecrest`` transport (AiiDA's ``Transport.logger``): the daemon log shows its records."""

PROGRESS_INTERVAL = 5.0
"""The shortest time between two progress records of one transfer, in seconds."""

CHUNK_SIZE = 8 * 2**20
"""Bytes read from or written to disk at once."""

S3_CONNECTIONS = 8
"""Parts of a multipart upload sent at once."""

FIRST_PROBE_DELAY = 0.1
PROBE_FRACTION = 0.05
LONGEST_PROBE_DELAY = 2.0
"""A download's object is probed again after :data:`PROBE_FRACTION` of the time waited so far, at least
:data:`FIRST_PROBE_DELAY` and at most :data:`LONGEST_PROBE_DELAY` seconds: seen at most 5 % late."""

NOT_STAGED_YET = frozenset({403, 404})
"""What S3 answers for an object not written yet: 404, or 403 where the URL's signer may not list the bucket."""

S3_ERRORS = (MultipartUploadException, httpx.HTTPError)
"""What a request to the staging area (a presigned S3 URL) raises when it fails."""

T = TypeVar('T')


class Progress:
    """Bytes done and rate of one transfer, logged at INFO at most every ``interval`` seconds, and at the end."""

    def __init__(
        self,
        action: str,
        total: int,
        *,
        interval: float = PROGRESS_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """:param action: what is transferred, e.g. ``staged download of /scratch/f``.
        :param total: the bytes to transfer.
        :param interval: the shortest time between two records, in seconds.
        :param clock: the time, in seconds."""
        self.action = action
        self.total = total
        self.done = 0
        self._interval = interval
        self._clock = clock
        self._start = self._last = clock()

    def advance(self, count: int) -> None:
        """Count ``count`` more bytes done; log if the last record is ``interval`` old."""
        self.done += count
        now = self._clock()
        if now - self._last >= self._interval and self.done < self.total:
            self._last = now
            self._log(now, f'{100 * self.done / max(self.total, 1):.0f} %, ')

    def finish(self) -> None:
        """Log the whole transfer's size and rate."""
        self._log(self._clock(), 'done, ')

    def _log(self, now: float, state: str) -> None:
        elapsed = max(now - self._start, 1e-9)
        LOGGER.info(
            f'{self.action}: {state}{self.done / 1e6:.1f} of {self.total / 1e6:.1f} MB in {elapsed:.1f} s '
            f'({self.done / 1e6 / elapsed:.1f} MB/s)'
        )


class ChecksumReach:
    """Which files the server's ``checksum`` can hash before its command timeout: those smaller than the smallest
    file whose checksum timed out (408), remembered for the process under ``key`` (one per server, client and system).

    :param key: the key of the bound among the process-wide server facts.
    """

    def __init__(self, key: tuple[str, ...]) -> None:
        self._key = key

    def covers(self, size: int) -> bool:
        """Whether a file of ``size`` bytes is worth hashing on the server (none of its size or less timed out)."""
        smallest = FACTS.peek(self._key)
        return smallest is None or size < int(smallest)

    def timed_out(self, size: int) -> None:
        """Remember that the checksum of a file of ``size`` bytes outlasted the server's command timeout."""
        FACTS.lower(self._key, size)


# --- upload -----------------------------------------------------------------------------------------------------------


async def staged_upload(
    client: FirecrestClient,
    system: str,
    localpath: str,
    remotepath: str,
    *,
    account: str | None,
    reach: ChecksumReach,
    checksum: bool,
) -> None:
    """Send ``localpath`` to ``remotepath`` through the staging area: start the transfer job, upload the parts of
    the multipart upload, complete it, wait for the job and compare the copy with ``localpath``: by its size, or with
    ``checksum`` by SHA-256 (the local one computed while the job runs; the sizes still, where the server cannot hash
    the file: see ``reach``); on any failure or cancellation before the job ended, cancel the job; a copy that differs
    is removed.

    :param checksum: compare the SHA-256 sums, which costs the server's hashing of the whole copy after the job.
    :raises TransferFailedError: if the staging area refused a part or the completion, or the transfer job failed.
    :raises ChecksumMismatchError: if the copy differs from ``localpath`` (it was removed).
    :calls: POST ``/filesystem/{system}/transfer/upload``, the S3 parts and completion, the job's status; GET
        ``/filesystem/{system}/ops/stat`` (with ``checksum``, ``ops/checksum``, or ``ops/stat`` beyond ``reach``); on
        failure DELETE ``/compute/{system}/jobs/{id}`` (and the job's logs, if it failed); on a mismatch DELETE
        ``/filesystem/{system}/ops/rm``
    """
    directory, filename = os.path.split(remotepath)
    size = os.path.getsize(localpath)
    with translate_errors(remotepath):
        transfer = await client.upload(system, localpath, directory or '/', filename, account=account, blocking=False)
    info: dict[str, Any] | None = None if transfer is None else transfer.transfer_data
    if info is not None:  # else pyfirecrest uploaded it directly (its limit was raised meanwhile)
        progress = Progress(f'staged upload of {remotepath}', size)
        async with _cancelled_on_failure(client, info, remotepath), _s3_errors('upload', remotepath):
            await _upload_parts(client, info['transferDirectives'], localpath, progress)
        progress.finish()
    # the local sum is computed while the transfer job moves the object into place and the server hashes it: the
    # client is idle then, and the parts were sent without competing with it for a core
    async with _alongside(_local_sha256(localpath, checksum)) as local_sum:
        if info is not None:
            await _upload_job_ended(client, system, info, remotepath, account)
        try:
            remote_sum = await _remote_sha256(client, system, remotepath, size, reach) if checksum else None
            if remote_sum is None:
                await _compare_sizes(client, system, remotepath, localpath, size)
            else:
                _compare(remotepath, remote_sum, localpath, str(await local_sum))
        except ChecksumMismatchError:
            await _remove_quietly_remote(client, system, remotepath, account)
            raise
        except FileNotFoundError as exc:
            if info is None:
                raise
            # the real server's job ignores its errors writing the copy (e.g. into a directory that does not exist)
            log = await client.job_error_log(info)
            message = f'the transfer job completed without writing the file: {log or "no error log"}'
            raise error_from_answer(400, message, remotepath, otherwise=TransferFailedError) from exc


async def _local_sha256(path: str, wanted: bool) -> str | None:
    """The SHA-256 of the local file ``path``, if ``wanted``."""
    return await asyncio.to_thread(sha256_of, path) if wanted else None


async def _upload_job_ended(
    client: FirecrestClient, system: str, info: dict[str, Any], path: str, account: str | None
) -> None:
    """Wait for the transfer job of an upload to ``path``; if its script failed, remove what it wrote of the copy.

    :raises FirecrestError: what the job's error log says, if it did not complete.
    """
    async with _cancelled_on_failure(client, info, path) as job:
        try:
            await _transfer_job_ended(client, info, path, job)
        except OSError:
            if job.state == 'FAILED':
                await _remove_partial_copy(client, system, path, account)
            raise


async def _remove_partial_copy(client: FirecrestClient, system: str, path: str, account: str | None) -> None:
    """Remove what a failed upload job left at ``path``, if it is a file; a failure is logged.

    The real server's job removes the file it replaces once the object is staged, then appends the object to it part
    by part: a job that fails part-way leaves the parts before under the final name. One that failed because ``path``
    is a directory wrote nothing, and the directory stays.
    """
    try:
        with translate_errors(path):
            mode = int((await client.stat(system, path, dereference=False))['mode'])
        if stat.S_ISREG(mode):
            await _remove_quietly_remote(client, system, path, account)
    except FileNotFoundError:
        pass
    except OSError as exc:
        LOGGER.warning(f'could not check for a partial copy at {path} after its transfer job failed: {exc}')


async def _upload_parts(
    client: FirecrestClient, directives: dict[str, Any], localpath: str, progress: Progress
) -> None:
    """Send the parts of ``localpath`` to their presigned URLs, :data:`S3_CONNECTIONS` at once, and complete the
    multipart upload."""
    session = _s3_session(client)
    part_size = int(directives['maxPartSize'])
    semaphore = asyncio.Semaphore(S3_CONNECTIONS)

    async def send(index: int, url: str) -> dict[str, Any]:
        start = index * part_size
        length = max(0, min(part_size, progress.total - start))
        async with semaphore:
            answer = await session.put(
                url,
                content=_file_chunks(localpath, start, length, progress),
                headers={'Content-Length': str(length)},
                timeout=None,
            )
        answer.raise_for_status()
        return {'ETag': answer.headers['ETag'], 'PartNumber': index + 1}

    parts = await asyncio.gather(*(send(index, url) for index, url in enumerate(directives['partsUploadUrls'])))
    answer = await session.post(directives['completeUploadUrl'], content=_completion(parts))
    answer.raise_for_status()


def _completion(parts: list[dict[str, Any]]) -> str:
    """The body completing a multipart upload: its parts' numbers and ETags, in order."""
    root = ElementTree.Element('CompleteMultipartUpload', {'xmlns': 'http://s3.amazonaws.com/doc/2006-03-01/'})
    for part in sorted(parts, key=lambda part: int(part['PartNumber'])):
        element = ElementTree.SubElement(root, 'Part')
        ElementTree.SubElement(element, 'ETag').text = str(part['ETag'])
        ElementTree.SubElement(element, 'PartNumber').text = str(part['PartNumber'])
    return ElementTree.tostring(root, encoding='unicode')


async def _file_chunks(path: str, start: int, length: int, progress: Progress) -> AsyncIterator[bytes]:
    """The ``length`` bytes of ``path`` from ``start``, in chunks of at most :data:`CHUNK_SIZE`, counted."""
    handle = await asyncio.to_thread(open, path, 'rb')
    try:
        await asyncio.to_thread(handle.seek, start)
        while length > 0:
            chunk = await asyncio.to_thread(handle.read, min(CHUNK_SIZE, length))
            if not chunk:
                raise TransferFailedError(f'{path} became shorter during its staged upload')
            length -= len(chunk)
            progress.advance(len(chunk))
            yield chunk
    finally:
        await asyncio.to_thread(handle.close)


async def _remove_quietly_remote(client: FirecrestClient, system: str, path: str, account: str | None) -> None:
    """Remove the wrong copy ``path``; a failure is logged, the mismatch is the error to report."""
    try:
        with translate_errors(path):
            await client.rm(system, path, account=account)
    except OSError as exc:
        LOGGER.warning(f'could not remove {path}, which differs from its source: {exc}')


# --- download ---------------------------------------------------------------------------------------------------------


async def staged_download(
    client: FirecrestClient,
    system: str,
    remotepath: str,
    localpath: str,
    size: int,
    *,
    account: str | None,
    reach: ChecksumReach,
) -> None:
    """Fetch ``remotepath`` of ``size`` bytes into ``localpath`` through the staging area: the transfer job puts it
    into S3, the object is streamed to a temporary file beside ``localpath`` as soon as it exists (its SHA-256 computed
    on the way, the server's asked meanwhile; the sizes compared instead where the server cannot hash the file: see
    ``reach``) and moved into place once verified; on any failure or cancellation, the transfer job is cancelled and
    the temporary file removed.

    :param size: the size a listing or a ``stat`` told: whether the server can hash the file depends on it.
    :raises TransferFailedError: if the transfer job failed or the staging area refused the download.
    :raises ChecksumMismatchError: if the object differs from ``remotepath`` (nothing is left at ``localpath``).
    :calls: POST ``/filesystem/{system}/transfer/download``, the job's status, the S3 object; GET
        ``/filesystem/{system}/ops/checksum`` (or ``ops/stat``, beyond ``reach``); on failure DELETE
        ``/compute/{system}/jobs/{id}`` (and the job's logs, if it failed)
    """
    temporary = await asyncio.to_thread(_temporary_beside, localpath)
    try:
        with translate_errors(remotepath):
            transfer = await client.start_staged_download(system, remotepath, temporary, account=account)
        info: dict[str, Any] = transfer.transfer_data
        async with _alongside(_remote_sha256(client, system, remotepath, size, reach)) as remote_sum:
            async with _cancelled_on_failure(client, info, remotepath) as job:
                local_sum, received = await _fetch_object(client, info, remotepath, temporary, job)
            if (remote_digest := await remote_sum) is None:
                await _compare_sizes(client, system, remotepath, localpath, received)
            else:
                _compare(remotepath, remote_digest, localpath, local_sum)
        await asyncio.to_thread(os.replace, temporary, localpath)
    except BaseException:
        await asyncio.to_thread(_remove_quietly, temporary)
        raise


async def _fetch_object(
    client: FirecrestClient, info: dict[str, Any], remotepath: str, temporary: str, job: _JobEnd
) -> tuple[str, int]:
    """Stream the staged object into ``temporary`` as soon as it exists, the transfer job polled meanwhile; return
    its SHA-256 and size.

    :raises TransferFailedError: if the job failed, or the object is missing once the job completed.
    """
    url = info['transferDirectives']['downloadUrl']
    loop = asyncio.get_running_loop()
    start = loop.time()
    async with _alongside(_transfer_job_ended(client, info, remotepath, job)) as waited:
        while True:
            job_ended = waited.done()
            if job_ended:
                waited.result()  # raises the job's failure
            async with _s3_errors('download', remotepath):
                streamed = await _stream_object(client, url, temporary, remotepath, last_chance=job_ended)
            if streamed is not None:
                return streamed
            delay = min(LONGEST_PROBE_DELAY, max(FIRST_PROBE_DELAY, PROBE_FRACTION * (loop.time() - start)))
            await asyncio.wait({waited}, timeout=delay)


async def _stream_object(
    client: FirecrestClient, url: str, temporary: str, remotepath: str, *, last_chance: bool
) -> tuple[str, int] | None:
    """Write the object of ``url`` to ``temporary`` and return its SHA-256 and size; None if it does not exist yet
    (unless this is the ``last_chance``)."""
    async with _s3_session(client).stream('GET', url) as answer:
        if answer.status_code in NOT_STAGED_YET and not last_chance:
            return None
        answer.raise_for_status()
        total = int(answer.headers.get('Content-Length', 0))
        progress = Progress(f'staged download of {remotepath}', total)
        digest = hashlib.sha256()
        handle = await asyncio.to_thread(open, temporary, 'wb')
        writing: asyncio.Future[None] | None = None  # the chunk written while the next one arrives
        try:
            async for chunk in answer.aiter_bytes(CHUNK_SIZE):
                if writing is not None:
                    await writing
                writing = asyncio.ensure_future(asyncio.to_thread(_write_and_hash, handle, digest, chunk))
                progress.advance(len(chunk))
            if writing is not None:
                await writing
        finally:
            if writing is not None and not writing.done():
                await asyncio.wait({writing})
            await asyncio.to_thread(handle.close)
    progress.finish()
    return digest.hexdigest(), progress.done


def _write_and_hash(handle: IO[bytes], digest: Any, chunk: bytes) -> None:
    handle.write(chunk)
    digest.update(chunk)


def _temporary_beside(localpath: str) -> str:
    """Create an empty temporary file in the directory of ``localpath`` (so that the final move is a rename)."""
    directory, name = os.path.split(os.path.abspath(localpath))
    descriptor, temporary = tempfile.mkstemp(prefix=f'.{name}.', suffix='.part', dir=directory)
    os.close(descriptor)
    return temporary


def _remove_quietly(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


# --- both directions --------------------------------------------------------------------------------------------------


async def _transfer_job_ended(
    client: FirecrestClient,
    info: dict[str, Any],
    path: str,
    end: _JobEnd,
) -> None:
    """Wait for the transfer job of ``info``; a job that did not complete is explained by its logs.

    :param end: where to note the state the job ended in (it is no longer worth cancelling then).
    :raises FirecrestError: what the job's error log says (through :meth:`FirecrestClient.wait_for_transfer`).
    """
    job = info['transferJob']
    with translate_errors(path):
        description = await client.wait_for_job(job['system'], str(job['jobId']))
    end.state = job_state(description)
    if end.state != 'COMPLETED':
        await client.wait_for_transfer(info, path)  # reads the logs: raises what failed, unless they tell success


async def _remote_sha256(
    client: FirecrestClient, system: str, path: str, size: int, reach: ChecksumReach
) -> str | None:
    """The server's SHA-256 of ``path`` (of ``size`` bytes); None if the server cannot hash it before its command
    timeout (it timed out now, or earlier for a file no larger)."""
    check_commands_carry('checksum', path)
    if reach.covers(size):
        try:
            with translate_errors(path):
                return str((await client.checksum(system, path))['checksum']).lower()
        except FirecrestTimeoutError:
            reach.timed_out(size)
    LOGGER.warning(
        f'the server cannot compute the SHA-256 of {path} ({size / 1e6:.0f} MB) within its command timeout: '
        'this staged copy is checked by its size only'
    )
    return None


async def _compare_sizes(client: FirecrestClient, system: str, remotepath: str, localpath: str, size: int) -> None:
    """:raises ChecksumMismatchError: if ``remotepath`` is not of ``size`` bytes, the size of ``localpath``."""
    with translate_errors(remotepath):
        remote_size = int((await client.stat(system, remotepath, dereference=True))['size'])
    if remote_size != size:
        raise ChecksumMismatchError(
            f'the size of {remotepath} ({remote_size} bytes) differs from that of {localpath} ({size} bytes) after a '
            'staged transfer'
        )


def _compare(remotepath: str, remote_sum: str, localpath: str, local_sum: str) -> None:
    """:raises ChecksumMismatchError: if the sums differ."""
    if local_sum != remote_sum:
        raise ChecksumMismatchError(
            f'the SHA-256 of {remotepath} ({remote_sum}) differs from that of {localpath} ({local_sum}) '
            'after a staged transfer'
        )


def _s3_session(client: FirecrestClient) -> httpx.AsyncClient:
    """The HTTP session pyfirecrest sends its requests to the staging area with (outside the request budget)."""
    session: httpx.AsyncClient = client._session
    return session


@contextlib.asynccontextmanager
async def _alongside(coroutine: Coroutine[Any, Any, T]) -> AsyncIterator[asyncio.Future[T]]:
    """Run ``coroutine`` alongside the block; if the block ends first (it failed), cancel it and drop its outcome."""
    task = asyncio.ensure_future(coroutine)
    try:
        yield task
    finally:
        if not task.done():
            task.cancel()
            await asyncio.wait({task})
        if not task.cancelled():
            task.exception()  # retrieved: the block's own outcome is what counts


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


@dataclasses.dataclass
class _JobEnd:
    """The state a transfer job was seen to end in, None while it was not."""

    state: str | None = None


@contextlib.asynccontextmanager
async def _cancelled_on_failure(
    client: FirecrestClient, transfer_info: dict[str, Any], path: str
) -> AsyncIterator[_JobEnd]:
    """Cancel the transfer job of ``transfer_info`` if the block fails or is cancelled before the job was seen to
    end (noted in the :class:`_JobEnd` it yields); a failed cancellation is logged (the job then ends at its own
    timeout), never raised over the error that caused it."""
    end = _JobEnd()
    try:
        yield end
    except BaseException:
        if end.state is None:
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
