"""The ``firecrest-options`` directive: the table of the transport's options, read from the code.

The options are those of :data:`aiida_firecrest.options.AUTH_OPTIONS` (what ``verdi computer configure firecrest``
asks), followed by AiiDA's common ones, so the table never drifts from the code.
"""

from __future__ import annotations

import re
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective


def _literal(text: str) -> str:
    """Return ``text`` with its Markdown code spans (`x`) as reStructuredText literals (``x``)."""
    return re.sub(r'(?<!`)`([^`]+)`(?!`)', r'``\1``', text)


def _default(transport: type, name: str, spec: dict[str, Any]) -> str:
    """Return the default that ``verdi computer configure`` offers for option ``name``, as reStructuredText."""
    suggestion = getattr(transport, f'_get_{name}_suggestion_string', None)
    if suggestion is not None:
        default = suggestion(None)
    elif 'default' in spec:
        default = spec['default']
    else:
        return 'required'
    return '(empty)' if default == '' else f'``{default}``'


class FirecrestOptions(SphinxDirective):
    """Insert a table of the transport's options: name, default, and help."""

    def run(self) -> list[nodes.Node]:
        from aiida_firecrest.transport import FirecrestTransport

        lines = ['.. list-table::', '   :header-rows: 1', '   :widths: 20 15 65', '']
        lines += ['   * - Option', '     - Default', '     - Meaning']
        for name, spec in FirecrestTransport.auth_options.items():
            lines += [
                f'   * - ``{name}``',
                f'     - {_default(FirecrestTransport, name, spec)}',
                f'     - {_literal(spec.get("help", ""))}',
            ]
        container = nodes.container()
        self.state.nested_parse(StringList(lines, source='firecrest-options'), self.content_offset, container)
        return container.children


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the directive."""
    app.add_directive('firecrest-options', FirecrestOptions)
    return {'parallel_read_safe': True, 'parallel_write_safe': True}
