"""Sphinx configuration of the aiida-firecrest documentation (``sphinx-build -W -n -b html docs docs/_build``)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / '_ext'))

from aiida_firecrest import __version__

project = 'aiida-firecrest'
author = 'The AiiDA team'
copyright = '2021-2026, The AiiDA team'
version = release = __version__

extensions = [
    'myst_parser',
    'sphinx_copybutton',
    'sphinx_click',
    'firecrest_options',
]
myst_enable_extensions = ['colon_fence', 'deflist']
myst_heading_anchors = 3
source_suffix = {'.md': 'markdown'}
exclude_patterns = ['_build']
nitpicky = True

html_theme = 'furo'
html_title = f'aiida-firecrest {release}'
html_theme_options = {
    'source_repository': 'https://github.com/aiidateam/aiida-firecrest/',
    'source_branch': 'main',
    'source_directory': 'docs/',
}
