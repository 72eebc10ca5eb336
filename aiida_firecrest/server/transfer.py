"""The ``/filesystem/{system_name}/transfer`` routes: file operations run as batch jobs, and staged transfers.

Every route submits a real job through the job backend, as the real server submits a Slurm job: a bash script with the
transfer directives of ``/status/systems``, its output and error in hidden log files of the first exposed directory
(the real server uses the user's home). Staging jobs bear the real server's names (``IngressFileTransfer``,
``OutgressFileTransfer``); the names of the others (``CopyFiles``...) were not observed and are this server's own.
The output log gets the line that pyfirecrest looks for (``Files were successfully ...`` / ``File was successfully
...``) only when the operation succeeded; otherwise the job exits non-zero with the error in its error log.

Staged uploads and downloads go through the S3 staging area (:mod:`~aiida_firecrest.server.staging`); without one the
routes answer 503. Unlike the real server's job, which checks for the uploaded object once a minute, the upload job
polls every 0.2 s, so that a staged upload takes seconds.
"""

from __future__ import annotations

import os
import shlex
import sys
import uuid
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import AliasChoices, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

import aiida_firecrest

from .auth import User
from .errors import ApiError
from .jobs import JobBackend, JobSpec
from .paths import confine
from .settings import ServerSettings
from .staging import Staging
from .status import DATATRANSFER_JOBS_DIRECTIVES, known_system

router = APIRouter(prefix='/filesystem', tags=['transfer'], dependencies=[Depends(known_system)])

Compression = Literal['none', 'bzip2', 'gzip', 'xz']
_TAR_FLAGS = {'none': '', 'gzip': 'z', 'bzip2': 'j', 'xz': 'J'}
_PACKAGE_ROOT = str(Path(aiida_firecrest.__file__).resolve().parents[1])
"""Where ``aiida_firecrest`` is imported from, put on the ``PYTHONPATH`` of staging jobs."""
S3_COPY = [sys.executable, '-m', 'aiida_firecrest.server.jobs.s3_copy']
"""The command of the staging helper, run by the server's own Python."""


class _Request(BaseModel):
    """A transfer request; fields are accepted in camelCase (the spec) and snake_case (pyfirecrest)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    account: str | None = None


class CopyRequest(_Request):
    """The body of ``transfer/cp``."""

    source_path: str
    target_path: str
    dereference: bool = False


class MoveRequest(_Request):
    """The body of ``transfer/mv``."""

    source_path: str
    target_path: str


class CompressRequest(_Request):
    """The body of ``transfer/compress``."""

    source_path: str
    target_path: str
    dereference: bool = False
    compression: Compression = 'gzip'
    match_pattern: str | None = None


class ExtractRequest(_Request):
    """The body of ``transfer/extract``."""

    source_path: str
    target_path: str
    compression: Compression = 'gzip'


class TransferDirectives(_Request):
    """How a staged transfer goes: only ``s3`` is supported."""

    transfer_method: str = 's3'
    file_size: int | None = None


class UploadRequest(_Request):
    """The body of ``transfer/upload``."""

    path: str = Field(validation_alias=AliasChoices('path', 'sourcePath', 'source_path'))
    """The target file: pyfirecrest sends ``path``, the specification names it ``sourcePath``."""
    transfer_directives: TransferDirectives


class DownloadRequest(_Request):
    """The body of ``transfer/download``."""

    source_path: str
    transfer_directives: TransferDirectives = Field(default_factory=TransferDirectives)


def _settings(request: Request) -> ServerSettings:
    settings: ServerSettings = request.app.state.settings
    return settings


def _staging(request: Request, directives: TransferDirectives) -> Staging:
    """Return the staging area, or raise the answer to a transfer it cannot do."""
    if directives.transfer_method != 's3':
        raise ApiError(400, f"Transfer method '{directives.transfer_method}' is not supported by this server.")
    staging: Staging | None = request.app.state.staging
    if staging is None:
        raise ApiError(503, 'Staged transfers are not available: the server has no S3 staging area.')
    return staging


HTML_ESCAPES = {'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&#34;', "'": '&#39;'}
"""What the real server's HTML autoescaping (Jinja2 with MarkupSafe) makes of the characters it escapes."""


def html_escape(text: str) -> str:
    """Return ``text`` as an autoescaping template renders it."""
    return ''.join(HTML_ESCAPES.get(char, char) for char in text)


def script_path(settings: ServerSettings, path: str) -> str:
    """Return ``path`` as the real server writes it into a transfer-job script: HTML-escaped and inside single quotes.

    With ``realism.html_escaped_job_paths`` off the path is not escaped, and with ``realism.shell_quoting`` off it is
    quoted with :func:`shlex.quote`.
    """
    text = html_escape(path) if settings.realism.html_escaped_job_paths else path
    return f"'{text}'" if settings.realism.shell_quoting else shlex.quote(text)


def _command(*argv: str) -> str:
    return shlex.join(argv)


async def _submit_transfer(
    request: Request,
    system_name: str,
    name: str,
    commands: list[str],
    success: str,
    account: str | None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Submit a transfer job running ``commands`` and return the ``TransferJob`` dict of the answer."""
    settings = _settings(request)
    working_directory = str(settings.roots[0])
    token = uuid.uuid4()
    output_log = f'{working_directory}/.f7t_file_handling_job_{token}.log'
    error_log = f'{working_directory}/.f7t_file_handling_job_error_{token}.log'
    script = '\n'.join(
        ['#!/bin/bash', *DATATRANSFER_JOBS_DIRECTIVES, 'set -eo pipefail', *commands, _command('echo', success), '']
    )
    spec = JobSpec(
        script=script,
        working_directory=working_directory,
        name=name,
        account=account,
        standard_output=output_log,
        standard_error=error_log,
        env=env or {},
    )
    backend: JobBackend = request.app.state.jobs
    job_id = await backend.submit(spec)
    return {
        'jobId': job_id,
        'system': system_name,
        'workingDirectory': working_directory,
        'logs': {'outputLog': output_log, 'errorLog': error_log},
    }


@router.post('/{system_name}/transfer/cp', status_code=201)
async def copy(system_name: str, body: CopyRequest, request: Request, user: User) -> dict[str, Any]:
    """Copy a file or directory in a job."""
    settings = _settings(request)
    source, target = confine(body.source_path, settings), confine(body.target_path, settings)
    flags = 'L' if body.dereference else 'd'
    command = f'cp --force -R{flags} --preserve=all -- {script_path(settings, source)} {script_path(settings, target)}'
    job = await _submit_transfer(
        request, system_name, 'CopyFiles', [command], 'Files were successfully copied.', body.account
    )
    return {'transferJob': job}


@router.post('/{system_name}/transfer/mv', status_code=201)
async def move(system_name: str, body: MoveRequest, request: Request, user: User) -> dict[str, Any]:
    """Move or rename a file or directory in a job."""
    settings = _settings(request)
    source, target = confine(body.source_path, settings), confine(body.target_path, settings)
    command = f'mv -- {script_path(settings, source)} {script_path(settings, target)}'
    job = await _submit_transfer(
        request, system_name, 'MoveFiles', [command], 'Files were successfully moved.', body.account
    )
    return {'transferJob': job}


@router.delete('/{system_name}/transfer/rm', status_code=200)
async def remove(
    system_name: str, path: str, request: Request, user: User, account: str | None = None
) -> dict[str, Any]:
    """Remove a file or directory (recursively) in a job; answers 200, not 201, as the real server."""
    settings = _settings(request)
    command = f'rm -R -- {script_path(settings, confine(path, settings))}'
    job = await _submit_transfer(
        request, system_name, 'DeleteFiles', [command], 'Files were successfully removed.', account or None
    )
    return {'transferJob': job}


@router.post('/{system_name}/transfer/compress', status_code=201)
async def compress(system_name: str, body: CompressRequest, request: Request, user: User) -> dict[str, Any]:
    """Archive a file or directory with tar in a job; with a ``matchPattern``, the files that ``find`` matches.

    As the real server's job: with ``realism.compress_pattern_in_parent``, ``find`` runs in the parent of the source
    (named unquoted, as the real script names it) and the pattern matches ``./<source name>/...``; unlike
    ``ops/compress``, the job honours the compression.
    """
    settings = _settings(request)
    source, target = confine(body.source_path, settings), confine(body.target_path, settings)
    options = '--dereference ' if body.dereference else ''
    tar = f'tar {options}-c{_TAR_FLAGS[body.compression]}vf {script_path(settings, target)}'
    directory, name = os.path.split(source)
    if body.match_pattern:
        if settings.realism.compress_pattern_in_parent:
            where = html_escape(directory) if settings.realism.html_escaped_job_paths else directory
        else:
            where = script_path(settings, source)
        find = f'find . -type f -regex {script_path(settings, body.match_pattern)} -print0'
        commands = [f'cd {where}', f'{find} | {tar} --null --files-from -']
    else:
        commands = [f'{tar} -C {script_path(settings, directory)} {script_path(settings, name)}']
    job = await _submit_transfer(
        request, system_name, 'CompressFiles', commands, 'Files were successfully compressed.', body.account
    )
    return {'transferJob': job}


@router.post('/{system_name}/transfer/extract', status_code=201)
async def extract(system_name: str, body: ExtractRequest, request: Request, user: User) -> dict[str, Any]:
    """Extract a tar archive into a directory in a job."""
    settings = _settings(request)
    source, target = confine(body.source_path, settings), confine(body.target_path, settings)
    flag = _TAR_FLAGS[body.compression]
    command = f'tar -x{flag}f {script_path(settings, source)} -C {script_path(settings, target)}'
    job = await _submit_transfer(
        request, system_name, 'ExtractFiles', [command], 'Files were successfully extracted.', body.account
    )
    return {'transferJob': job}


def _staging_env() -> dict[str, str]:
    """The environment of a staging job: the server's package importable by the server's Python."""
    python_path = os.environ.get('PYTHONPATH')
    return {'PYTHONPATH': _PACKAGE_ROOT + (os.pathsep + python_path if python_path else '')}


@router.post('/{system_name}/transfer/upload', status_code=201)
async def upload(system_name: str, body: UploadRequest, request: Request, user: User) -> dict[str, Any]:
    """Start a staged upload: a multipart upload for the client's parts, and a job moving the result to ``path``."""
    settings = _settings(request)
    staging = _staging(request, body.transfer_directives)
    target = confine(body.path, settings)
    staged = await staging.prepare_upload(user, os.path.basename(target), body.transfer_directives.file_size or 0)
    command = _command(
        *S3_COPY,
        'fetch',
        f'--head={staged.head_url}',
        f'--get={staged.get_url}',
        f'--delete={staged.delete_url}',
        f'--abort={staged.abort_url}',
        f'--wait={staging.s3.url_lifetime}',
        f'--check-interval={settings.upload_check_interval:g}',
        f'--part-size={staging.s3.max_part_size}',
        *([] if (part := settings.faults.staged_upload_fails_at_part) is None else [f'--fail-at-part={part}']),
        '--',
    )
    command = f'{command} {script_path(settings, target)}'
    job = await _submit_transfer(
        request,
        system_name,
        'IngressFileTransfer',
        [command],
        'File was successfully moved from the staging area.',
        body.account,
        _staging_env(),
    )
    directives = {
        'transferMethod': 's3',
        'partsUploadUrls': staged.parts_upload_urls,
        'completeUploadUrl': staged.complete_upload_url,
        'maxPartSize': staging.s3.max_part_size,
    }
    return {'transferJob': job, 'transferDirectives': directives}


@router.post('/{system_name}/transfer/download', status_code=201)
async def download(system_name: str, body: DownloadRequest, request: Request, user: User) -> dict[str, Any]:
    """Start a staged download: a job putting ``sourcePath`` into the staging area, where the client gets it."""
    settings = _settings(request)
    staging = _staging(request, body.transfer_directives)
    source = confine(body.source_path, settings)
    staged = await staging.prepare_download(user, os.path.basename(source))
    command = f'{_command(*S3_COPY, "put", f"--url={staged.put_url}", "--")} {script_path(settings, source)}'
    job = await _submit_transfer(
        request,
        system_name,
        'OutgressFileTransfer',
        [command],
        'File was successfully uploaded to the staging area.',
        body.account,
        _staging_env(),
    )
    return {'transferJob': job, 'transferDirectives': {'transferMethod': 's3', 'downloadUrl': staged.download_url}}
