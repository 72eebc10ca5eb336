"""The application factory of the local server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from . import auth, status
from .errors import register_exception_handlers
from .jobs import JobBackend, create_backend
from .middleware import FaultMiddleware, RequestLog, RequestLogMiddleware, ServerRestarts
from .ratelimit import RateLimitMiddleware
from .settings import APP_VERSION, ServerSettings


def create_app(settings: ServerSettings, backend: JobBackend | None = None) -> FastAPI:
    """Return the FastAPI application of a local FirecREST v2 server.

    :param settings: what the server exposes and how.
    :param backend: the job backend; by default the one ``settings.scheduler`` names.

    The application keeps its collaborators in ``app.state``: ``settings``, ``token_authority``, ``jobs`` (the job
    backend), ``request_log`` (a :class:`~aiida_firecrest.server.middleware.RequestLog`), ``restarts`` (a
    :class:`~aiida_firecrest.server.middleware.ServerRestarts`) and ``staging`` (the S3 staging area, or None).

    The middleware, outermost first: the request log, the gateway's rate limit, fault injection and restarts.
    """
    from . import compute, filesystem, staging, transfer

    jobs = backend or create_backend(settings)
    staging_area = staging.Staging(settings.s3) if settings.s3 else None

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        lifecycle = asyncio.create_task(staging_area.run_lifecycle()) if staging_area else None
        yield
        if lifecycle is not None:
            lifecycle.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await lifecycle
        await jobs.close()

    app = FastAPI(
        title='FirecREST v2 (aiida-firecrest local server)', version=APP_VERSION, docs_url=None, lifespan=lifespan
    )
    app.state.settings = settings
    app.state.token_authority = auth.TokenAuthority(settings)
    app.state.jobs = jobs
    app.state.staging = staging_area
    app.state.request_log = RequestLog()
    app.state.restarts = ServerRestarts(app.state.token_authority.revoke_all)
    register_exception_handlers(app)
    for module in (auth, status, filesystem, transfer, compute):
        app.include_router(module.router)
    app.add_middleware(FaultMiddleware, faults=lambda: settings.faults, restarts=app.state.restarts)
    app.add_middleware(
        RateLimitMiddleware, limit=lambda: settings.rate_limit, identify=app.state.token_authority.client_of
    )
    app.add_middleware(RequestLogMiddleware, log=app.state.request_log)
    return app
