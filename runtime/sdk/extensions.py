"""What a plugin adds to the server: HTTP routes, actions, and extensions of the admin UI.

A route is declared here by its path, endpoint, methods and who may call it; the host serves
it with Starlette under /plugins/<name>/ (runtime.hosting.routes), so declaring one needs
neither Starlette nor a server. Each route names the role a caller's token must hold (admin
unless the plugin says otherwise), or is public, which a plugin must say explicitly.

Example (inside a plugin):
    ctx.api.route("/count", self.count)                      # admins only
    ctx.api.route("/mine", self.mine, role="user")           # users (and admins)
    ctx.api.route("/status", self.status, public=True)       # anyone, no token
    ctx.api.action("reset", self.reset)                      # the pluginAction mutation
    ctx.ui.add("dashboard.widgets", "Counter", title="Sessions")
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from runtime.core.roles import Role

DEFAULT_ROLE = Role.ADMIN
ROLES = ", ".join(role.value for role in Role)
ActionHandler = Callable[[Mapping[str, Any]], Awaitable[Any]]


@dataclass(frozen=True)
class PluginRoute:
    """A route as a plugin declared it: its path, methods, and who may call it."""

    path: str
    endpoint: Callable[..., Any]
    methods: tuple[str, ...]
    # None: public, callable without a token.
    role: Role | None

    @property
    def public(self) -> bool:
        return self.role is None


def declare_route(
    path: str,
    endpoint: Callable[..., Any],
    methods: Sequence[str] | None = None,
    *,
    role: str | None = None,
    public: bool = False,
) -> PluginRoute:
    """A checked declaration: admin-only unless `role` names another role or `public` is
    True; a public route takes no role."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError(f"a route's path starts with '/', not {path!r}")
    if not isinstance(public, bool):
        raise TypeError("public= is True or False")
    if public and role is not None:
        raise ValueError(f"the route {path} is public: it takes no role (drop role= or public=)")
    if role is not None and role not in set(Role):
        raise ValueError(f"the route {path} names the role {role!r}: use one of {ROLES}")
    verbs = tuple(method.upper() for method in (methods or ["GET"]))
    required = None if public else Role(role or DEFAULT_ROLE)
    return PluginRoute(path, endpoint, verbs, required)


@dataclass(frozen=True)
class Action:
    name: str
    handler: ActionHandler
    role: str


class ApiRegistry:
    """HTTP routes (served under /plugins/<name>/ while the plugin is active, each to callers
    holding its role, admin by default, or to anyone when declared public) and actions
    (called through the pluginAction mutation by callers holding `role`)."""

    def __init__(self) -> None:
        self.routes: list[PluginRoute] = []
        self.actions: dict[str, Action] = {}

    def route(
        self,
        path: str,
        endpoint: Callable[..., Any],
        methods: Sequence[str] | None = None,
        *,
        role: str | None = None,
        public: bool = False,
    ) -> None:
        """Serve `endpoint` (a Starlette endpoint) at `path` to callers whose token holds
        `role` (admin when not named), or to anyone, without a token, when `public`."""
        self.routes.append(declare_route(path, endpoint, methods, role=role, public=public))

    def action(self, name: str, handler: ActionHandler, *, role: str = "admin") -> None:
        self.actions[name] = Action(name, handler, role)

    def clear(self) -> None:
        self.routes.clear()
        self.actions.clear()


@dataclass(frozen=True)
class UIExtension:
    plugin: str
    slot: str
    component: str
    title: str | None
    props: Mapping[str, Any]


class UiRegistry:
    """Extension points the admin UI renders (a slot, a component name, its props)."""

    def __init__(self, plugin: str) -> None:
        self._plugin = plugin
        self.extensions: list[UIExtension] = []

    def add(self, slot: str, component: str, *, title: str | None = None, **props: Any) -> None:
        self.extensions.append(UIExtension(self._plugin, slot, component, title, props))

    def clear(self) -> None:
        self.extensions.clear()
