"""The ``/status`` routes: systems, liveness, user information and the scheduler's partitions, nodes, reservations."""

from __future__ import annotations

import grp
import os
import pwd
import time
from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Request

from .auth import User
from .errors import ApiError
from .settings import APP_VERSION, ServerSettings

router = APIRouter(prefix='/status', tags=['status'])

DATATRANSFER_JOBS_DIRECTIVES = ['#SBATCH --nodes=1', '#SBATCH --time=0-00:15:00']


def check_system(system_name: str, settings: ServerSettings) -> None:
    """Raise the real server's 404 for a system the server does not have (the real server lower-cases the URL path)."""
    if system_name.lower() != settings.system_name.lower():
        raise ApiError.system_not_found()


async def known_system(system_name: str, request: Request, user: User) -> ServerSettings:
    """The FastAPI dependency of the routes of a system: authenticate, check the system and return the settings.

    Routers declare it first, so that, as on the real server, a request is refused for its token (401) and its system
    (404) before its parameters and body are validated (400).
    """
    settings: ServerSettings = request.app.state.settings
    check_system(system_name, settings)
    return settings


def describe_system(request: Request) -> dict[str, Any]:
    """Return the ``HPCCluster`` description of the server's one system."""
    settings: ServerSettings = request.app.state.settings
    s3 = settings.s3
    data_transfer = None
    if s3 is not None:
        data_transfer = {
            'serviceType': 's3',
            'name': 'seaweedfs',
            'privateUrl': '**********',
            'publicUrl': s3.endpoint_url,
            'accessKeyId': '**********',
            'secretAccessKey': '**********',
            'region': s3.region,
            'ttl': s3.url_lifetime,
            'tenant': None,
            'multipart': {
                'use_split': False,
                'max_part_size': s3.max_part_size,
                'parallel_runs': 3,
                'tmp_folder': 'tmp',
            },
            'bucketLifecycleConfiguration': {'days': 10},
        }
    backend = request.app.state.jobs
    return {
        'name': settings.system_name,
        'ssh': {
            'host': '127.0.0.1',
            'port': 22,
            'proxyHost': None,
            'proxyPort': None,
            'maxClients': 50,
            'timeout': {
                'connection': 5,
                'login': 5,
                'commandExecution': int(settings.command_timeout),
                'idleTimeout': 60,
                'keepAlive': 5,
            },
        },
        'scheduler': {
            'type': 'slurm',
            'connectionMode': 'ssh',
            'version': backend.version,
            'apiUrl': None,
            'apiVersion': None,
            'timeout': 10,
        },
        'servicesHealth': [],
        'probing': {'services': None, 'intervalCheck': 120},
        'lastHealthCheck': datetime.now(timezone.utc).isoformat().replace('+00:00', 'Z'),
        'fileSystems': [
            {'path': str(root), 'dataType': 'users', 'defaultWorkDir': index == 0}
            for index, root in enumerate(settings.roots)
        ],
        'dataOperation': {
            'datatransfer_jobs_directives': DATATRANSFER_JOBS_DIRECTIVES,
            'max_ops_file_size': settings.max_ops_file_size,
            'data_transfer': data_transfer,
        },
    }


@router.get('/liveness/')
async def liveness() -> dict[str, Any]:
    """Answer that the server is alive; needs no token, as on the real server."""
    return {'healthcheckRuns': {}, 'lastUpdate': int(time.time())}


@router.get('/systems')
async def systems(request: Request, user: User) -> dict[str, Any]:
    """Describe the server's system, including its direct-transfer limit."""
    return {'systems': [describe_system(request)]}


@router.get('/{system_name}/userinfo')
async def userinfo(system_name: str, request: Request, user: User) -> dict[str, Any]:
    """Report the user's identity, groups and billing accounts."""
    settings: ServerSettings = request.app.state.settings
    check_system(system_name, settings)
    entry = pwd.getpwnam(user)
    group = grp.getgrgid(entry.pw_gid)
    groups = [grp.getgrgid(gid) for gid in os.getgrouplist(user, entry.pw_gid)]
    accounts = [{'name': settings.account, 'default': True}] if settings.account else []
    return {
        'user': {'id': str(entry.pw_uid), 'name': entry.pw_name},
        'group': {'id': str(group.gr_gid), 'name': group.gr_name},
        'groups': [{'id': str(g.gr_gid), 'name': g.gr_name} for g in groups],
        'accounts': accounts,
    }


@router.get('/{system_name}/partitions')
async def partitions(system_name: str, request: Request, user: User) -> dict[str, Any]:
    """List the scheduler's partitions."""
    check_system(system_name, request.app.state.settings)
    return {'partitions': await request.app.state.jobs.partitions()}


@router.get('/{system_name}/nodes')
async def nodes(system_name: str, request: Request, user: User) -> dict[str, Any]:
    """List the scheduler's nodes."""
    check_system(system_name, request.app.state.settings)
    return {'nodes': await request.app.state.jobs.nodes()}


@router.get('/{system_name}/reservations')
async def reservations(system_name: str, request: Request, user: User) -> dict[str, Any]:
    """List the scheduler's reservations."""
    check_system(system_name, request.app.state.settings)
    return {'reservations': await request.app.state.jobs.reservations()}


__all__ = ('APP_VERSION', 'check_system', 'describe_system', 'known_system', 'router')
