"""The ``/filesystem/{system_name}/ops`` routes: direct file operations, answered at once.

Each operation builds the command line the real server builds (``timeout N ls ... -- '<path>'``, the paths inside
single quotes) and runs it with ``bash -c`` through :func:`~aiida_firecrest.server.commands.run_line`, as the real
server runs it over SSH; a failure carries the command's own message and the status the real server derives from it
(see :meth:`~aiida_firecrest.server.errors.ApiError.from_command`). Uploads and downloads move their bytes through
``base64``, as on the real server. Every path is confined to the exposed roots first. Where a behaviour of the real
server has a kind alternative, :class:`~aiida_firecrest.server.settings.RealismSettings` chooses.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import os
import shlex
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response, UploadFile
from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from . import commands, listing
from .errors import ApiError
from .paths import confine
from .settings import ServerSettings
from .status import known_system

router = APIRouter(prefix='/filesystem/{system_name}/ops', tags=['filesystem'], dependencies=[Depends(known_system)])

DEFAULT_LINES = 10
"""The position the real server answers for ``head`` and ``tail`` without a count (the commands' 10 lines)."""

DEFAULT_VIEW_SIZE = 5 * 1024 * 1024
"""The real server's ``size`` of a ``view`` without one (whatever ``max_ops_file_size`` is)."""

TAR_FLAG = {'none': '', 'gzip': 'z', 'bzip2': 'j', 'xz': 'J'}
"""The ``tar`` flag of each ``CompressionType`` of the API."""

Compression = Literal['none', 'gzip', 'bzip2', 'xz']

System = Annotated[ServerSettings, Depends(known_system)]
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


class Shell:
    """Build and run command lines as the real server does, with the server's settings.

    :param settings: the command timeout, the buffer limit (``max_ops_file_size``) and the realism of quoting and
        error statuses.
    """

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.realism = settings.realism

    def quote(self, text: str) -> str:
        """Return ``text`` quoted for the command line: inside single quotes, unescaped, as the real server quotes it
        (a ``'`` in it ends the quotes), or with :func:`shlex.quote` for the kind behaviour."""
        return f"'{text}'" if self.realism.shell_quoting else shlex.quote(text)

    @property
    def timeout(self) -> str:
        """The ``timeout`` prefix of every command, as the real server's."""
        return f'timeout {self.settings.command_timeout:g}'

    async def run(self, command: str, *, stdin: bytes = b'', close_empty_input: bool = False) -> str:
        """Run ``command`` after :attr:`timeout` and return its output.

        :raises ApiError: the real server's error if the command fails, 413 if an output fills the buffer, 408
            (:class:`~aiida_firecrest.server.commands.CommandTimeoutError`) if it outlasts the command timeout.
        """
        result = await self.run_line(f'{self.timeout} {command}', stdin=stdin, close_empty_input=close_empty_input)
        return result.stdout

    async def run_line(
        self, line: str, *, stdin: bytes = b'', close_empty_input: bool = False
    ) -> commands.CommandResult:
        """Run the whole command line ``line``; raise the real server's error if it fails."""
        result = await commands.run_line(
            line,
            self.settings.command_timeout,
            buffer_limit=self.settings.max_ops_file_size,
            stdin=stdin,
            close_empty_input=close_empty_input,
        )
        if result.exit_status != 0:
            real = self.realism.real_error_statuses
            raise ApiError.from_command(result.exit_status, result.stderr, real_statuses=real)
        return result

    def ls(self, path: str, **options: bool) -> str:
        """Return the ``ls`` command of ``path`` with ``options`` (see :func:`~.listing.ls_command`)."""
        return f'{self.timeout} {listing.ls_command(self.quote(path), **options)}'

    def entries(self, output: str) -> list[dict[str, str | None]]:
        """Return the ``File`` entries of ``ls`` output, names C-escaped or decoded as the settings say."""
        return listing.parse_ls(output, decode=not self.realism.c_quoted_names)

    async def then_describe(self, command: str, path: str) -> dict[str, Any] | None:
        """Run ``command``, then ``ls -d`` of ``path`` in the same line (as the real server does after ``mkdir``,
        ``chmod``, ``chown`` and ``ln``); return the ``File`` of ``path``."""
        result = await self.run_line(f'{command} && {self.ls(path, itself=True)}')
        entries = self.entries(result.stdout)
        return entries[0] if entries else None


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
    shell = Shell(settings)
    command = shell.ls(
        confine(path, settings),
        show_hidden=show_hidden,
        numeric_uid=numeric_uid,
        recursive=recursive,
        dereference=dereference,
    )
    return {'output': shell.entries((await shell.run_line(command)).stdout)}


@router.get('/stat')
async def stat(settings: System, path: PathQuery, dereference: Flag = False) -> dict[str, Any]:
    """Report the ``stat`` of a path, of the link itself unless ``dereference``."""
    shell = Shell(settings)
    option = '--dereference' if dereference else ''
    output = await shell.run(f'stat {option} -c {listing.STAT_FORMAT} -- {shell.quote(confine(path, settings))}')
    return {'output': listing.parse_stat(output)}


@router.get('/file')
async def file_type(settings: System, path: PathQuery) -> dict[str, Any]:
    """Report the type of a file (``file -b``); a missing path is reported by ``file`` itself, not as an error."""
    shell = Shell(settings)
    return {'output': (await shell.run(f'file -b -- {shell.quote(confine(path, settings))}')).strip()}


@router.get('/checksum')
async def checksum(settings: System, path: PathQuery) -> dict[str, Any]:
    """Report the SHA-256 checksum of a file, taken from ``sha256sum``'s line split on whitespace as the real server.

    :raises ApiError: 500 ``Invalid output`` if the line does not split in two (a name with whitespace), unless
        ``realism.checksum_splits_output`` is off.
    """
    shell = Shell(settings)
    result = await shell.run_line(f'{shell.timeout} sha256sum -- {shell.quote(confine(path, settings))}')
    parts = result.stdout.split()
    if not settings.realism.checksum_splits_output:
        return {'output': {'algorithm': 'SHA256', 'checksum': parts[0].lstrip('\\')}}
    if len(parts) != 2:
        raise ApiError.invalid_output(result.stdout, result.stderr)
    return {'output': {'algorithm': 'SHA256', 'checksum': parts[0]}}


def window_options(num_bytes: int | None, lines: int | None, sign: str) -> str:
    """Return the options of ``head`` or ``tail`` as the real server writes them: none for a missing or zero count.

    :raises ApiError: 400 if both a number of bytes and of lines are given.
    """
    if num_bytes and lines:
        raise ApiError(400, 'Only one of `bytes` or `lines` can be specified.')
    counts = {'bytes': num_bytes, 'lines': lines}
    return ''.join(f"--{name}='{sign}{count}' " for name, count in counts.items() if count)


def content(output: str, num_bytes: int | None, start: int, end: int) -> dict[str, Any]:
    """Return the ``FileContent`` answer of a ``head`` or ``tail`` command."""
    unit = 'bytes' if num_bytes else 'lines'
    return {'output': {'content': output, 'contentType': unit, 'startPosition': start, 'endPosition': end}}


@router.get('/head')
async def head(
    settings: System,
    path: PathQuery,
    num_bytes: Annotated[int | None, Query(alias='bytes')] = None,
    lines: Annotated[int | None, Query()] = None,
    skip_trailing: Annotated[bool, Query(alias='skipTrailing')] = False,
) -> dict[str, Any]:
    """Output the first bytes or lines of a file, or all but the last ones.

    The end position is the count, negated when skipping the trailing ones, 10 without a count (the real server's).
    """
    shell = Shell(settings)
    options = window_options(num_bytes, lines, '-' if skip_trailing else '')
    output = await shell.run(f'head {options}-- {shell.quote(confine(path, settings))}')
    count = lines if lines is not None else num_bytes
    end = DEFAULT_LINES if count is None else (-count if skip_trailing else count)
    return content(output, num_bytes, 0, end)


@router.get('/tail')
async def tail(
    settings: System,
    path: PathQuery,
    num_bytes: Annotated[int | None, Query(alias='bytes')] = None,
    lines: Annotated[int | None, Query()] = None,
    skip_heading: Annotated[bool, Query(alias='skipHeading')] = False,
) -> dict[str, Any]:
    """Output the last bytes or lines of a file, or the file from a byte or line on (``tail --lines=+N``).

    The start position is minus the count, the count itself when skipping heading ones, and 10 without a count (the
    real server's, sign included); the end position is -1.
    """
    shell = Shell(settings)
    options = window_options(num_bytes, lines, '+' if skip_heading else '')
    output = await shell.run(f'tail {options}-- {shell.quote(confine(path, settings))}')
    count = lines if lines is not None else num_bytes
    start = DEFAULT_LINES if count is None else (count if skip_heading else -count)
    return content(output, num_bytes, start, -1)


@router.get('/view')
async def view(
    settings: System,
    path: PathQuery,
    size: Annotated[int, Query()] = DEFAULT_VIEW_SIZE,
    offset: Annotated[int, Query()] = 0,
) -> dict[str, Any]:
    """Output ``size`` characters of a file from byte ``offset``, read as the real server reads them (``dd`` of two
    blocks of ``size`` bytes, cut after decoding)."""
    if offset < 0:
        raise ApiError(400, '`offset` value must be an integer value equal or greater than 0')
    if size <= 0:
        raise ApiError(400, '`size` value must be an integer value greater than 0')
    if size > settings.max_ops_file_size:
        raise ApiError(400, f'`size` value must be less than {settings.max_ops_file_size} bytes')
    shell = Shell(settings)
    target = shell.quote(confine(path, settings))
    output = await shell.run(f'dd if={target} bs={size} skip={offset // size} count=2')
    start = offset % size
    return {'output': output[start : start + size]}


@router.post('/mkdir', status_code=201)
async def mkdir(settings: System, body: MkdirBody) -> dict[str, Any]:
    """Create a directory, with its parents if asked; answer its ``File``."""
    shell = Shell(settings)
    target = confine(body.path, settings)
    option = '-p ' if body.parent else ''
    return {'output': await shell.then_describe(f'{shell.timeout} mkdir {option} -- {shell.quote(target)}', target)}


@router.put('/chmod')
async def chmod(settings: System, body: ChmodBody) -> dict[str, Any]:
    """Change the mode of a path; answer its ``File``."""
    shell = Shell(settings)
    target = confine(body.path, settings)
    command = f'{shell.timeout} chmod -v {shell.quote(body.mode)} -- {shell.quote(target)}'
    return {'output': await shell.then_describe(command, target)}


@router.put('/chown')
async def chown(settings: System, body: ChownBody) -> dict[str, Any]:
    """Change the owner and/or group of a path (``owner:group``, as the real server writes it); answer its ``File``."""
    shell = Shell(settings)
    target = confine(body.path, settings)
    owner = f'{shell.quote(body.owner)}:{shell.quote(body.group)}'
    return {'output': await shell.then_describe(f'{shell.timeout} chown -v {owner} -- {shell.quote(target)}', target)}


@router.post('/symlink', status_code=201)
async def symlink(settings: System, body: SymlinkBody) -> dict[str, Any]:
    """Create a symbolic link at ``linkPath`` to ``sourcePath``; answer the link's ``File``."""
    shell = Shell(settings)
    source, link = confine(body.path, settings), confine(body.link_path, settings)
    command = f'{shell.timeout} ln -s -- {shell.quote(source)} {shell.quote(link)}'
    return {'output': await shell.then_describe(command, link)}


@router.delete('/rm', status_code=204)
async def rm(settings: System, path: PathQuery) -> None:
    """Delete a file, a link or a directory with its contents (``rm -r``)."""
    shell = Shell(settings)
    await shell.run(f'rm -r --interactive=never -- {shell.quote(confine(path, settings))}')


def compress_command(shell: Shell, body: CompressBody, source: str, archive: str) -> str:
    """Return the command line of ``ops/compress``.

    With a ``matchPattern`` and ``realism.compress_pattern_in_parent``, the real server's line:
    ``bash -c "cd <parent>; find . -type f -regex '<pattern>' -print0 | tar -czvf '<archive>' --null --files-from -"``,
    the parent unquoted and the pattern and archive inside single quotes within the double quotes, whatever
    ``shell_quoting`` says (``$``, backticks and ``"`` in them belong to the outer shell): ``find`` runs in the parent
    of the source, and the archive is always gzip. Otherwise ``find`` runs in the source, with the requested
    compression.
    """
    options = '--dereference' if body.dereference else ''
    flag = TAR_FLAG[body.compression]
    quote = shell.quote
    if body.match_pattern is None:
        parent, name = os.path.split(source)
        return f'{shell.timeout} tar {options} -c{flag}vf {quote(archive)} -C {quote(parent)} {quote(name)}'
    if shell.realism.compress_pattern_in_parent:
        find = f"{shell.timeout} find . -type f -regex '{body.match_pattern}' -print0"
        tar = f"tar {options} -czvf '{archive}' --null --files-from - "
        return f'{shell.timeout} bash -c "cd {os.path.dirname(source)}; {find} | {tar}"'
    find = f'find . -type f -regex {quote(body.match_pattern)} -print0'
    tar = f'tar {options} -c{flag}vf {quote(archive)} --null --files-from -'
    return f'{shell.timeout} bash -c {quote(f"cd {quote(source)} && {find} | {tar}")}'


@router.post('/compress', status_code=204)
async def compress(settings: System, body: CompressBody) -> None:
    """Archive a file or a directory with ``tar``, or the files that ``find`` matches (see :func:`compress_command`).

    A command outlasting the command timeout answers 408, and clients fall back to a transfer job.
    """
    shell = Shell(settings)
    source, archive = confine(body.path, settings), confine(body.target_path, settings)
    await shell.run_line(compress_command(shell, body, source, archive))


@router.post('/extract', status_code=204)
async def extract(settings: System, body: ExtractBody) -> None:
    """Extract a ``tar`` archive into a directory; 408 as for ``compress``."""
    shell = Shell(settings)
    archive, directory = confine(body.path, settings), confine(body.target_path, settings)
    flag = TAR_FLAG[body.compression]
    await shell.run(f'tar -x{flag}f {shell.quote(archive)} -C {shell.quote(directory)}')


@router.post('/upload', status_code=204)
async def upload(settings: System, path: PathQuery, file: UploadFile) -> None:
    """Write the uploaded file into the directory ``path``, under the file name of the multipart part.

    As on the real server, the content goes base64-encoded into ``base64 -d > '<path>/<file name>'``; an empty file
    sends no end of input, so that the file is created and the answer is 408 after the command timeout (unless
    ``realism.empty_upload_hangs`` is off).

    :raises ApiError: 413 above the direct-transfer limit (before anything runs), 404 if the directory does not exist.
    """
    shell = Shell(settings)
    target = confine(f'{confine(path, settings)}/{file.filename}', settings)
    data = await file.read()
    if len(data) > settings.max_ops_file_size:
        raise ApiError(413, 'File to upload is too large.')
    await shell.run(
        f'base64 -d > {shell.quote(target)}',
        stdin=base64.b64encode(data),
        close_empty_input=not settings.realism.empty_upload_hangs,
    )


def hung_download(settings: ServerSettings, size: int) -> ApiError:
    """Return the answer of a download that hung until the command timeout; the real server's depends on the size.

    When the command timeout ends a download blocked on its full SSH channel, the real server finds the channel
    closed (500 ``('Channel not open for sending',)``) for a file up to twice the limit, and times out (408) for a
    larger one. The local server reads the size of the file to choose (a stat the real server does not make).
    """
    return ApiError.channel_closed() if size <= 2 * settings.max_ops_file_size else ApiError.command_timeout()


async def file_size(path: str) -> int:
    """Return the size of the file ``path`` (following links), 0 if it cannot be read."""
    try:
        return (await asyncio.to_thread(os.stat, path)).st_size
    except OSError:
        return 0


async def read_base64(settings: ServerSettings, path: str) -> str:
    """Return the output of ``base64`` of ``path``, read as :class:`RealismSettings` say (see :func:`download`)."""
    shell = Shell(settings)
    command = f'{shell.timeout} base64 --wrap=0 -- {shell.quote(path)}'
    if not settings.realism.download_buffer_limit:
        if await file_size(path) > settings.max_ops_file_size:
            raise ApiError(413, 'File to download is too large.')
        result = await commands.run_line(command, settings.command_timeout)
        if result.exit_status != 0:
            real = settings.realism.real_error_statuses
            raise ApiError.from_command(result.exit_status, result.stderr, real_statuses=real)
        return result.stdout
    try:
        return (await shell.run_line(command)).stdout
    except commands.CommandTimeoutError as exc:
        raise hung_download(settings, await file_size(path)) from exc


@router.get('/download')
async def download(settings: System, path: PathQuery) -> Response:
    """Answer the bytes of a file, read as the real server reads them: ``base64`` through the output buffer.

    With ``realism.download_buffer_limit`` (see there), only a file up to about 3/4 of ``max_ops_file_size`` comes
    back, and a larger one answers 413 at once or 500/408 after the command timeout; otherwise any file up to the
    limit comes back, and a larger one gets a quick 413.

    :raises ApiError: as said, 500 for a directory, 404 for a missing path.
    """
    output = await read_base64(settings, confine(path, settings))
    try:
        data = base64.b64decode(output)
    except binascii.Error as exc:
        raise ApiError(500, f'Invalid output: {output[:80]}') from exc
    if len(data) > settings.max_ops_file_size:
        raise ApiError(413, 'File to download is too large.')
    return Response(content=data, media_type='application/octet-stream')
