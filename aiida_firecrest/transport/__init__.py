"""The AiiDA transport plugin ``firecrest``: files on an HPC cluster through the FirecREST v2 REST API.

:class:`FirecrestTransport` (in :mod:`~aiida_firecrest.transport.firecrest_transport`) is the aiida-core contract; the
other modules here are the parts it is made of. See ``ARCHITECTURE.md``.
"""

from .firecrest_transport import FirecrestTransport

__all__ = ('FirecrestTransport',)
