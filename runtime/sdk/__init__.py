"""The plugin SDK: what plugin code imports.

A plugin subclasses `Plugin` and overrides the hooks it needs; every hook is an async no-op by
default. Hooks are checked when the class is registered, so a misspelt hook is an error at load
time rather than a hook that silently never runs.

Importing the SDK imports neither the server, its database (Tortoise, asyncpg, `models`),
Starlette nor aiohttp: the context's services are protocols (runtime.sdk.context) that the
server and the testing harness implement. `AddressPolicy`, which needs aiohttp, is imported
only when a plugin names it.

Example:
    >>> class Echo(Plugin):
    ...     async def on_session_created(self, ctx, session):
    ...         return {"seen": session["id"]}
    >>> sorted(implemented_hooks(Echo))
    ['on_session_created']
    >>> class Typo(Plugin):
    ...     async def on_sesion_created(self, ctx, session): ...
    >>> hook_problems(Typo)
    ['on_sesion_created is not a hook of the SDK (did you mean on_session_created?)']
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from runtime.core.address_refusals import AddressRefused
from runtime.sdk.context import (
    Api,
    Events,
    Http,
    Log,
    Network,
    PluginContext,
    Request,
    Response,
    Scheduler,
    Storage,
    Ui,
)
from runtime.sdk.event_catalog import (
    EVENT_HOOKS,
    LIFECYCLE_TYPES,
    Event,
    SessionPayload,
    SessionResources,
    UserPayload,
)
from runtime.sdk.notices import Allowance, HourlyLimit, Notice, NoticeField, config_key, describe
from runtime.sdk.outcomes import DeliveryStatus, PermanentFailure, RetryLater, Skip
from runtime.sdk.vendor_http import raise_for_status, retry_after_seconds, unreachable

if TYPE_CHECKING:
    from runtime.core.address_policy import AddressPolicy

HookResult = Mapping[str, Any] | None


class Plugin:
    """Base class of every plugin; override the hooks you need.

    State hooks (on_load, on_enable, on_disable, on_unload) get the context; event hooks get
    the context and the event's normalised payload, and may return a mapping that is stored as
    the delivery's result. "Lifecycle" names the session and user events (LIFECYCLE_TYPES,
    LifecycleNotifier), never these.
    """

    async def on_load(self, ctx: PluginContext) -> None:
        """The plugin was loaded: check configuration, open clients."""

    async def on_unload(self, ctx: PluginContext) -> None:
        """The plugin is being unloaded: close what on_load opened."""

    async def on_enable(self, ctx: PluginContext) -> None:
        """The plugin was enabled and will receive events."""

    async def on_disable(self, ctx: PluginContext) -> None:
        """The plugin was disabled and will receive no more events."""

    async def on_session_created(self, ctx: PluginContext, session: SessionPayload) -> HookResult:
        return None

    async def on_session_started(self, ctx: PluginContext, session: SessionPayload) -> HookResult:
        return None

    async def on_session_stopped(self, ctx: PluginContext, session: SessionPayload) -> HookResult:
        return None

    async def on_session_hibernated(
        self, ctx: PluginContext, session: SessionPayload
    ) -> HookResult:
        return None

    async def on_session_woken(self, ctx: PluginContext, session: SessionPayload) -> HookResult:
        return None

    async def on_session_deleted(self, ctx: PluginContext, session: SessionPayload) -> HookResult:
        return None

    async def on_user_created(self, ctx: PluginContext, user: UserPayload) -> HookResult:
        return None

    async def on_user_updated(self, ctx: PluginContext, user: UserPayload) -> HookResult:
        return None

    async def on_user_deleted(self, ctx: PluginContext, user: UserPayload) -> HookResult:
        return None

    async def on_user_login(self, ctx: PluginContext, user: UserPayload) -> HookResult:
        return None

    async def on_user_logout(self, ctx: PluginContext, user: UserPayload) -> HookResult:
        return None

    async def on_event(self, ctx: PluginContext, event: Event) -> HookResult:
        """Any event, custom ones included, that no specific hook of this plugin took."""
        return None

    async def test_connection(self, ctx: PluginContext) -> HookResult:
        """What testPlugin runs: send a test message, check credentials. Not a hook."""
        return {"ok": True, "message": "this plugin has no connection to test"}


class LifecycleNotifier(Plugin):
    """A plugin that handles every session and user lifecycle event one way: override `notify`.

    Example:
        >>> class Printer(LifecycleNotifier):
        ...     async def notify(self, ctx, event_type, payload):
        ...         return {"printed": event_type}
        >>> sorted(implemented_hooks(Printer))[:2]
        ['on_session_created', 'on_session_deleted']
    """

    async def notify(
        self, ctx: PluginContext, event_type: str, payload: Mapping[str, Any]
    ) -> HookResult:
        raise NotImplementedError("a LifecycleNotifier overrides notify")

    async def on_session_created(self, ctx: PluginContext, session: SessionPayload) -> HookResult:
        return await self.notify(ctx, "session.created", session)

    async def on_session_started(self, ctx: PluginContext, session: SessionPayload) -> HookResult:
        return await self.notify(ctx, "session.started", session)

    async def on_session_stopped(self, ctx: PluginContext, session: SessionPayload) -> HookResult:
        return await self.notify(ctx, "session.stopped", session)

    async def on_session_hibernated(
        self, ctx: PluginContext, session: SessionPayload
    ) -> HookResult:
        return await self.notify(ctx, "session.hibernated", session)

    async def on_session_woken(self, ctx: PluginContext, session: SessionPayload) -> HookResult:
        return await self.notify(ctx, "session.woken", session)

    async def on_session_deleted(self, ctx: PluginContext, session: SessionPayload) -> HookResult:
        return await self.notify(ctx, "session.deleted", session)

    async def on_user_created(self, ctx: PluginContext, user: UserPayload) -> HookResult:
        return await self.notify(ctx, "user.created", user)

    async def on_user_updated(self, ctx: PluginContext, user: UserPayload) -> HookResult:
        return await self.notify(ctx, "user.updated", user)

    async def on_user_deleted(self, ctx: PluginContext, user: UserPayload) -> HookResult:
        return await self.notify(ctx, "user.deleted", user)

    async def on_user_login(self, ctx: PluginContext, user: UserPayload) -> HookResult:
        return await self.notify(ctx, "user.login", user)

    async def on_user_logout(self, ctx: PluginContext, user: UserPayload) -> HookResult:
        return await self.notify(ctx, "user.logout", user)


# The hooks run as the plugin's state changes: loaded, enabled, disabled, unloaded.
STATE_HOOKS = ("on_load", "on_unload", "on_enable", "on_disable")
# The name STATE_HOOKS had, when "lifecycle" also named the session and user events.
LIFECYCLE_HOOKS = STATE_HOOKS
HOOKS = frozenset((*STATE_HOOKS, *EVENT_HOOKS, "on_event"))


def implemented_hooks(cls: type[Plugin]) -> set[str]:
    """The hooks `cls` overrides (those the runtime needs to call)."""
    return {name for name in HOOKS if getattr(cls, name) is not getattr(Plugin, name)}


def hook_problems(cls: type) -> list[str]:
    """Every way `cls` does not fit the SDK; empty when it may be registered."""
    if not (isinstance(cls, type) and issubclass(cls, Plugin)):
        return [f"{getattr(cls, '__name__', cls)!r} is not a subclass of runtime.sdk.Plugin"]
    problems: list[str] = []
    for name, member in inspect.getmembers(cls):
        if not name.startswith("on_") or not callable(member):
            continue
        if name not in HOOKS:
            guess = difflib.get_close_matches(name, sorted(HOOKS), n=1)
            hint = f" (did you mean {guess[0]}?)" if guess else ""
            problems.append(f"{name} is not a hook of the SDK{hint}")
            continue
        if not inspect.iscoroutinefunction(member):
            problems.append(f"{name} must be declared with 'async def'")
            continue
        expected = len(inspect.signature(getattr(Plugin, name)).parameters)
        try:
            inspect.signature(member).bind(*range(expected))
        except TypeError:
            problems.append(f"{name} must accept the same arguments as Plugin.{name}")
    return problems


def __getattr__(name: str) -> Any:
    # AddressPolicy needs aiohttp: imported when a plugin names it, not with the SDK.
    if name == "AddressPolicy":
        from runtime.core.address_policy import AddressPolicy

        return AddressPolicy
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# What plugin code imports: the base class, the context hooks receive and its services, the
# payload shapes, and the outcomes a hook may raise.
__all__ = [
    "EVENT_HOOKS",
    "HOOKS",
    "LIFECYCLE_HOOKS",
    "LIFECYCLE_TYPES",
    "STATE_HOOKS",
    "AddressPolicy",
    "AddressRefused",
    "Allowance",
    "Api",
    "DeliveryStatus",
    "Event",
    "Events",
    "HookResult",
    "HourlyLimit",
    "Http",
    "LifecycleNotifier",
    "Log",
    "Network",
    "Notice",
    "NoticeField",
    "PermanentFailure",
    "Plugin",
    "PluginContext",
    "Request",
    "Response",
    "RetryLater",
    "Scheduler",
    "SessionPayload",
    "SessionResources",
    "Skip",
    "Storage",
    "Ui",
    "UserPayload",
    "config_key",
    "describe",
    "hook_problems",
    "implemented_hooks",
    "raise_for_status",
    "retry_after_seconds",
    "unreachable",
]
