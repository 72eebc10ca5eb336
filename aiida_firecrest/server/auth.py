"""OAuth2 client credentials for the local server: a token endpoint issuing RS256 JWTs, and their verification.

The server plays both parts that a real deployment splits between an identity provider (Keycloak at CSCS) and
FirecREST: :class:`TokenAuthority` mints tokens for the one configured client and checks the tokens of API requests.
"""

from __future__ import annotations

import secrets
import time
import uuid
from typing import Annotated

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBasic, HTTPBasicCredentials, HTTPBearer

from .errors import ApiError
from .settings import ServerSettings

USERNAME_CLAIM = 'preferred_username'
"""The claim that names the cluster user, as in the real server's default configuration."""


class TokenAuthority:
    """Issue and verify the access tokens of one client, signed with a key made for this server's lifetime."""

    def __init__(self, settings: ServerSettings) -> None:
        self._settings = settings
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._public_key = self._key.public_key()

    def revoke_all(self) -> None:
        """Sign with a new key from now on: every token issued so far becomes invalid, as after a restart."""
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._public_key = self._key.public_key()

    def issue(self, client_id: str, client_secret: str) -> dict[str, object]:
        """Return the token answer for the client credentials, or raise a 401 :class:`ApiError`."""
        known_client = secrets.compare_digest(client_id, self._settings.client_id)
        if not (known_client and secrets.compare_digest(client_secret, self._settings.client_secret)):
            raise ApiError(401, 'Invalid client credentials.')
        now = int(time.time())
        lifetime = self._settings.token_lifetime
        claims = {
            'iss': 'aiida-firecrest-local',
            'sub': str(uuid.uuid4()),
            'azp': client_id,
            'iat': now,
            'exp': now + lifetime,
            USERNAME_CLAIM: self._settings.username,
        }
        token = jwt.encode(claims, self._key, algorithm='RS256')
        return {'access_token': token, 'token_type': 'Bearer', 'expires_in': lifetime, 'scope': 'firecrest'}

    def client_of(self, token: str) -> str | None:
        """Return the client (``azp``) of a token signed by this authority and not expired, else None."""
        try:
            claims = jwt.decode(token, self._public_key, algorithms=['RS256'], options={'require': ['exp', 'azp']})
        except jwt.PyJWTError:
            return None
        return str(claims['azp'])

    def verify(self, token: str) -> str:
        """Return the user of a valid token; raise a 401 :class:`ApiError` for an invalid or nearly expired one."""
        try:
            claims = jwt.decode(token, self._public_key, algorithms=['RS256'], options={'require': ['exp']})
        except jwt.PyJWTError as exc:
            raise ApiError(401, 'Access token is invalid.') from exc
        if claims['exp'] - time.time() < self._settings.min_token_ttl:
            raise ApiError(401, 'Access token expires too soon.')
        return str(claims[USERNAME_CLAIM])


_bearer = HTTPBearer(auto_error=False)
_basic = HTTPBasic(auto_error=False)


async def authenticated_user(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> str:
    """The FastAPI dependency of every API route: the user of the request's bearer token."""
    if credentials is None:
        raise ApiError(401, 'Not authenticated', headers={'WWW-Authenticate': 'Bearer'})
    user: str = request.app.state.token_authority.verify(credentials.credentials)
    request.state.user = user
    return user


User = Annotated[str, Depends(authenticated_user)]
"""The authenticated user of an API route."""

router = APIRouter(tags=['auth'])


@router.post('/auth/token', include_in_schema=False)
async def token(
    request: Request,
    grant_type: Annotated[str, Form()],
    basic: Annotated[HTTPBasicCredentials | None, Depends(_basic)],
    client_id: Annotated[str | None, Form()] = None,
    client_secret: Annotated[str | None, Form()] = None,
) -> JSONResponse:
    """The OAuth2 token endpoint, for the ``client_secret_post`` and ``client_secret_basic`` methods."""
    if grant_type != 'client_credentials':
        return JSONResponse({'error': 'unsupported_grant_type'}, status_code=400)
    if basic is not None:
        client_id, client_secret = basic.username, basic.password
    try:
        answer = request.app.state.token_authority.issue(client_id or '', client_secret or '')
    except ApiError:
        return JSONResponse({'error': 'invalid_client'}, status_code=401)
    return JSONResponse(answer, headers={'Cache-Control': 'no-store'})
