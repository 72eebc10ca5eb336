"""Archives on the server, made and unpacked by FirecREST's ``compress`` and ``extract``: the names of their
compressions, the regular expression that selects members, and the ``strip_components`` that ``extract`` lacks.

(:mod:`aiida_firecrest.archive` is the local side.)
"""

from __future__ import annotations

import posixpath

from .backend import FirecrestBackend, gather

__all__ = ('COMPRESSION_OF_FORMAT', 'compression_of', 'members_pattern', 'move_stripped')

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


def _emacs_regex_escape(text: str) -> str:
    """Escape ``text`` for the (default, emacs-style) regular expressions of ``find -regex``."""
    return ''.join(f'\\{char}' if char in '.*+?[^$\\' else char for char in text)


def members_pattern(relative: list[str]) -> str:
    """The ``match_pattern`` of ``compress`` that selects the paths ``relative`` to the archived directory and what
    is below them (``['.']``: everything); FirecREST matches it against ``./path``."""
    names = r'\|'.join(_emacs_regex_escape(name) for name in relative)
    pattern = r'[^/]*' if relative == ['.'] else rf'[^/]*/\({names}\)'
    return rf'{pattern}\(/.*\)?'


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
    directory, one per entry otherwise (entries already in the destination are replaced)."""
    entries = await backend.list_directory(temporary, recursive=True)
    items = [str(entry['name']) for entry in entries if len(str(entry['name']).split('/')) == strip_components + 1]
    if not items:
        await backend.mkdir(destination, parents=True)
        return
    parents = {posixpath.dirname(item) for item in items}
    existing = await backend.list_or_empty(destination)
    if len(parents) == 1 and not existing[1]:
        if existing[0]:
            await backend.rm(destination)
        else:
            await backend.mkdir(posixpath.dirname(destination), parents=True)
        await backend.mv(posixpath.join(temporary, parents.pop()), destination)
        return
    if not existing[0]:
        await backend.mkdir(destination, parents=True)
    present = {entry['name'] for entry in existing[1]}
    await gather(_replace(backend, posixpath.join(temporary, item), destination, present) for item in items)


async def _replace(backend: FirecrestBackend, source: str, directory: str, present: set[str]) -> None:
    name = posixpath.basename(source)
    if name in present:
        await backend.rm(posixpath.join(directory, name))
    await backend.mv(source, posixpath.join(directory, name))
