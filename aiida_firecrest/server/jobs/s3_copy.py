"""Copy files between the cluster and the S3 staging area through presigned URLs; run inside transfer jobs.

::

    python -m aiida_firecrest.server.jobs.s3_copy fetch --head URL --get URL --delete URL --abort URL --wait S \
        --check-interval S --part-size N [--fail-at-part N] TARGET
    python -m aiida_firecrest.server.jobs.s3_copy put --url URL SOURCE

``fetch`` does what the real server's upload job does (eth-cscs/firecrest-v2 ``job_s3_downloader.sh``), defects
included: it refuses a ``TARGET`` that is a directory (exit status 3), checks whether the object exists at once and
then every ``--check-interval`` seconds (60 s on the real server: the client completes its multipart upload after the
job starts), and once it does, removes the file ``TARGET`` and appends the object to it part by part: each part of
``--part-size`` bytes is fetched by a ranged GET into ``TARGET.<part number>``, appended to ``TARGET`` and removed. The
file is written in place, so a failure part-way leaves the parts before it under the final name. A part answered
other than 200 or 206 ends the job (``Download failed: part N``, exit status 1, the error's body left in the part's
file); an error writing a part or appending it is printed and ignored, as the real job ignores ``curl``'s and
``cat``'s exit statuses (the job then succeeds with a shorter file). ``--fail-at-part`` answers that part 500, a
fault a test injects.

Where the real job waits up to its Slurm time limit, ``fetch`` gives up after ``--wait`` seconds and aborts the
multipart upload; and it deletes the object once used, which the real server leaves to its bucket's lifecycle (the
local S3 store is small). Neither shows to a client. ``put`` uploads ``SOURCE`` with one PUT. Both exit with status 1
and a message on standard error when they fail. Only the standard library is used, so that any Python on the
cluster can run it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

CHUNK_SIZE = 1024 * 1024
HTTP_TIMEOUT = 60.0
TARGET_IS_A_DIRECTORY = 3
"""The exit status of a fetch whose target is a directory, as the real job's."""


class CopyError(Exception):
    """A copy that failed, with the message for standard error."""

    def __init__(self, message: str, exit_status: int = 1) -> None:
        super().__init__(message)
        self.exit_status = exit_status


def _request(url: str, method: str, headers: dict[str, str] | None = None) -> urllib.request.Request:
    return urllib.request.Request(url, method=method, headers=headers or {})


def object_exists(head_url: str) -> bool:
    """Return whether the object of a presigned HEAD URL exists: any answer but 200, or none, counts as not yet, as
    for the real job."""
    try:
        with urllib.request.urlopen(_request(head_url, 'HEAD'), timeout=HTTP_TIMEOUT):
            return True
    except OSError:  # urllib's errors, HTTP answers included
        return False


def wait_for_object(head_url: str, wait: float, check_interval: float) -> None:
    """Check at once, then every ``check_interval`` seconds, until the object exists; raise :class:`CopyError` if it
    does not within ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while not object_exists(head_url):
        if time.monotonic() + check_interval > deadline:
            raise CopyError(f'the staged object did not appear within {wait} seconds')
        time.sleep(check_interval)


def fetch(
    head_url: str,
    get_url: str,
    delete_url: str,
    abort_url: str,
    target: str,
    wait: float,
    *,
    check_interval: float,
    part_size: int,
    fail_at_part: int | None = None,
) -> None:
    """Wait for the staged object and append it to ``target`` part by part, in place, as the real job does; delete
    it from the staging area; abort its multipart upload if it does not appear in time.

    :raises CopyError: if ``target`` is a directory (exit status 3), the object did not appear, or a part failed.
    """
    if os.path.isdir(target):
        # the real job's message names a variable it has not set yet
        raise CopyError('targetPath must point to a file path:  is a directory.', TARGET_IS_A_DIRECTORY)
    try:
        wait_for_object(head_url, wait, check_interval)
    except CopyError:
        _request_quietly(abort_url, 'DELETE', 'the multipart upload was not aborted')
        raise
    print(f'Downloading file to: {target} ...')
    if os.path.isfile(target):
        _ignoring_errors(os.remove, target)
    received, part = 0, 1
    while True:
        start = (part - 1) * part_size
        status, total, length = _fetch_part(
            get_url, start, start + part_size - 1, f'{target}.{part}', part, fail_at_part
        )
        if status not in (200, 206):
            raise CopyError(f'Download failed: part {part}')
        received += length
        _ignoring_errors(_append, f'{target}.{part}', target)
        _ignoring_errors(os.remove, f'{target}.{part}')
        if total - received <= 0:
            break
        part += 1
    print(f'Received {received} bytes')
    _request_quietly(delete_url, 'DELETE', 'the staged object was not deleted')


def _fetch_part(
    get_url: str, first: int, last: int, part_file: str, part: int, fail_at_part: int | None
) -> tuple[int, int, int]:
    """GET bytes ``first`` to ``last`` of the object into ``part_file`` (the body of an error too, as ``curl
    --output`` writes it); return the status (0 if there was no answer), the object's size (from ``Content-Range``)
    and the part's length. An error writing the file is printed and ignored."""
    if part == fail_at_part:
        status, body, headers = 500, b'InternalError: a fault injected by the test', {}
    else:
        try:
            with urllib.request.urlopen(
                _request(get_url, 'GET', {'Range': f'bytes={first}-{last}'}), timeout=HTTP_TIMEOUT
            ) as answer:
                status, body, headers = answer.status, answer.read(), dict(answer.headers)
        except urllib.error.HTTPError as exc:
            status, body, headers = exc.code, exc.read(), dict(exc.headers)
        except OSError:  # no answer: ``curl`` writes nothing and reports the status 000
            return 0, 0, 0
    _ignoring_errors(_write, part_file, body)
    total = int(str(headers.get('Content-Range', '/0')).rpartition('/')[2] or 0)
    return status, total, int(headers.get('Content-Length', len(body)))


def _write(path: str, data: bytes) -> None:
    with open(path, 'wb') as handle:
        handle.write(data)


def _append(source: str, target: str) -> None:
    with open(source, 'rb') as part, open(target, 'ab') as whole:
        shutil.copyfileobj(part, whole, CHUNK_SIZE)


def _ignoring_errors(function: Callable[..., object], *args: Any) -> None:
    """Call ``function``; print its error to standard error and go on, as the real job's shell does."""
    try:
        function(*args)
    except OSError as exc:
        print(f'{function.__name__}: {exc}', file=sys.stderr)


def _request_quietly(url: str, method: str, warning: str) -> None:
    """Send a request whose failure is only worth a warning on standard error."""
    try:
        urllib.request.urlopen(_request(url, method), timeout=HTTP_TIMEOUT).close()
    except (OSError, urllib.error.URLError) as exc:
        print(f'warning: {warning}: {exc}', file=sys.stderr)


def put(url: str, source: str) -> None:
    """Upload ``source`` with one PUT to a presigned URL."""
    try:
        size = os.path.getsize(source)
        with open(source, 'rb') as handle:
            request = urllib.request.Request(
                url,
                data=handle,
                method='PUT',
                headers={'Content-Length': str(size), 'Content-Type': 'application/octet-stream'},
            )
            urllib.request.urlopen(request, timeout=HTTP_TIMEOUT).close()
    except (OSError, urllib.error.URLError) as exc:
        raise CopyError(f'staging {source} failed: {exc}') from exc


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = argparse.ArgumentParser(prog='python -m aiida_firecrest.server.jobs.s3_copy', description=__doc__)
    commands = parser.add_subparsers(dest='command', required=True)
    fetch_parser = commands.add_parser('fetch', help='wait for a staged object and write it to a file')
    fetch_parser.add_argument('--head', required=True, help='presigned HEAD URL of the object')
    fetch_parser.add_argument('--get', required=True, help='presigned GET URL of the object')
    fetch_parser.add_argument('--delete', required=True, help='presigned DELETE URL of the object')
    fetch_parser.add_argument('--abort', required=True, help='presigned URL aborting the multipart upload')
    fetch_parser.add_argument('--wait', type=float, required=True, help='seconds to wait for the object')
    fetch_parser.add_argument(
        '--check-interval', type=float, required=True, help='seconds between two checks of whether the object exists'
    )
    fetch_parser.add_argument('--part-size', type=int, required=True, help='bytes fetched by each ranged GET')
    fetch_parser.add_argument('--fail-at-part', type=int, default=None, help='answer this part 500 (a fault)')
    fetch_parser.add_argument('target')
    put_parser = commands.add_parser('put', help='upload a file to a presigned PUT URL')
    put_parser.add_argument('--url', required=True, help='presigned PUT URL')
    put_parser.add_argument('source')
    args = parser.parse_args(argv)
    try:
        if args.command == 'fetch':
            fetch(
                args.head,
                args.get,
                args.delete,
                args.abort,
                args.target,
                args.wait,
                check_interval=args.check_interval,
                part_size=args.part_size,
                fail_at_part=args.fail_at_part,
            )
        else:
            put(args.url, args.source)
    except CopyError as exc:
        print(exc, file=sys.stderr)
        return exc.exit_status
    return 0


if __name__ == '__main__':
    sys.exit(main())
