"""Confinement of request paths to the directories the server exposes."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ApiError
from .settings import ServerSettings


def confine(path: str, settings: ServerSettings) -> str:
    """Return ``path`` if it is absolute and lies in one of the exposed roots, else raise a 400 :class:`ApiError`.

    The check is lexical, as the real server's: ``..`` components are resolved, symbolic links are not, so that a
    link inside a root may point anywhere, exactly as it can on the cluster. The path is returned as given (a trailing
    ``/`` on a link to a directory matters to ``ls`` and ``stat``), as the real server hands it to its commands.
    """
    if not path.startswith('/'):
        raise ApiError(400, f'The provided path ({path}) is not an absolute path.')
    normalised = os.path.normpath(path)
    candidate = Path(normalised)
    if not any(candidate == root or root in candidate.parents for root in settings.roots):
        raise ApiError(
            400,
            f'The provided path ({normalised}) does not match any of the defined filesystem paths for the requested '
            f'system ({settings.system_name}).',
        )
    return path
