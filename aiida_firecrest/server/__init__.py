"""A local FirecREST v2 server: the real v2 HTTP API on loopback, backed by the local machine.

It serves the paths that pyfirecrest's ``firecrest.v2`` clients call, backed by the local filesystem, a job backend
(real Slurm, or batch scripts run as local processes) and a real S3 server for staged transfers. It is the backend of
the plugin's tests and the embedded default of the demo; other plugins can use it in their tests as well::

    from aiida_firecrest.server import LocalFirecrest, ServerSettings

    with LocalFirecrest(ServerSettings(roots=[tmp_path])) as server:
        client_config = server.client_config  # url, token_uri, client_id, client_secret, ...
"""

from .runner import LocalFirecrest
from .settings import FaultSettings, ServerSettings

__all__ = ('FaultSettings', 'LocalFirecrest', 'ServerSettings')
