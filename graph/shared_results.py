"""One execution per broadcast message for all subscribers of the same operation.

A dashboard fleet subscribes with a handful of distinct documents, and every subscriber of a
channel receives the same messages. GraphQL would execute each subscriber's selection set for
each message; here the subscription resolvers yield one shared root object per message (see
`shared_root`), and the execution context reuses the result an identical operation (same
document, operation name and variables) already produced for that root.

Example:
    root = shared_root(message.data, DeliveryOutcome.from_message)  # same object for everyone
    schema = Schema(..., execution_context_class=SharedResultExecution)
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

from graphql import ExecutionResult
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

T = TypeVar("T")

# Messages in flight at once across channels; an entry outlives its message's fan-out.
CACHE_SIZE = 2048


class _Lru(OrderedDict[Any, Any]):
    def remember(self, key: Any, value: Any) -> Any:
        self[key] = value
        if len(self) > CACHE_SIZE:
            self.popitem(last=False)
        return value


_roots = _Lru()  # id(message dict) -> (dict, root)
_shared = _Lru()  # id(root) -> root, for the roots handed out by shared_root
_results = _Lru()  # (id(root), operation) -> (root, result or future of it)


def shared_root(data: dict[str, Any], convert: Callable[[dict[str, Any]], T]) -> T:
    """The root object for a hub message, the same one for every subscriber that gets it.

    The hub hands every local subscriber the same decoded dict, so its identity names the
    message; the dict is kept alongside so that identity is not reused while remembered.
    """
    entry = _roots.get(id(data))
    if entry is None or entry[0] is not data:
        root = convert(data)
        entry = _roots.remember(id(data), (data, root))
        _shared.remember(id(root), root)
    return entry[1]  # type: ignore[no-any-return]


class SharedResultExecution(StrawberryGraphQLCoreExecutionContext):
    """Executes a subscription event once per (root, document, operation, variables)."""

    def build_per_event_executor(self, payload: Any) -> Any:
        # A result already made for this root needs no executor of its own (building one
        # copies this one): hand back the result.
        if payload is not None and _shared.get(id(payload)) is payload:
            cached = _results.get((id(payload), self._operation_key()))
            if cached is not None and cached[0] is payload:
                return _Made(cached[1], self)
        return super().build_per_event_executor(payload)

    def execute_operation(self, *args: Any, **kwargs: Any) -> Any:
        root = self.root_value
        if root is None or _shared.get(id(root)) is not root:
            return super().execute_operation(*args, **kwargs)
        key = (id(root), self._operation_key())
        cached = _results.get(key)
        if cached is not None and cached[0] is root:
            return _reuse(cached[1])
        outcome = super().execute_operation(*args, **kwargs)
        if self.is_awaitable(outcome):
            outcome = asyncio.ensure_future(outcome)
        _results.remember(key, (root, outcome))
        return _reuse(outcome)

    def _operation_key(self) -> tuple[str, str | None, str]:
        location = self.operation.loc
        source = location.source.body if location is not None else repr(self.operation)
        name = self.operation.name.value if self.operation.name else None
        return source, name, repr(sorted(self.variable_values.coerced.items()))


class _Made:
    """Stands for a per-event executor whose result another subscriber's execution made."""

    def __init__(self, outcome: Any, parent: SharedResultExecution) -> None:
        self._outcome = outcome
        self.is_awaitable = parent.is_awaitable

    def execute_operation(self, *args: Any, **kwargs: Any) -> Any:
        return _reuse(self._outcome)


def _reuse(outcome: Any) -> Any:
    """The result itself, or an awaitable of the shared future that another may await too."""
    if isinstance(outcome, asyncio.Future):
        return _await_shared(outcome)
    return outcome


async def _await_shared(future: asyncio.Future[ExecutionResult]) -> ExecutionResult:
    # Shielded: one subscriber leaving must not cancel the result the others wait for.
    return await asyncio.shield(future)
