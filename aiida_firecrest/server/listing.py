"""The ``ls`` and ``stat`` command lines behind the listing routes, and the parsing of their output into the v2 shapes.

``ls`` runs with ``--quoting-style=c``, as on the real server: every name is printed inside double quotes, with
``"`` and ``\\`` escaped by a backslash, control characters as ``\\t``, ``\\n``... and non-ASCII bytes in octal.
The real server splits the name part of a line with :func:`shlex.split`, which undoes ``\\"`` and ``\\\\`` only:
the other escapes stay in the names it answers (``"\\303\\274.txt"`` for ``ü.txt``), and the headings of a recursive
listing are not unescaped at all. :func:`parse_ls` does the same, or decodes every escape (the kind behaviour).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable

LS_OPTIONS = "-l --quoting-style=c --time-style='+%Y-%m-%dT%H:%M:%S' "
"""The options of every listing; the time style gives ``lastModified`` as the real server's."""

STAT_FIELDS = ('mode', 'ino', 'dev', 'nlink', 'uid', 'gid', 'size', 'atime', 'mtime', 'ctime')
"""The integers of a ``FileStat``, in the order of :data:`STAT_FORMAT`."""

STAT_FORMAT = "'%f %i %d %h %u %g %s %X %Y %Z'"
"""The ``stat`` format printing :data:`STAT_FIELDS` (the mode in hexadecimal, the rest in decimal), shell-quoted."""

_ENTRY = re.compile(
    r'^(?P<type>\S)(?P<permissions>\S+)\s+\d+\s+(?P<user>\S+)\s+(?P<group>\S+)\s+(?P<size>\d+)\s+'
    r'(?P<modified>[-\dT:]+)\s+(?P<name>.+)$'
)
"""One line of ``ls -l`` as the real server matches it (device files, whose size reads ``5, 1``, do not match)."""

_HEADING = re.compile(r'"(.+)":\n')
"""The heading of a directory in a recursive listing."""

_C_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
"""A C-quoted string of ``ls`` output, its content in the group."""
_C_ESCAPE = re.compile(r'\\(?:([0-7]{3})|(.))', re.DOTALL)
_C_CONTROL = {'a': b'\a', 'b': b'\b', 'f': b'\f', 'n': b'\n', 'r': b'\r', 't': b'\t', 'v': b'\v', 'e': b'\x1b'}


def ls_command(
    quoted_path: str,
    *,
    show_hidden: bool = False,
    numeric_uid: bool = False,
    itself: bool = False,
    recursive: bool = False,
    dereference: bool = False,
) -> str:
    """Return the ``ls`` command (without its ``timeout``) listing the already quoted ``quoted_path``.

    :param itself: list a directory itself rather than its entries (``-d``).
    """
    flags = {'-A': show_hidden, '--numeric-uid-gid': numeric_uid, '-d': itself, '-R': recursive, '-L': dereference}
    options = ''.join(f'{flag} ' for flag, wanted in flags.items() if wanted)
    return f'ls {LS_OPTIONS}{options}-- {quoted_path}'


def decode_c_escapes(text: str) -> str:
    """Return the name that ``ls --quoting-style=c`` printed (without its quotes) as ``text``."""
    raw = bytearray()
    position = 0
    for match in _C_ESCAPE.finditer(text):
        raw += text[position : match.start()].encode()
        octal, char = match.groups()
        raw += bytes([int(octal, 8)]) if octal else _C_CONTROL.get(char, char.encode())
        position = match.end()
    raw += text[position:].encode()
    return raw.decode(errors='replace')


def _split_name(text: str, decode: bool) -> tuple[str, str | None] | None:
    """Return the name and link target of the name part of a line, or None if it splits as neither.

    As the real server: :func:`shlex.split` gives one token, or three for a link (name, ``->``, target).
    """
    if decode:
        tokens = [decode_c_escapes(token) for token in _C_QUOTED.findall(text)]
        tokens[1:] = ['->', *tokens[1:]] if len(tokens) == 2 else tokens[1:]
    else:
        tokens = shlex.split(text)
    if len(tokens) == 1:
        return tokens[0], None
    if len(tokens) == 3:
        return tokens[0], tokens[2]
    return None


def _parse_folder(content: str, prefix: str, decode: bool) -> list[dict[str, str | None]]:
    entries = []
    for line in content.splitlines():
        match = _ENTRY.match(line)
        split = _split_name(match['name'], decode) if match else None
        if match is None or split is None:
            continue
        name, link_target = split
        entries.append(
            {
                'name': prefix + name,
                'type': match['type'],
                'linkTarget': link_target,
                'user': match['user'],
                'group': match['group'],
                'permissions': match['permissions'],
                'lastModified': match['modified'],
                'size': match['size'],
            }
        )
    return entries


def parse_ls(output: str, *, decode: bool = False) -> list[dict[str, str | None]]:
    """Return the ``File`` entries of the output of :func:`ls_command`, as the real server parses it.

    Entries of a directory are named by their names, those of its subdirectories in a recursive listing by their paths
    relative to it (``sub/file``, from the headings, whose escapes are kept), and a file or link listed by itself by the
    path as given.

    :param decode: decode every C escape of names, link targets and headings (the kind behaviour).
    """
    heading: Callable[[str], str] = decode_c_escapes if decode else str
    if not _HEADING.match(output):
        return _parse_folder(output, '', decode)
    parts = _HEADING.split(output)
    root = parts[1].rstrip('/') + '/'
    entries = []
    for folder, content in zip(parts[1::2], parts[2::2], strict=True):
        relative = (folder.rstrip('/') + '/').removeprefix(root)
        entries += _parse_folder(content, heading(relative), decode)
    return entries


def parse_stat(output: str) -> dict[str, int]:
    """Return the ``FileStat`` of the output of ``stat`` with :data:`STAT_FORMAT`."""
    mode, *numbers = output.split()
    return dict(zip(STAT_FIELDS, [int(mode, 16), *map(int, numbers)], strict=True))
