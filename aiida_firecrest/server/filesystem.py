"""The ``/filesystem/{system_name}/ops`` routes: direct file operations, answered at once.

Each operation runs the command the real server runs over SSH (``ls``, ``stat``, ``head``, ``mkdir``, ``tar``...), in
the C locale, so that a failure carries the command's own message and the status the real server derives from it (see
:meth:`~aiida_firecrest.server.errors.ApiError.from_command`). Every path is confined to the exposed roots first. Only
uploads and downloads move bytes in-process (in worker threads), and word their failures as the command would.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from typing import Annotated, Any, BinaryIO, Literal

from fastapi import APIRouter, Depends, Query, Request, UploadFile
from fastapi.responses import StreamingResponse
from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from . import commands, listing
from .auth import User
from .errors import ApiError
from .paths import confine
from .settings import ServerSettings
from .status import check_system

router = APIRouter(prefix='/filesystem/{system_name}/ops', tags=['filesystem'])

DEFAULT_LINES = 10
"""The lines ``head`` and ``tail`` output when the request names no count, as the commands do by default."""

CHUNK_SIZE = 64 * 1024
"""The size of the pieces a download is streamed in, in bytes."""

TAR_COMPRESSION = {'none': (), 'gzip': ('--gzip',), 'bzip2': ('--bzip2',), 'xz': ('--xz',)}
"""The ``tar`` options of each ``CompressionType`` of the API."""

Compression = Literal['none', 'gzip', 'bzip2', 'xz']


async def system_settings(system_name: str, request: Request, user: User) -> ServerSettings:
    """The FastAPI dependency of every route: authenticate, check the system and return the server's settings."""
    settings: ServerSettings = request.app.state.settings
    check_system(system_name, settings)
    return settings


System = Annotated[ServerSettings, Depends(system_settings)]
PathQuery = Annotated[str, Query(description='An absolute path on the system')]
Flag = Annotated[bool, Query()]


class _Body(BaseModel):
    """A request body; as on the real server, fields are read by their camelCase or snake_case names."""

    model_config = ConfigDict(extra='ignore')

    path: str = Field(validation_alias=AliasChoices('sourcePath', 'source_path', 'path'))


class MkdirBody(_Body):
    """The ``PostMakeDirRequest``: the directory, and whether to make its parents."""

    parent: bool = False


class ChmodBody(_Body):
    """The ``PutFileChmodRequest``: the path and its new mode (as ``chmod`` takes it)."""

    mode: str


class ChownBody(_Body):
    """The ``PutFileChownRequest``: the path and its new owner and/or group."""

    owner: str = ''
    group: str = ''


class SymlinkBody(_Body):
    """The ``PostFileSymlinkRequest``: the target (``sourcePath``) and the link to make."""

    link_path: str = Field(validation_alias=AliasChoices('linkPath', 'link_path'))


class ExtractBody(_Body):
    """The ``PostExtractRequest``: the archive, the directory to extract it into and its compression."""

    target_path: str = Field(validation_alias=AliasChoices('targetPath', 'target_path'))
    compression: Compression = 'gzip'


class CompressBody(ExtractBody):
    """The ``PostCompressRequest``: the file or directory, the archive to make, and what to put into it."""

    dereference: bool = False
    match_pattern: str | None = Field(default=None, validation_alias=AliasChoices('matchPattern', 'match_pattern'))


def command(*argv: str, cwd: str | None = None) -> list[str]:
    """Return ``argv`` run in the C locale (for the messages of the real server) and in directory ``cwd``."""
    return ['env', *([f'--chdir={cwd}'] if cwd else []), 'LC_ALL=C', *argv]


async def run(settings: ServerSettings, *argv: str, stdin: bytes | None = None, cwd: str | None = None) -> str:
    """Run :func:`command` as the real server runs a command, and return its output.

    :raises ApiError: the real server's error if the command fails, 408 if it outlasts ``settings.command_timeout``.
    """
    return await commands.check(command(*argv, cwd=cwd), settings.command_timeout, stdin=stdin)


def text(output: str) -> str:
    """Return command output as JSON-safe text, undecodable bytes replaced."""
    return output.encode(errors='surrogateescape').decode(errors='replace')


def os_failure(exc: OSError, context: str) -> ApiError:
    """Return the error of an in-process file operation, worded as the command whose ``context`` it takes."""
    return ApiError.from_command(1, f'{context}: {exc.strerror}')


async def describe(settings: ServerSettings, path: str) -> dict[str, Any]:
    """Return the ``File`` of ``path`` itself, named by its full path."""
    return listing.parse_ls(await run(settings, *listing.ls_argv(path, itself=True)), path)[0]


@router.get('/ls')
async def ls(
    settings: System,
    path: PathQuery,
    show_hidden: Annotated[bool, Query(alias='showHidden')] = False,
    numeric_uid: Annotated[bool, Query(alias='numericUid')] = False,
    recursive: Flag = False,
    dereference: Flag = False,
) -> dict[str, Any]:
    """List a directory (``ls -l``), or a file or link by itself."""
    target = confine(path, settings)
    argv = listing.ls_argv(
        target, show_hidden=show_hidden, recursive=recursive, dereference=dereference, numeric_uid=numeric_uid
    )
    return {'output': listing.parse_ls(await run(settings, *argv), target)}


@router.get('/stat')
async def stat(settings: System, path: PathQuery, dereference: Flag = False) -> dict[str, Any]:
    """Report the ``stat`` of a path, of the link itself unless ``dereference``."""
    target = confine(path, settings)
    argv = ['stat', *(['--dereference'] if dereference else []), listing.STAT_FORMAT, '--', target]
    return {'output': listing.parse_stat(await run(settings, *argv))}


@router.get('/file')
async def file_type(settings: System, path: PathQuery) -> dict[str, Any]:
    """Report the type of a file (``file -b``)."""
    target = confine(path, settings)
    result = await commands.run(command('file', '-b', '-E', '--', target), settings.command_timeout)
    if result.exit_status != 0:
        raise ApiError.from_command(result.exit_status, result.stderr or result.stdout)  # ``file`` errs on stdout
    return {'output': text(result.stdout).rstrip('\n')}


@router.get('/checksum')
async def checksum(settings: System, path: PathQuery) -> dict[str, Any]:
    """Report the SHA-256 checksum of a file."""
    target = confine(path, settings)
    output = await run(settings, 'sha256sum', '--', target)
    return {'output': {'algorithm': 'SHA256', 'checksum': output.split()[0].lstrip('\\')}}


def window(num_bytes: int | None, lines: int | None) -> tuple[str, int]:
    """Return the ``ContentUnit`` and the count of the window a ``head`` or ``tail`` request asks for.

    :raises ApiError: 400 if both a number of bytes and of lines are given.
    """
    if num_bytes is not None and lines is not None:
        raise ApiError(400, "The parameters 'bytes' and 'lines' are mutually exclusive.")
    return ('bytes', num_bytes) if num_bytes is not None else ('lines', DEFAULT_LINES if lines is None else lines)


def content(output: str, unit: str, start: int, end: int) -> dict[str, Any]:
    """Return the ``FileContent`` answer of a ``head`` or ``tail`` command."""
    return {'output': {'content': text(output), 'contentType': unit, 'startPosition': start, 'endPosition': end}}


@router.get('/head')
async def head(
    settings: System,
    path: PathQuery,
    num_bytes: Annotated[int | None, Query(alias='bytes', ge=0)] = None,
    lines: Annotated[int | None, Query(ge=0)] = None,
    skip_trailing: Annotated[bool, Query(alias='skipTrailing')] = False,
) -> dict[str, Any]:
    """Output the first bytes or lines of a file, or all but the last ones.

    The positions of the ``FileContent`` echo the window: from 0 to the count, or to minus the count when skipping the
    trailing ones.
    """
    target = confine(path, settings)
    unit, count = window(num_bytes, lines)
    end = -count if skip_trailing else count
    return content(await run(settings, 'head', f'--{unit}={end}', '--', target), unit, 0, end)


@router.get('/tail')
async def tail(
    settings: System,
    path: PathQuery,
    num_bytes: Annotated[int | None, Query(alias='bytes', ge=0)] = None,
    lines: Annotated[int | None, Query(ge=0)] = None,
    skip_heading: Annotated[bool, Query(alias='skipHeading')] = False,
) -> dict[str, Any]:
    """Output the last bytes or lines of a file, or all but the first ones.

    The positions of the ``FileContent`` echo the window: from minus the count, or from the count when skipping the
    heading ones, to -1 (the end).
    """
    target = confine(path, settings)
    unit, count = window(num_bytes, lines)
    start = count if skip_heading else -count
    option = f'+{count + 1}' if skip_heading else str(count)  # ``tail --lines=+N`` starts at the N-th line
    return content(await run(settings, 'tail', f'--{unit}={option}', '--', target), unit, start, -1)


@router.get('/view')
async def view(
    settings: System,
    path: PathQuery,
    size: Annotated[int | None, Query(ge=0)] = None,
    offset: Annotated[int | None, Query(ge=0)] = None,
) -> dict[str, Any]:
    """Output ``size`` bytes of a file (by default the direct-transfer limit) from byte ``offset``."""
    target = confine(path, settings)
    size = settings.max_ops_file_size if size is None else size
    span = [f'skip={offset or 0}', f'count={size}']
    output = await run(settings, 'dd', f'if={target}', 'iflag=skip_bytes,count_bytes', *span, 'bs=1M', 'status=none')
    return {'output': text(output)}


@router.post('/mkdir', status_code=201)
async def mkdir(settings: System, body: MkdirBody) -> dict[str, Any]:
    """Create a directory, with its parents if asked; answer its ``File``."""
    target = confine(body.path, settings)
    await run(settings, 'mkdir', *(['-p'] if body.parent else []), '--', target)
    return {'output': await describe(settings, target)}


@router.put('/chmod')
async def chmod(settings: System, body: ChmodBody) -> dict[str, Any]:
    """Change the mode of a path; answer its ``File``."""
    target = confine(body.path, settings)
    await run(settings, 'chmod', '--', body.mode, target)
    return {'output': await describe(settings, target)}


@router.put('/chown')
async def chown(settings: System, body: ChownBody) -> dict[str, Any]:
    """Change the owner and/or group of a path; answer its ``File``."""
    target = confine(body.path, settings)
    owner = f'{body.owner}:{body.group}' if body.group else body.owner
    await run(settings, 'chown', '--', owner, target)
    return {'output': await describe(settings, target)}


@router.post('/symlink', status_code=201)
async def symlink(settings: System, body: SymlinkBody) -> dict[str, Any]:
    """Create a symbolic link at ``linkPath`` to ``sourcePath``; answer the link's ``File``."""
    source, link = confine(body.path, settings), confine(body.link_path, settings)
    await run(settings, 'ln', '-s', '--', source, link)
    return {'output': await describe(settings, link)}


@router.delete('/rm', status_code=204)
async def rm(settings: System, path: PathQuery) -> None:
    """Delete a file, a link or a directory with its contents (``rm -R``)."""
    await run(settings, 'rm', '-R', '--', confine(path, settings))


@router.post('/compress', status_code=204)
async def compress(settings: System, body: CompressBody) -> None:
    """Archive a file or a directory with ``tar``; with a ``matchPattern``, the files in it whose ``./`` paths match.

    A command outlasting ``settings.command_timeout`` answers 408, and clients fall back to a transfer job.
    """
    source, archive = confine(body.path, settings), confine(body.target_path, settings)
    create = ['tar', '--create', *TAR_COMPRESSION[body.compression], f'--file={archive}']
    create += ['--dereference'] if body.dereference else []
    if body.match_pattern is None:
        parent, name = os.path.split(source)
        await run(settings, *create, f'--directory={parent}', '--', name)
        return
    found = await run(settings, 'find', '.', '-type', 'f', '-regex', body.match_pattern, '-print0', cwd=source)
    names = found.encode(errors='surrogateescape')
    await run(settings, *create, f'--directory={source}', '--null', '--files-from=-', stdin=names)


@router.post('/extract', status_code=204)
async def extract(settings: System, body: ExtractBody) -> None:
    """Extract a ``tar`` archive into a directory; 408 as for ``compress``."""
    archive, directory = confine(body.path, settings), confine(body.target_path, settings)
    compression = TAR_COMPRESSION[body.compression]
    await run(settings, 'tar', '--extract', *compression, f'--file={archive}', f'--directory={directory}')


def write_atomically(source: BinaryIO, target: str) -> None:
    """Copy ``source`` to ``target`` through a new file beside it, renamed over ``target`` only when complete.

    :raises ApiError: worded as ``dd`` would word the failure to write ``target``.
    """
    directory, name = os.path.split(target)
    part = os.path.join(directory, f'.{name}.{uuid.uuid4().hex}.part')
    try:
        descriptor = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        raise os_failure(exc, f"dd: failed to open '{target}'") from exc
    try:
        with os.fdopen(descriptor, 'wb') as handle:
            shutil.copyfileobj(source, handle)
        os.replace(part, target)
    except OSError as exc:
        raise os_failure(exc, f"dd: failed to open '{target}'") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(part)  # left only if the copy or the rename failed


@router.post('/upload', status_code=204)
async def upload(settings: System, path: PathQuery, file: UploadFile) -> None:
    """Write the uploaded file into the directory ``path``, under the file name of the multipart part.

    :raises ApiError: 413 above the direct-transfer limit, 404 if the directory does not exist.
    """
    target = confine(os.path.join(confine(path, settings), file.filename or ''), settings)
    if (file.size or 0) > settings.max_ops_file_size:
        raise ApiError(413, 'File to upload is too large.')
    await asyncio.to_thread(write_atomically, file.file, target)


def open_for_download(path: str) -> BinaryIO:
    """Open ``path`` for reading, without waiting for the writer of a FIFO (it reads as empty then).

    :raises ApiError: worded as ``cat`` would word the failure, e.g. for a directory.
    """
    try:
        return open(path, 'rb', opener=lambda name, flags: os.open(name, flags | os.O_NONBLOCK))  # closed by chunks()
    except OSError as exc:
        raise os_failure(exc, f'cat: {path}') from exc


def chunks(handle: BinaryIO) -> Iterator[bytes]:
    """Yield the contents of ``handle`` piece by piece, then close it."""
    with handle:
        while chunk := handle.read(CHUNK_SIZE):
            yield chunk


@router.get('/download')
async def download(settings: System, path: PathQuery) -> StreamingResponse:
    """Answer the bytes of a file.

    :raises ApiError: 413 above the direct-transfer limit, 400 for a directory, 404 for a missing path.
    """
    target = confine(path, settings)
    size = int(await run(settings, 'stat', '--dereference', '--format=%s', '--', target))
    if size > settings.max_ops_file_size:
        raise ApiError(413, 'File to download is too large.')
    handle = await asyncio.to_thread(open_for_download, target)
    return StreamingResponse(chunks(handle), media_type='application/octet-stream')
