"""Archives on the server, made and unpacked by FirecREST's ``compress`` and ``extract``: the names of their
compressions, the pattern that selects a file whose name FirecREST cannot carry, and the ``strip_components`` that
``extract`` lacks.

(:mod:`aiida_firecrest.transport.local_archives` is the local side.)
"""

from __future__ import annotations

import posixpath
import re

from .backend import FirecrestBackend, gather
from .carried_names import check_jobs_carry

__all__ = ('COMPRESSION_OF_FORMAT', 'compression_of', 'move_stripped', 'single_file_pattern')

COMPRESSION_OF_FORMAT = {'tar': 'none', 'tar.gz': 'gzip', 'tar.bz2': 'bzip2', 'tar.xz': 'xz'}
"""AiiDA's archive formats and FirecREST's names of their compressions."""

_COMPRESSION_OF_SUFFIX = {
    '.tar': 'none',
    '.tar.gz': 'gzip',
    '.tgz': 'gzip',
    '.tar.bz2': 'bzip2',
    '.tbz2': 'bzip2',
    '.tar.xz': 'xz',
    '.txz': 'xz',
}
_COMPRESSION_OF_FILE_TYPE = {'gzip': 'gzip', 'bzip2': 'bzip2', 'xz': 'xz'}


_PATTERN_LITERAL = re.compile(r'[\w,=@%:~-]')
_PATTERN_ESCAPED = {'.': r'\.', '+': r'\+'}


def single_file_pattern(name: str) -> str:
    """The ``matchPattern`` of ``compress`` that selects the file ``name`` in the directory ``find`` runs in (the
    parent of the source: FirecREST matches the pattern against ``./name``), for a name FirecREST cannot carry.

    The pattern travels inside single quotes inside the double quotes of a ``bash -c`` command line, where ``'``,
    ``"``, ``$``, backticks and backslashes would change it: every run of characters other than letters, digits and
    ``,=@%:~-._+`` matches any run of characters but ``/``. It may thus select a few more files than ``name``; the
    caller keeps the exact member.
    """
    parts = ['\\./']
    for char in name:
        if _PATTERN_LITERAL.fullmatch(char):
            parts.append(char)
        elif char in _PATTERN_ESCAPED:
            parts.append(_PATTERN_ESCAPED[char])
        elif parts[-1] != '[^/]*':
            parts.append('[^/]*')
    return ''.join(parts)


async def compression_of(backend: FirecrestBackend, source: str) -> str:
    """The compression of a remote archive: from its name, else from ``file``."""
    name = source.lower()
    for suffix, compression in sorted(_COMPRESSION_OF_SUFFIX.items(), key=lambda item: -len(item[0])):
        if name.endswith(suffix):
            return compression
    description = await backend.file_type(source)
    for word, compression in _COMPRESSION_OF_FILE_TYPE.items():
        if word in description.lower():
            return compression
    return 'none'


async def move_stripped(backend: FirecrestBackend, temporary: str, destination: str, strip_components: int) -> None:
    """Move what lies ``strip_components`` deep in the directory ``temporary`` (an extracted archive) into the
    directory ``destination``: one ``mv`` when the destination is new or empty and everything comes from one
    directory, one per entry otherwise (entries already in the destination are replaced).

    :raises UnsupportedPathError: before anything is moved, if a transfer job would get a path HTML-escaped.
    """
    entries = await backend.list_directory(temporary, recursive=True)
    items = [str(entry['name']) for entry in entries if len(str(entry['name']).split('/')) == strip_components + 1]
    if not items:
        await backend.mkdir(destination, parents=True)
        return
    parents = {posixpath.dirname(item) for item in items}
    existing = await backend.list_or_empty(destination)
    if len(parents) == 1 and not existing[1]:
        check_jobs_carry('move', posixpath.join(temporary, next(iter(parents))), destination)
        if existing[0]:
            await backend.rm(destination)
        else:
            await backend.mkdir(posixpath.dirname(destination), parents=True)
        await backend.mv(posixpath.join(temporary, parents.pop()), destination)
        return
    for item in items:  # all refused before any is moved
        check_jobs_carry('move', posixpath.join(temporary, item), posixpath.join(destination, posixpath.basename(item)))
    if not existing[0]:
        await backend.mkdir(destination, parents=True)
    present = {entry['name'] for entry in existing[1]}
    await gather(_replace(backend, posixpath.join(temporary, item), destination, present) for item in items)


async def _replace(backend: FirecrestBackend, source: str, directory: str, present: set[str]) -> None:
    name = posixpath.basename(source)
    if name in present:
        await backend.rm(posixpath.join(directory, name))
    await backend.mv(source, posixpath.join(directory, name))
