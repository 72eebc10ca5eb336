"""The CalcJobs of the demo and of the end-to-end tests, each with the check of its result."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import shlex
from collections.abc import Callable
from typing import Any

from aiida import orm
from aiida.calculations.arithmetic.add import ArithmeticAddCalculation
from aiida.engine import ProcessBuilder

from .calculations import ScriptCalculation

STAGED_FILE_NAME = 'big.in'
STAGED_OUTPUT_NAME = 'big.out'


@dataclasses.dataclass
class Step:
    """A CalcJob to run and the check of its outcome, which raises ``AssertionError`` with what is wrong."""

    title: str
    builder: Callable[[], ProcessBuilder]
    check: Callable[[orm.ProcessNode], str]
    """Return a one-line summary of a good result; raise ``AssertionError`` otherwise."""


def _finished_ok(node: orm.ProcessNode) -> None:
    assert node.is_finished_ok, f'{node.process_label}<{node.pk}> ended {node.process_state} [{node.exit_status}]'


def arithmetic_add(code: orm.InstalledCode, x: int = 4, y: int = 5) -> Step:
    """``core.arithmetic.add`` of ``x`` and ``y``."""

    def builder() -> ProcessBuilder:
        builder = ArithmeticAddCalculation.get_builder()
        builder.code = code
        builder.x, builder.y = orm.Int(x), orm.Int(y)
        return builder

    def check(node: orm.ProcessNode) -> str:
        _finished_ok(node)
        total = node.outputs.sum.value
        assert total == x + y, f'sum is {total}, expected {x + y}'
        return f'{x} + {y} = {total}'

    return Step('ArithmeticAddCalculation', builder, check)


def staged_io(code: orm.InstalledCode, size: int) -> Step:
    """A CalcJob whose input and output (``size`` bytes each) go through S3 staging, checked byte for byte."""
    content = os.urandom(size)
    digest = hashlib.sha256(content).hexdigest()

    def builder() -> ProcessBuilder:
        builder = ScriptCalculation.get_builder()
        builder.code = code
        builder.script = orm.Str(f'cp {STAGED_FILE_NAME} {STAGED_OUTPUT_NAME}\nsha256sum {STAGED_OUTPUT_NAME}\n')
        builder.files = {'big': orm.SinglefileData(io.BytesIO(content), filename=STAGED_FILE_NAME)}
        builder.retrieve = orm.List([STAGED_OUTPUT_NAME])
        return builder

    def check(node: orm.ProcessNode) -> str:
        _finished_ok(node)
        retrieved = node.outputs.retrieved.get_object_content(STAGED_OUTPUT_NAME, mode='rb')
        assert hashlib.sha256(retrieved).hexdigest() == digest, 'the retrieved output differs from the input'
        remote_digest = node.outputs.retrieved.get_object_content('stdout').split()[0]
        assert remote_digest == digest, 'the uploaded input differs on the cluster'
        return f'{size / 2**20:.1f} MiB up and down through S3, sha256 {digest[:12]}... intact'

    return Step('Staged input and output', builder, check)


def restart(code: orm.InstalledCode, parent: Callable[[], orm.ProcessNode]) -> Step:
    """A restart that copies and links files of ``parent()``'s remote folder and stashes its outputs."""

    def builder() -> ProcessBuilder:
        builder = ScriptCalculation.get_builder()
        builder.code = code
        builder.parent_folder = parent().outputs.remote_folder
        builder.remote_copy = orm.List([STAGED_OUTPUT_NAME])
        builder.remote_symlink = orm.List([STAGED_FILE_NAME])
        builder.script = orm.Str(
            f'test -L {STAGED_FILE_NAME} && test ! -L {STAGED_OUTPUT_NAME}\n'
            f'cmp {STAGED_FILE_NAME} {STAGED_OUTPUT_NAME} && echo restarted > restart.out\n'
        )
        builder.retrieve = orm.List(['restart.out'])
        computer = code.computer
        assert computer is not None
        builder['metadata']['options']['stash'] = {
            'source_list': ['restart.out', STAGED_OUTPUT_NAME],
            'target_base': f'{computer.get_workdir()}/stash',
            'stash_mode': 'copy',
        }
        return builder

    def check(node: orm.ProcessNode) -> str:
        _finished_ok(node)
        text = node.outputs.retrieved.get_object_content('restart.out').strip()
        assert text == 'restarted', f'restart.out says {text!r}'
        stash: Any = node.outputs.remote_stash
        with node.computer.get_transport() as transport:  # type: ignore[union-attr]
            stashed = sorted(transport.listdir(stash.target_basepath))
        assert stashed == sorted(['restart.out', STAGED_OUTPUT_NAME]), f'stashed {stashed}'
        return f'copied and linked from {parent().pk}, stashed {", ".join(stashed)}'

    return Step('Restart with remote copy, symlink and stash', builder, check)


LARGE_OUTPUT_NAME = 'large.out'
EMPTY_INPUT_NAME = 'empty.in'
EMPTY_OUTPUT_NAME = 'empty.out'
AWKWARD_NAMES = ('with space.txt', "it's.txt", 'say "hi".txt', 'ünïcødé.txt', 'Zoë\'s "naïve" café.txt')
"""File names with spaces, quotes and non-ASCII letters, which the real server's commands cannot all carry."""
COPY_PREFIX = 'copy of '


def large_output(code: orm.InstalledCode, size: int) -> Step:
    """A CalcJob whose output of ``size`` bytes, made on the cluster, is retrieved byte for byte."""

    def builder() -> ProcessBuilder:
        builder = ScriptCalculation.get_builder()
        builder.code = code
        builder.script = orm.Str(f'head -c {size} /dev/urandom > {LARGE_OUTPUT_NAME}\nsha256sum {LARGE_OUTPUT_NAME}\n')
        builder.retrieve = orm.List([LARGE_OUTPUT_NAME])
        return builder

    def check(node: orm.ProcessNode) -> str:
        _finished_ok(node)
        retrieved = node.outputs.retrieved.get_object_content(LARGE_OUTPUT_NAME, mode='rb')
        assert len(retrieved) == size, f'retrieved {len(retrieved)} bytes of {size}'
        digest = hashlib.sha256(retrieved).hexdigest()
        remote_digest = node.outputs.retrieved.get_object_content('stdout').split()[0]
        assert digest == remote_digest, 'the retrieved output differs from the one on the cluster'
        return f'{size / 2**20:.1f} MiB made on the cluster and retrieved, sha256 {digest[:12]}... intact'

    return Step('Large output', builder, check)


def empty_files(code: orm.InstalledCode) -> Step:
    """A CalcJob that uploads an empty file and retrieves an empty output."""

    def builder() -> ProcessBuilder:
        builder = ScriptCalculation.get_builder()
        builder.code = code
        builder.script = orm.Str(
            f'test -f {EMPTY_INPUT_NAME} && test ! -s {EMPTY_INPUT_NAME} && echo empty input\n: > {EMPTY_OUTPUT_NAME}\n'
        )
        builder.files = {'empty': orm.SinglefileData(io.BytesIO(b''), filename=EMPTY_INPUT_NAME)}
        builder.retrieve = orm.List([EMPTY_OUTPUT_NAME])
        return builder

    def check(node: orm.ProcessNode) -> str:
        _finished_ok(node)
        stdout = node.outputs.retrieved.get_object_content('stdout')
        assert stdout == 'empty input\n', f'the script says {stdout!r}'
        output = node.outputs.retrieved.get_object_content(EMPTY_OUTPUT_NAME, mode='rb')
        assert output == b'', f'the empty output holds {len(output)} bytes'
        return 'an empty file uploaded and an empty one retrieved'

    return Step('Empty files', builder, check)


def awkward_names(code: orm.InstalledCode) -> Step:
    """A CalcJob that uploads files named with spaces, quotes and non-ASCII letters, copies each on the cluster to
    ``copy of <name>``, and retrieves the copies; each file holds its own name."""

    def builder() -> ProcessBuilder:
        builder = ScriptCalculation.get_builder()
        builder.code = code
        builder.script = orm.Str(
            'set -e\n'
            + ''.join(f'cp -- {shlex.quote(name)} {shlex.quote(COPY_PREFIX + name)}\n' for name in AWKWARD_NAMES)
        )
        builder.files = {
            f'file{index}': orm.SinglefileData(io.BytesIO(name.encode()), filename=name)
            for index, name in enumerate(AWKWARD_NAMES)
        }
        builder.retrieve = orm.List([COPY_PREFIX + name for name in AWKWARD_NAMES])
        return builder

    def check(node: orm.ProcessNode) -> str:
        _finished_ok(node)
        retrieved = node.outputs.retrieved
        missing = sorted(
            {COPY_PREFIX + name for name in AWKWARD_NAMES} - set(retrieved.base.repository.list_object_names())
        )
        assert not missing, f'not retrieved: {missing}'
        for name in AWKWARD_NAMES:
            content = retrieved.get_object_content(COPY_PREFIX + name, mode='rb').decode()
            assert content == name, f'{COPY_PREFIX + name!r} holds {content!r}'
        return f'{len(AWKWARD_NAMES)} files with awkward names uploaded, copied and retrieved'

    return Step('Awkward file names', builder, check)
