"""The ``aiida-firecrest`` command: ``aiida-firecrest migrate [COMPUTER ...]`` after an upgrade from 1.0.0."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from .client.exceptions import FirecrestConfigurationError

if TYPE_CHECKING:
    from aiida import orm

__all__ = ('main',)


@click.group()
@click.version_option(package_name='aiida-firecrest')
def main() -> None:
    """Commands of aiida-firecrest that verdi has no place for."""


def _checked_client_secret(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Refuse a ``--client-secret`` that is the secret itself, before the profile is loaded (aiida-core then writes the
    command line to the profile's ``access/<pid>.pid`` file), without repeating it."""
    from .migration import client_secret_source

    try:
        return None if value is None else client_secret_source(value)
    except FirecrestConfigurationError as exc:
        raise click.BadParameter(str(exc), param_hint='--client-secret') from exc


@main.command()
@click.argument('computers', metavar='[COMPUTER]...', nargs=-1)
@click.option('-p', '--profile', default=None, help='The AiiDA profile (default: the default profile, as for verdi).')
@click.option(
    '--client-secret',
    default=None,
    metavar='FILE',
    callback=_checked_client_secret,
    help='Read the client secret from this file (absolute path, readable by you alone) or env:VARNAME from now on, '
    'instead of where 1.0.0 stored it. Only with COMPUTER.',
)
def migrate(computers: tuple[str, ...], profile: str | None, client_secret: str | None) -> None:
    """Migrate the options of firecrest computers configured by aiida-firecrest 1.0.0 to those of 2.0.

    Without COMPUTER (labels): every firecrest computer of the profile that you configured with 1.0.0.
    max_io_allowed becomes max_concurrency, checksum_check becomes checksum_uploads, and the client secret ends up in
    a file that only you can read. Running it again changes nothing.
    """
    from aiida import load_profile
    from aiida.common.exceptions import NotExistent

    from .migration import legacy_computers, migrate_computer

    if client_secret is not None and not computers:
        raise click.UsageError('--client-secret needs the COMPUTER it is for')
    load_profile(profile, allow_switch=True)
    targets = _load_firecrest_computers(computers) if computers else legacy_computers()
    if not targets:
        click.echo('No computer configured by aiida-firecrest 1.0.0: nothing to migrate.')
    failed = []
    for computer in targets:
        try:
            migrated = migrate_computer(computer, client_secret=client_secret)
        except (FirecrestConfigurationError, NotExistent) as exc:
            click.secho(f'Computer {computer.label!r} NOT migrated: {exc}', fg='red', err=True)
            failed.append(computer.label)
            continue
        if migrated is None:
            click.echo(f'Computer {computer.label!r}: already configured for aiida-firecrest 2.0.')
            continue
        click.secho(f'Computer {computer.label!r} migrated to aiida-firecrest 2.0:', fg='green')
        for change in migrated.changes:
            click.echo(f'  - {change}')
    if failed:
        raise click.ClickException(f'{len(failed)} computer(s) not migrated: {", ".join(failed)}')


def _load_firecrest_computers(labels: tuple[str, ...]) -> list[orm.Computer]:
    """Return the computers of ``labels``.

    :raises click.BadParameter: if one does not exist or does not use the ``firecrest`` transport.
    """
    from aiida import orm
    from aiida.common.exceptions import NotExistent

    try:
        computers = [orm.load_computer(label) for label in labels]
    except NotExistent as exc:
        raise click.BadParameter(str(exc), param_hint='COMPUTER') from exc
    others = [computer.label for computer in computers if computer.transport_type != 'firecrest']
    if others:
        raise click.BadParameter(f'not firecrest computers: {", ".join(others)}', param_hint='COMPUTER')
    return computers
