"""The layout keeps the promises of ``ARCHITECTURE.md``: its module list is the package's, no module is long, no two
share a name, and no private name crosses a module boundary."""

from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
PACKAGE = ROOT / 'aiida_firecrest'
PLUGIN_PACKAGES = ('', 'transport', 'scheduler', 'client')
"""The packages whose modules ``ARCHITECTURE.md`` lists one by one ('' for the top level)."""
MAX_LINES = 620
MODULES = sorted(path for path in PACKAGE.rglob('*.py'))


def documented_modules() -> set[str]:
    """The modules listed under each package heading of ``ARCHITECTURE.md`` (e.g. ``transport/backend.py``)."""
    listed: set[str] = set()
    package = None
    for line in (ROOT / 'ARCHITECTURE.md').read_text().splitlines():
        if heading := re.fullmatch(r'`aiida_firecrest/(\w*)/?`', line):
            package = heading.group(1)
        elif (item := re.match(r'- `(\w+\.py)`', line)) and package is not None:
            listed.add(f'{package}/{item.group(1)}' if package else item.group(1))
    return listed


def test_architecture_lists_the_plugin_modules() -> None:
    actual = {
        str(path.relative_to(PACKAGE)) for package in PLUGIN_PACKAGES for path in (PACKAGE / package).glob('*.py')
    }
    assert documented_modules() == actual


@pytest.mark.parametrize('path', MODULES, ids=lambda path: str(path.relative_to(PACKAGE)))
def test_module_is_short(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= MAX_LINES


def test_module_names_are_unique() -> None:
    names = Counter(path.name for path in MODULES if path.name != '__init__.py')
    assert [name for name, count in names.items() if count > 1] == []


@pytest.mark.parametrize('path', MODULES, ids=lambda path: str(path.relative_to(PACKAGE)))
def test_no_private_name_crosses_modules(path: Path) -> None:
    tree = ast.parse(path.read_text())
    imported = [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or '').startswith('aiida_firecrest'))
        for alias in node.names
    ]
    exported = [
        name
        for node in tree.body
        if isinstance(node, ast.Assign) and any(getattr(target, 'id', '') == '__all__' for target in node.targets)
        for name in ast.literal_eval(node.value)
    ]
    assert [name for name in imported + exported if name.startswith('_')] == []
