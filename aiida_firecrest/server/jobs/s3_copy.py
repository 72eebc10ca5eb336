"""Copy files between the cluster and the S3 staging area through presigned URLs; run inside transfer jobs.

::

    python -m aiida_firecrest.server.jobs.s3_copy fetch --head URL --get URL --delete URL --abort URL --wait S TARGET
    python -m aiida_firecrest.server.jobs.s3_copy put --url URL SOURCE

``fetch`` waits until the object exists (the client completes its multipart upload after the job starts), polling its
HEAD URL every :data:`POLL_INTERVAL` seconds for at most ``--wait`` seconds, writes it to ``TARGET`` atomically (a
temporary file beside it, then a rename) and deletes the object; if the object does not appear in time, it aborts the
multipart upload, whose parts would otherwise stay in the staging area. ``put`` uploads ``SOURCE`` with one PUT.
Both exit with status 1 and a message on standard error when they fail. Only the standard library is used, so that
any Python on the cluster can run it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence

POLL_INTERVAL = 0.2
"""Seconds between two checks of whether the staged object exists."""
CHUNK_SIZE = 1024 * 1024
HTTP_TIMEOUT = 60.0


class CopyError(Exception):
    """A copy that failed, with the message for standard error."""


def _request(url: str, method: str) -> urllib.request.Request:
    return urllib.request.Request(url, method=method)


def object_exists(head_url: str) -> bool:
    """Return whether the object of a presigned HEAD URL exists.

    :raises CopyError: for an answer other than 200 or 404 (e.g. 403 when the URL expired).
    """
    try:
        with urllib.request.urlopen(_request(head_url, 'HEAD'), timeout=HTTP_TIMEOUT):
            return True
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return False
        raise CopyError(f'checking the staged object failed: HTTP {exc.code} {exc.reason}') from exc


def wait_for_object(head_url: str, wait: float) -> None:
    """Poll until the object exists; raise :class:`CopyError` if it does not within ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while not object_exists(head_url):
        if time.monotonic() > deadline:
            raise CopyError(f'the staged object did not appear within {wait} seconds')
        time.sleep(POLL_INTERVAL)


def fetch(head_url: str, get_url: str, delete_url: str, abort_url: str, target: str, wait: float) -> None:
    """Wait for the staged object, write it to ``target`` atomically and delete it from the staging area; abort its
    multipart upload if it does not appear in time."""
    try:
        wait_for_object(head_url, wait)
    except CopyError:
        _request_quietly(abort_url, 'DELETE', 'the multipart upload was not aborted')
        raise
    directory, name = os.path.split(os.path.abspath(target))
    try:
        handle = tempfile.NamedTemporaryFile(dir=directory, prefix=f'.{name}.', suffix='.part', delete=False)
    except OSError as exc:
        raise CopyError(f'cannot write to {directory}: {exc.strerror}') from exc
    try:
        with handle, urllib.request.urlopen(_request(get_url, 'GET'), timeout=HTTP_TIMEOUT) as answer:
            shutil.copyfileobj(answer, handle, CHUNK_SIZE)
        os.chmod(handle.name, 0o666 & ~_umask())
        os.replace(handle.name, target)
    except (OSError, urllib.error.URLError) as exc:
        with contextlib.suppress(OSError):
            os.unlink(handle.name)
        raise CopyError(f'fetching the staged object to {target} failed: {exc}') from exc
    _request_quietly(delete_url, 'DELETE', 'the staged object was not deleted')


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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


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
    fetch_parser.add_argument('target')
    put_parser = commands.add_parser('put', help='upload a file to a presigned PUT URL')
    put_parser.add_argument('--url', required=True, help='presigned PUT URL')
    put_parser.add_argument('source')
    args = parser.parse_args(argv)
    try:
        if args.command == 'fetch':
            fetch(args.head, args.get, args.delete, args.abort, args.target, args.wait)
        else:
            put(args.url, args.source)
    except CopyError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
