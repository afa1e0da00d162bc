"""The per-request context: the caller, the services and the request's DataLoaders."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.types import Info as StrawberryInfo

from graph.dataloaders import Loaders
from runtime.catalog.browse import ViewCounter
from runtime.catalog.installs import Installer
from runtime.core.auth import Principal, Role, TokenIssuer
from runtime.core.errors import Forbidden, Unauthenticated
from runtime.core.secrets import SecretBox
from runtime.core.settings import Settings
from runtime.hosting.host import PluginHost


@dataclass
class Services:
    """What resolvers call into; built once per process by the application."""

    settings: Settings
    # Encrypts secrets at rest: plugin configuration, repository credentials.
    box: SecretBox
    tokens: TokenIssuer
    installer: Installer
    views: ViewCounter
    host: PluginHost


@dataclass
class Context:
    services: Services
    request: Request | WebSocket | None
    response: Response | WebSocket | None
    principal: Principal | None = None
    connection_params: dict[str, Any] | None = None
    auth_error: str | None = None
    loaders: Loaders = field(default_factory=lambda: Loaders.for_subject(None))

    def authenticate(self, principal: Principal) -> None:
        self.principal = principal
        self.loaders = Loaders.for_subject(principal.subject)

    def require(self, *roles: Role) -> Principal:
        """The caller, if it holds one of `roles`; otherwise the error that says why not."""
        if self.principal is None:
            raise Unauthenticated(
                self.auth_error or "a bearer token is required: Authorization: Bearer <token>"
            )
        if not any(self.principal.has(role) for role in roles):
            needed = " or ".join(role.value for role in roles)
            raise Forbidden(f"this operation needs the {needed} role")
        return self.principal


Info = StrawberryInfo[Context, None]
