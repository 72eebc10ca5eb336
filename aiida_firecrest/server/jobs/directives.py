"""What ``sbatch`` reads from a batch script: its ``#SBATCH`` directives, time limits and file name patterns."""

from __future__ import annotations

import dataclasses
import re
import shlex

SHEBANG_ERROR = (
    'sbatch: error: This does not look like a batch script.  The first\n'
    'sbatch: error: line must start with #! followed by the path to an interpreter.\n'
    'sbatch: error: For instance: #!/bin/sh\n'
)
"""What ``sbatch`` says (on stderr, exit status 1) of a script without an interpreter line."""

_OPTIONS = {
    'job-name': 'J',
    'output': 'o',
    'error': 'e',
    'input': 'i',
    'time': 't',
    'account': 'A',
    'partition': 'p',
}
"""The options with a value that the local backend honours, by long name, with their short letter."""
_FLAGS = {'hold': 'H'}
"""The options without a value that the local backend honours."""
_LONG_OF_SHORT = {short: long for long, short in {**_OPTIONS, **_FLAGS}.items()}


@dataclasses.dataclass(frozen=True)
class Directives:
    """The ``#SBATCH`` options of a script that the local backend honours; None where the script sets none."""

    job_name: str | None = None
    output: str | None = None
    error: str | None = None
    input: str | None = None
    time: str | None = None
    account: str | None = None
    partition: str | None = None
    hold: bool = False


def _directive_lines(script: str) -> list[str]:
    """Return the arguments of the ``#SBATCH`` lines before the first command, as ``sbatch`` reads them."""
    lines = []
    for raw in script.splitlines()[1:]:
        line = raw.strip()
        if not line:
            continue
        if not line.startswith('#'):
            break
        if line.startswith('#SBATCH') and (len(line) == 7 or line[7].isspace()):
            lines.append(line[7:])
    return lines


def parse_directives(script: str) -> Directives:
    """Return the options of the ``#SBATCH`` lines of ``script`` that the local backend honours.

    Accepts ``--name=value``, ``--name value``, ``-X value`` and ``-Xvalue``; other options are ignored, and a later
    occurrence of an option overrides an earlier one, as with ``sbatch``.

    :raises ValueError: for a line that does not split like a shell command line.
    """
    values: dict[str, str | bool] = {}
    for line in _directive_lines(script):
        tokens = shlex.split(line, comments=True)
        index = 0
        while index < len(tokens):
            token = tokens[index]
            index += 1
            name, value = _split_option(token)
            if name is None:
                continue
            if name in _FLAGS:
                values[name] = True
            elif value is None and index < len(tokens) and not tokens[index].startswith('-'):
                value = tokens[index]
                index += 1
            if name in _OPTIONS and value is not None:
                values[name] = value
    return Directives(**{name.replace('-', '_'): value for name, value in values.items()})  # type: ignore[arg-type]


def _split_option(token: str) -> tuple[str | None, str | None]:
    """Return the long name and the attached value (if any) of an option token; (None, None) for a non-option."""
    if token.startswith('--'):
        name, separator, value = token[2:].partition('=')
        return name, value if separator else None
    if token.startswith('-') and len(token) > 1:
        name = _LONG_OF_SHORT.get(token[1], f'-{token[1]}')
        return name, token[2:] or None
    return None, None


_TIME_FORMATS = [
    re.compile(r'(?P<minutes>\d+)'),
    re.compile(r'(?P<minutes>\d+):(?P<seconds>\d+)'),
    re.compile(r'(?P<hours>\d+):(?P<minutes>\d+):(?P<seconds>\d+)'),
    re.compile(r'(?P<days>\d+)-(?P<hours>\d+)'),
    re.compile(r'(?P<days>\d+)-(?P<hours>\d+):(?P<minutes>\d+)'),
    re.compile(r'(?P<days>\d+)-(?P<hours>\d+):(?P<minutes>\d+):(?P<seconds>\d+)'),
]
"""Slurm's time limit formats, tried in turn."""


def parse_time_limit(value: str) -> int | None:
    """Return a Slurm time limit in seconds, None for no limit (``UNLIMITED``, ``INFINITE`` or 0).

    Slurm's formats: ``minutes``, ``minutes:seconds``, ``hours:minutes:seconds``, ``days-hours``,
    ``days-hours:minutes`` and ``days-hours:minutes:seconds``. Unlike Slurm, which rounds limits up to whole minutes,
    seconds are kept, so that a test can time a job out in seconds.

    :raises ValueError: for any other value.
    """
    text = value.strip()
    if text.upper() in {'UNLIMITED', 'INFINITE'}:
        return None
    for pattern in _TIME_FORMATS:
        match = pattern.fullmatch(text)
        if match:
            parts = {key: int(number) for key, number in match.groupdict().items()}
            seconds = (
                parts.get('days', 0) * 86400
                + parts.get('hours', 0) * 3600
                + parts.get('minutes', 0) * 60
                + parts.get('seconds', 0)
            )
            return seconds or None
    raise ValueError(f'sbatch: error: Invalid --time specification: {value}')


_PATTERN = re.compile(r'%(\d*)([jxuNA%])')


def expand_file_pattern(pattern: str, job_id: int, job_name: str, user: str, node: str) -> str:
    """Expand the replacement symbols of an output, error or input file name as ``sbatch`` does.

    Supported: ``%j`` and ``%A`` (job id), ``%x`` (job name), ``%u`` (user), ``%N`` (node) and ``%%``, with an
    optional zero-padding width (``%5j``).
    """

    def replace(match: re.Match[str]) -> str:
        width, symbol = match.groups()
        if symbol == '%':
            return '%'
        if symbol in 'jA':
            return str(job_id).zfill(int(width or 0))
        return {'x': job_name, 'u': user, 'N': node}[symbol]

    return _PATTERN.sub(replace, pattern)
