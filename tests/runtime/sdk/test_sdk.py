"""The SDK's Plugin base class and the checks made when a plugin class is registered."""

from collections.abc import Mapping
from typing import Any

from runtime.sdk import (
    EVENT_HOOKS,
    HOOKS,
    LIFECYCLE_HOOKS,
    STATE_HOOKS,
    Plugin,
    hook_problems,
    implemented_hooks,
)


class Echo(Plugin):
    async def on_session_created(self, ctx: Any, session: Mapping[str, Any]) -> dict[str, Any]:
        return {"seen": session["id"]}

    async def on_event(self, ctx: Any, event: Any) -> None:
        return None


async def test_every_hook_of_the_base_class_is_an_async_no_op() -> None:
    plugin = Plugin()
    for name in HOOKS:
        hook = getattr(plugin, name)
        arguments = (
            [None] if name in {"on_load", "on_unload", "on_enable", "on_disable"} else [None, {}]
        )
        assert await hook(*arguments) is None


def test_the_sdk_has_the_four_state_and_eleven_event_hooks_and_on_event() -> None:
    assert STATE_HOOKS == ("on_load", "on_unload", "on_enable", "on_disable")
    assert LIFECYCLE_HOOKS is STATE_HOOKS  # the name it had, kept for code that imports it
    assert len(EVENT_HOOKS) == 11
    assert len(HOOKS) == 4 + 11 + 1


def test_implemented_hooks_are_the_overridden_ones() -> None:
    assert implemented_hooks(Echo) == {"on_session_created", "on_event"}
    assert implemented_hooks(Plugin) == set()


def test_a_well_formed_plugin_has_no_problems() -> None:
    assert hook_problems(Echo) == []


def test_a_misspelt_hook_is_named_with_a_suggestion() -> None:
    class Typo(Plugin):
        async def on_sesion_created(self, ctx: Any, session: Any) -> None: ...

    assert hook_problems(Typo) == [
        "on_sesion_created is not a hook of the SDK (did you mean on_session_created?)"
    ]


def test_a_synchronous_hook_is_refused() -> None:
    class Sync(Plugin):
        def on_user_login(self, ctx: Any, user: Any) -> None:  # type: ignore[override]
            return None

    assert hook_problems(Sync) == ["on_user_login must be declared with 'async def'"]


def test_a_hook_with_the_wrong_arguments_is_refused() -> None:
    class Narrow(Plugin):
        async def on_user_login(self, ctx: Any) -> None:  # type: ignore[override]
            return None

    assert hook_problems(Narrow) == [
        "on_user_login must accept the same arguments as Plugin.on_user_login"
    ]


def test_a_class_that_is_not_a_plugin_is_refused() -> None:
    class NotAPlugin:
        pass

    assert hook_problems(NotAPlugin) == ["'NotAPlugin' is not a subclass of runtime.sdk.Plugin"]
