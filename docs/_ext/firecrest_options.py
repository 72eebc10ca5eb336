"""The ``firecrest-options`` directive: the table of the transport's options, read from the code.

The options are those of :data:`aiida_firecrest.transport.options.AUTH_OPTIONS` (what ``verdi computer configure
firecrest`` asks), followed by AiiDA's common ones, so the table never drifts from the code.
"""

from __future__ import annotations

import re
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

CODE_SPAN = re.compile(r'`([^`]+)`')
"""A Markdown code span in a help text."""


def _inline(text: str) -> nodes.paragraph:
    """Return ``text`` as a paragraph, its code spans (`x`) as literals."""
    paragraph = nodes.paragraph()
    for index, part in enumerate(CODE_SPAN.split(text)):
        if part:
            paragraph += nodes.literal(part, part) if index % 2 else nodes.Text(part)
    return paragraph


def _default(transport: type, name: str, spec: dict[str, Any]) -> str:
    """Return the default that ``verdi computer configure`` offers for option ``name``, as text with code spans."""
    suggestion = getattr(transport, f'_get_{name}_suggestion_string', None)
    if suggestion is not None:
        default = suggestion(None)
    elif 'default' in spec:
        default = spec['default']
    else:
        return 'required'
    return '(empty)' if default == '' else f'`{default}`'


def _row(*cells: str) -> nodes.row:
    row = nodes.row()
    for cell in cells:
        entry = nodes.entry()
        entry += _inline(cell)
        row += entry
    return row


class FirecrestOptions(SphinxDirective):
    """Insert a table of the transport's options: name, default, and meaning."""

    def run(self) -> list[nodes.Node]:
        from aiida_firecrest.transport import FirecrestTransport

        group = nodes.tgroup(cols=3)
        for width in (20, 15, 65):
            group += nodes.colspec(colwidth=width)
        head = nodes.thead()
        head += _row('Option', 'Default', 'Meaning')
        body = nodes.tbody()
        for name, spec in FirecrestTransport.auth_options.items():
            body += _row(f'`{name}`', _default(FirecrestTransport, name, spec), str(spec.get('help', '')))
        group += head
        group += body
        table = nodes.table()
        table += group
        return [table]


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the directive."""
    app.add_directive('firecrest-options', FirecrestOptions)
    return {'parallel_read_safe': True, 'parallel_write_safe': True}
