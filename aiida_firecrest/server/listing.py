"""The ``ls`` and ``stat`` commands behind the listing routes, and the parsing of their output into the v2 shapes.

``ls`` runs in the C locale with ``--quoting-style=escape``, so that every name is printed on one line with its spaces,
backslashes and control characters escaped and its non-ASCII bytes in octal: ``a\\ b -> c`` is the link ``a b`` to
``c``. :func:`parse_ls` undoes the escapes.
"""

from __future__ import annotations

import re

LS_ARGV = ('ls', '-l', '--time-style=+%Y-%m-%dT%H:%M:%S', '--quoting-style=escape')
"""The listing command without its options and path; the time style gives ``lastModified`` as the real server's."""

STAT_FIELDS = ('mode', 'ino', 'dev', 'nlink', 'uid', 'gid', 'size', 'atime', 'mtime', 'ctime')
"""The integers of a ``FileStat``, in the order of :data:`STAT_FORMAT`."""

STAT_FORMAT = '--format=%f %i %d %h %u %g %s %X %Y %Z'
"""The ``stat`` format printing :data:`STAT_FIELDS` (the mode in hexadecimal, the rest in decimal)."""

_ENTRY = re.compile(
    r'(?P<type>[-bcdlps])(?P<permissions>[-rwxsStT]{9})\S*\s+\d+\s+(?P<user>\S+)\s+(?P<group>\S+)\s+'
    r'(?P<size>\d+(?:,\s*\d+)?)\s+(?P<modified>\S+) (?P<name>.+)'
)
"""One line of ``ls -l`` with :data:`LS_ARGV`'s time style, e.g. ``lrwxrwxrwx 1 me me 5 2026-11-23T19:38:51 a -> b``."""

_ESCAPE = re.compile(r'\\(?:([0-7]{3})|(.))')
_CONTROL = {'a': b'\a', 'b': b'\b', 'f': b'\f', 'n': b'\n', 'r': b'\r', 't': b'\t', 'v': b'\v'}
_LINK_ARROW = ' -> '
"""Separates a link from its target; unambiguous, since the escape quoting style escapes the spaces of names."""


def ls_argv(
    path: str,
    *,
    show_hidden: bool = False,
    recursive: bool = False,
    dereference: bool = False,
    numeric_uid: bool = False,
    itself: bool = False,
) -> list[str]:
    """Return the ``ls`` command listing ``path``.

    :param itself: list a directory itself rather than its entries (``-d``).
    """
    flags = {'-A': show_hidden, '-R': recursive, '-L': dereference, '-n': numeric_uid, '-d': itself}
    return [*LS_ARGV, *(flag for flag, wanted in flags.items() if wanted), '--', path]


def unescape(text: str) -> str:
    """Return the name that ``ls --quoting-style=escape`` printed as ``text``."""
    raw = bytearray()
    position = 0
    for match in _ESCAPE.finditer(text):
        raw += text[position : match.start()].encode()
        octal, char = match.groups()
        raw += bytes([int(octal, 8)]) if octal else _CONTROL.get(char, char.encode())
        position = match.end()
    raw += text[position:].encode()
    return raw.decode(errors='replace')


def parse_entry(match: re.Match[str], prefix: str = '') -> dict[str, str | None]:
    """Return the ``File`` of one matched line of ``ls -l``, its name prefixed with ``prefix``."""
    name, link_target = match['name'], None
    if match['type'] == 'l':
        name, _, target = name.partition(_LINK_ARROW)
        link_target = unescape(target)
    return {
        'name': prefix + unescape(name),
        'type': match['type'],
        'linkTarget': link_target,
        'user': match['user'],
        'group': match['group'],
        'permissions': match['permissions'],
        'lastModified': match['modified'],
        'size': match['size'],
    }


def parse_ls(output: str, path: str) -> list[dict[str, str | None]]:
    """Return the ``File`` entries of the output of :func:`ls_argv` for ``path``.

    Entries of a directory are named by their names, those of its subdirectories in a recursive listing by their paths
    relative to it (``sub/file``), and a file or link listed itself by ``path``, as ``ls`` prints them. In a recursive
    listing, the lines that start with ``/`` and end with ``:`` head the entries of a subdirectory.
    """
    entries = []
    prefix = ''
    for line in output.splitlines():
        if line.startswith('/') and line.endswith(':'):
            directory = unescape(line[:-1])
            prefix = directory[len(path) + 1 :] + '/' if directory != path else ''
        elif match := _ENTRY.fullmatch(line):
            entries.append(parse_entry(match, prefix))
    return entries


def parse_stat(output: str) -> dict[str, int]:
    """Return the ``FileStat`` of the output of ``stat`` with :data:`STAT_FORMAT`."""
    mode, *numbers = output.split()
    return dict(zip(STAT_FIELDS, [int(mode, 16), *map(int, numbers)], strict=True))
