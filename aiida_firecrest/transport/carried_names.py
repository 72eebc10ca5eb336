"""Which paths each way of FirecREST carries unchanged, and the refusals for those it does not.

FirecREST v2 puts paths inside single quotes in the shell commands of its ``ops`` requests without escaping them, so a
``'`` ends the quotes; the scripts of its transfer jobs HTML-escape ``"&'<>``; ``sha256sum`` and multipart uploads
break on whitespace, backslashes and control characters. The transport asks these questions before sending a path,
and sends the others through archives (:mod:`~aiida_firecrest.transport.archive_routes`) or refuses them with nothing
sent. No I/O here.
"""

from __future__ import annotations

import re

from ..client.exceptions import UnsupportedPathError

__all__ = (
    'check_commands_carry',
    'check_jobs_carry',
    'commands_carry',
    'jobs_carry',
    'server_carries',
    'shell_word_safe',
)

_UNCARRIED = re.compile(r'[\'"&<>\\\s\x00-\x1f\x7f]')
"""Characters of a name that some path of FirecREST cannot carry: ``'`` ends the single quotes around paths in the
server's commands; ``"&'<>`` arrive HTML-escaped in the scripts of transfer jobs (staged transfers, ``mv``...);
whitespace breaks the server's parsing of ``sha256sum`` (the checksum of a staged transfer); ``"``, ``\\`` and control
characters are percent-encoded by httpx in the file name of a multipart upload; a ``\\`` also comes back prefixed in
``sha256sum``'s answer and ambiguous in listings."""

_UNSAFE_SHELL_WORD = re.compile(r'[^\w./+,=@%:~-]')
"""Characters that a path given unquoted to a shell may not hold (``compress`` with a pattern ``cd`` s into the parent
of its source without quotes)."""


_HTML_ESCAPED = re.compile(r'[\'"&<>]')
"""Characters that the HTML autoescaping of the transfer-job scripts replaces (``'`` by ``&#39;``...)."""


def commands_carry(path: str) -> bool:
    """Whether the server's commands (``ops`` requests) carry ``path`` unchanged: they put it inside single quotes
    without escaping, so a ``'`` ends the quotes."""
    return "'" not in path


def jobs_carry(path: str) -> bool:
    """Whether the scripts of transfer jobs (``cp``, ``mv``, the ``rm``/``compress``/``extract`` fallbacks, staged
    transfers) carry ``path`` unchanged: they HTML-escape ``"&'<>`` and put it inside single quotes."""
    return not _HTML_ESCAPED.search(path)


def check_commands_carry(doing: str, *paths: str) -> None:
    """Refuse, before anything is sent, to give the server's commands a path holding a ``'``.

    :param doing: what was asked, for the message (e.g. ``'remove'``).
    :raises UnsupportedPathError: naming the path and the limitation.
    """
    for path in paths:
        if not commands_carry(path):
            raise UnsupportedPathError(
                f'FirecREST cannot {doing} {path!r}: its commands put paths inside single quotes without escaping '
                "them, so the ' in it would end the quotes (and its transfer jobs would get it HTML-escaped as &#39;, "
                'naming another file); nothing was sent'
            )


def check_jobs_carry(doing: str, *paths: str) -> None:
    """Refuse, before anything is sent, to give a transfer job a path that its script would HTML-escape.

    :param doing: what was asked, for the message (e.g. ``'copy'``).
    :raises UnsupportedPathError: naming the path, the character and the limitation.
    """
    for path in paths:
        found = _HTML_ESCAPED.search(path)
        if found:
            raise UnsupportedPathError(
                f'FirecREST cannot {doing} {path!r} in a transfer job: its job scripts HTML-escape the '
                f'{found.group()!r} in it, so the job would act on another name; nothing was sent'
            )


def server_carries(name: str) -> bool:
    """Whether every path of FirecREST (its commands, transfer jobs, checksums, multipart uploads) carries the file
    name ``name`` unchanged; a file whose name it does not carry travels inside an archive."""
    return not _UNCARRIED.search(name)


def shell_word_safe(path: str) -> bool:
    """Whether ``path`` stays one word, unchanged, when a shell reads it unquoted."""
    return not _UNSAFE_SHELL_WORD.search(path)
