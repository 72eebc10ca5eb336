"""From aiida-firecrest 1.0.0 to 2.0: recognise a computer configured by 1.0.0, and migrate its options.

aiida-firecrest 1.0.0 stored these options in the AuthInfo of a ``firecrest`` computer; 2.0 takes them as follows:

====================================  =================================================================================
1.0.0 option                          2.0
====================================  =================================================================================
``url``, ``token_uri``, ``client_id``, kept as they are
``compute_resource``,
``billing_account``, ``temp_directory``
``max_io_allowed``                    ``max_concurrency`` (the same meaning: file transfers in flight at once)
``checksum_check``                    ``checksum_uploads`` (staged downloads are always checked with SHA-256)
``client_secret`` (a file)            kept, and made readable by its owner alone (``chmod 600``): 1.0.0 wrote its
                                      files under ``~/.firecrest`` with the default umask, which 2.0 refuses
``client_secret`` (the secret)        moved to a private file of the AiiDA configuration folder, which it names
====================================  =================================================================================

The transport refuses a 1.0.0 configuration with one message (:func:`check_not_legacy`) that names the command that
migrates it, ``aiida-firecrest migrate`` (:func:`migrate_computer`, the command is in
:mod:`aiida_firecrest.command_line`).
"""

from __future__ import annotations

import dataclasses
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .client.client_credentials import ENV_PREFIX, check_client_secret_source, store_client_secret
from .client.exceptions import FirecrestConfigurationError

if TYPE_CHECKING:
    from aiida import orm

__all__ = (
    'LEGACY_OPTIONS',
    'MIGRATE_COMMAND',
    'MigratedOptions',
    'check_not_legacy',
    'client_secret_source',
    'is_legacy',
    'legacy_computers',
    'migrate_computer',
    'migrate_hint',
    'migrate_options',
)

LEGACY_OPTIONS = ('max_io_allowed', 'checksum_check')
"""Options that aiida-firecrest 1.0.0 always stored (with their defaults) and 2.0 does not know."""

MIGRATE_COMMAND = 'aiida-firecrest migrate'
"""The command that migrates the computers configured by aiida-firecrest 1.0.0."""


@dataclasses.dataclass(frozen=True)
class MigratedOptions:
    """The 2.0 options of a computer configured by 1.0.0, and what the migration changed, one sentence each."""

    params: dict[str, Any]
    changes: tuple[str, ...]


def is_legacy(params: Mapping[str, Any]) -> bool:
    """Whether ``params`` (the options of an AuthInfo) were written by aiida-firecrest 1.0.0."""
    return any(name in params for name in LEGACY_OPTIONS)


def migrate_hint() -> str:
    """Return the exact command that migrates the computers of the loaded profile (with ``-p PROFILE`` if one is)."""
    from aiida.manage import get_manager

    profile = get_manager().get_profile()
    return f'{MIGRATE_COMMAND} -p {profile.name}' if profile is not None else MIGRATE_COMMAND


def check_not_legacy(params: Mapping[str, Any]) -> None:
    """Refuse the options of a computer configured by aiida-firecrest 1.0.0, naming the command that migrates it.

    :param params: the keyword arguments the transport was built with (the AuthInfo's options and ``machine``).
    :raises FirecrestConfigurationError: if ``params`` hold an option only 1.0.0 wrote.
    """
    if not is_legacy(params):
        return
    found = ', '.join(name for name in LEGACY_OPTIONS if name in params)
    raise FirecrestConfigurationError(
        f'the firecrest computer of hostname {params.get("machine")!r} was configured by aiida-firecrest 1.0.0 '
        f'(options {found}); run `{migrate_hint()}` once to migrate it to 2.0, then retry '
        '(`verdi process play --all` resumes the processes that this paused)'
    )


def migrate_options(params: Mapping[str, Any]) -> MigratedOptions:
    """Return the 2.0 options of a 1.0.0 configuration, making its client secret private on the way.

    Options that 2.0 also has are kept as they are (a ``max_concurrency`` or ``checksum_uploads`` that ``verdi
    computer configure`` of 2.0 added wins over ``max_io_allowed`` or ``checksum_check``); options 2.0 adds take their
    defaults.

    :param params: the options an AuthInfo holds.
    :raises FirecrestConfigurationError: if ``max_io_allowed`` is not a positive integer, or if the client secret is
        missing, not a regular file or not owned by the current user.
    """
    migrated = {name: value for name, value in params.items() if name not in LEGACY_OPTIONS}
    changes: list[str] = []
    if 'max_io_allowed' in params and 'max_concurrency' in params:
        changes.append(f'max_io_allowed {params["max_io_allowed"]} removed: max_concurrency is set already')
    elif 'max_io_allowed' in params:
        migrated['max_concurrency'] = _positive_int('max_io_allowed', params['max_io_allowed'])
        changes.append(f'max_io_allowed {params["max_io_allowed"]} is now max_concurrency')
    if 'checksum_check' in params and 'checksum_uploads' in params:
        changes.append(f'checksum_check {params["checksum_check"]} removed: checksum_uploads is set already')
    elif 'checksum_check' in params:
        migrated['checksum_uploads'] = bool(params['checksum_check'])
        changes.append(
            f'checksum_check {params["checksum_check"]} is now checksum_uploads (staged uploads compared by SHA-256, '
            'not only by size; staged downloads are always compared by SHA-256)'
        )
    migrated['client_secret'], change = _private_client_secret(str(params.get('client_secret') or '').strip())
    if change:
        changes.append(change)
    return MigratedOptions(migrated, tuple(changes))


def _positive_int(name: str, value: Any) -> int:
    """Return ``value`` as an integer of 1 or more.

    :raises FirecrestConfigurationError: if it is not one.
    """
    try:
        number = int(value)
    except (TypeError, ValueError) as exc:
        raise FirecrestConfigurationError(f'{name} {value!r} is not an integer') from exc
    if number < 1:
        raise FirecrestConfigurationError(f'{name} {value!r} is not an integer of 1 or more')
    return number


def _private_client_secret(value: str) -> tuple[str, str | None]:
    """Return the 2.0 ``client_secret`` option for the 1.0.0 one, and what was done to get it (None: nothing).

    1.0.0 stored the path of a file, or (when given through the Python API) the secret itself: a file is made
    readable by its owner alone, the secret is moved to such a file. A message names the file only once it is known
    to exist: a missing absolute path may be a secret that starts with ``/``.

    :raises FirecrestConfigurationError: if there is no secret, or the file is missing, not a regular file or not the
        current user's.
    """
    if not value:
        raise FirecrestConfigurationError('the 1.0.0 configuration has no client_secret')
    if value.startswith(ENV_PREFIX):
        check_client_secret_source(value)
        return value, None
    path = Path(value).expanduser()
    if not path.is_absolute():
        stored = store_client_secret(value)
        return str(stored), f'the client secret, stored in the database by 1.0.0, moved to the private file {stored}'
    try:
        info = path.lstat()
    except OSError as exc:
        # not repeated: 1.0.0 may have stored the secret itself, and a secret may start with ``/``
        raise FirecrestConfigurationError(
            f'cannot read the client-secret file that 1.0.0 stored ({exc.strerror}): put the secret in a file of '
            f'your own, `chmod 600` it, and give it to `{MIGRATE_COMMAND} --client-secret FILE COMPUTER`'
        ) from exc
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
        raise FirecrestConfigurationError(
            f'the client-secret file {path} is not a regular file of the current user: copy the secret to a file of '
            f'your own, `chmod 600` it, and give it to `{MIGRATE_COMMAND} --client-secret FILE COMPUTER`'
        )
    change = None
    mode = stat.S_IMODE(info.st_mode)
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        path.chmod(0o600)
        change = f'the client-secret file {path} made readable by its owner alone (mode {mode:04o} to 0600)'
    check_client_secret_source(str(path))
    return str(path), change


def migrate_computer(
    computer: orm.Computer, user: orm.User | None = None, client_secret: str | None = None
) -> MigratedOptions | None:
    """Migrate the options that ``user`` (default: the profile's default user) has for ``computer`` to 2.0.

    The migrated options are checked by building the transport from them (no request) before they are stored.

    :param client_secret: where to read the client secret from now on (the absolute path of a file, made private if
        it is not, or ``env:VARNAME``), instead of the source that 1.0.0 stored; never the secret itself (a command
        line is visible to every user in ``ps``).

    :returns: what changed, or None if the computer was not configured by aiida-firecrest 1.0.0.
    :raises FirecrestConfigurationError: if ``client_secret`` is neither a path nor ``env:VARNAME``, or if the options
        cannot be migrated (see :func:`migrate_options`); nothing is stored then.
    :raises aiida.common.exceptions.NotExistent: if the computer is not configured for the user, or the profile has
        no default user.
    """
    authinfo = computer.get_authinfo(_user(user))
    params = dict(authinfo.get_auth_params())
    if not is_legacy(params):
        return None
    if client_secret is not None:
        params['client_secret'] = client_secret_source(client_secret)
    migrated = migrate_options(params)
    computer.get_transport_class()(machine=computer.hostname, **migrated.params)
    authinfo.set_auth_params(migrated.params)
    return migrated


def client_secret_source(value: str) -> str:
    """Return ``value``, a new source of the client secret: an absolute path (``~`` expanded) or ``env:VARNAME``.

    The command checks it before the profile is loaded: aiida-core then writes the command line to the profile's
    ``access/<pid>.pid`` file.

    :raises FirecrestConfigurationError: for anything else, which would be the secret itself (not repeated).
    """
    if value.startswith(ENV_PREFIX) or Path(value).expanduser().is_absolute():
        return value
    raise FirecrestConfigurationError(
        'the new client secret must be given as the absolute path of a file holding it (chmod 600) or as env:VARNAME, '
        'never as the secret itself: a command line is visible to every user (ps)'
    )


def legacy_computers(user: orm.User | None = None) -> list[orm.Computer]:
    """Return the ``firecrest`` computers of the loaded profile that ``user`` configured with aiida-firecrest 1.0.0."""
    from aiida import orm

    user = _user(user)
    computers = orm.Computer.collection.find(filters={'transport_type': 'firecrest'}, order_by={'id': 'asc'})
    return [
        computer
        for computer in computers
        if computer.is_user_configured(user) and is_legacy(computer.get_authinfo(user).get_auth_params())
    ]


def _user(user: orm.User | None) -> orm.User:
    """Return ``user``, or the default user of the loaded profile.

    :raises aiida.common.exceptions.NotExistent: if ``user`` is None and the profile has no default user.
    """
    from aiida import orm
    from aiida.common.exceptions import NotExistent

    user = user or orm.User.collection.get_default()
    if user is None:
        raise NotExistent('the AiiDA profile has no default user')
    return user
