"""``python -m aiida_firecrest.server``: the ``serve`` command of ``firecrest_demo.py``."""

from .cli import serve

serve()
