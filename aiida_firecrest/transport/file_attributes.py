"""File attributes and names from FirecREST's listings (``ls``) and ``stat`` answers, as AiiDA's transport contract
gives them: :class:`~aiida.transports.util.FileAttribute`, ``st_mode`` bits, and names decoded from the C quoting of
``ls``. No I/O here.
"""

from __future__ import annotations

import datetime
import re
import stat
from typing import Any

__all__ = ('attributes_of_entry', 'attributes_of_stat', 'decode_listed_name', 'entry_type', 'mode_of_entry')


_TYPE_BITS = {'d': stat.S_IFDIR, '-': stat.S_IFREG, 'l': stat.S_IFLNK, 'b': stat.S_IFBLK, 'c': stat.S_IFCHR}
_TYPE_BITS |= {'p': stat.S_IFIFO, 's': stat.S_IFSOCK}


def entry_type(mode: int) -> str:
    """The ``type`` letter of an ``ls`` entry for the ``st_mode`` ``mode`` (``-`` for a regular file)."""
    return next((letter for letter, bit in _TYPE_BITS.items() if stat.S_IFMT(mode) == bit), '-')


def mode_of_entry(entry: dict[str, Any]) -> int:
    """Return the ``st_mode`` of an ``ls`` entry, from its ``type`` and ``permissions`` (e.g. ``rwsr-x--T``)."""
    permissions = str(entry.get('permissions') or '---------').ljust(9, '-')
    mode = _TYPE_BITS.get(str(entry.get('type')), stat.S_IFREG)
    for index, char in enumerate(permissions[:9]):
        if char not in '-ST':
            mode |= 0o400 >> index
    special = {2: (stat.S_ISUID, 's', 'S'), 5: (stat.S_ISGID, 's', 'S'), 8: (stat.S_ISVTX, 't', 'T')}
    for index, (bit, with_x, without_x) in special.items():
        if permissions[index] in (with_x, without_x):
            mode |= bit
    return mode


def _timestamp(text: Any) -> float:
    try:
        moment = datetime.datetime.fromisoformat(str(text).replace('Z', '+00:00'))
    except ValueError:
        return 0.0
    if moment.tzinfo is None:
        moment = moment.astimezone()  # ``ls`` prints the server's local time; assume ours
    return moment.timestamp()


def _int(value: Any) -> int:
    try:
        return int(str(value).split(',')[0])
    except ValueError:
        return 0


def attributes_of_entry(entry: dict[str, Any]) -> Any:
    """Return the :class:`~aiida.transports.util.FileAttribute` of an ``ls`` entry listed with ``numericUid``.

    ``ls`` gives no access time: ``st_atime`` is the modification time.
    """
    from aiida.transports.util import FileAttribute

    attributes = FileAttribute()
    mtime = _timestamp(entry.get('lastModified'))
    attributes['st_size'] = _int(entry.get('size'))
    attributes['st_uid'] = _int(entry.get('user'))
    attributes['st_gid'] = _int(entry.get('group'))
    attributes['st_mode'] = mode_of_entry(entry)
    attributes['st_atime'] = mtime
    attributes['st_mtime'] = mtime
    return attributes


_C_ESCAPE = re.compile(rb'\\([0-7]{1,3}|.)', re.DOTALL)
_C_ESCAPED_CHARS = {b'a': b'\a', b'b': b'\b', b'f': b'\f', b'n': b'\n', b'r': b'\r', b't': b'\t', b'v': b'\v'}


def _unescape(match: re.Match[bytes]) -> bytes:
    escaped = match.group(1)
    if escaped[:1].isdigit():
        return bytes([int(escaped, 8) & 0xFF])
    return _C_ESCAPED_CHARS.get(escaped, escaped)


def decode_listed_name(text: str) -> str:
    """Return the file name that ``ls --quoting-style=c`` printed as ``text``, as FirecREST passes it on.

    FirecREST splits the C-quoted line with :func:`shlex.split`, which removes the quotes and unescapes ``\\"`` and
    ``\\\\`` but leaves the other escapes: octal bytes (``\\303\\274`` for ``ü``), ``\\t``, ``\\n`` and the like. They
    are decoded here, then the bytes as UTF-8 (undecodable bytes as surrogates, as :func:`os.fsdecode`). A name
    holding a backslash is ambiguous after the server's parsing (``a\\tb`` may have been a tab); it reads as the escape.
    """
    if '\\' not in text:
        return text
    raw = _C_ESCAPE.sub(_unescape, text.encode('utf-8', 'surrogateescape'))
    return raw.decode('utf-8', 'surrogateescape')


def attributes_of_stat(answer: dict[str, Any]) -> Any:
    """Return the :class:`~aiida.transports.util.FileAttribute` of a ``stat`` answer."""
    from aiida.transports.util import FileAttribute

    attributes = FileAttribute()
    for key in ('size', 'uid', 'gid', 'mode', 'atime', 'mtime'):
        attributes[f'st_{key}'] = int(answer.get(key) or 0)
    return attributes
