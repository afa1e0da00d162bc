"""One execution per broadcast message for all subscribers of the same operation.

A dashboard fleet subscribes with a handful of distinct documents, and every subscriber of a
channel receives the same messages. GraphQL would execute each subscriber's selection set for
each message; here the subscription resolvers yield one shared root object per message (see
`shared_root`), and the execution context reuses the result an identical operation (same
document, operation name and variables) already produced for that root.

The same goes for serialising: the payload of the `next` message carrying a shared result is
encoded once (`shared_payload`), and each subscriber's message is built around that text.

Example:
    root = shared_root(message.data, DeliveryOutcome.from_message)  # same object for everyone
    schema = Schema(..., execution_context_class=SharedResultExecution)
"""

from __future__ import annotations

import asyncio
import inspect
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, TypeVar

from graphql import ExecutionResult, OperationType, execute_subscription_event
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
_payloads = _Lru()  # id(data of a shared result) -> (data, its payload's JSON text or None)

# The subscription executor built last in this task: the operation's, for its resolver to find.
_subscription_executor: ContextVar[SharedResultExecution | None] = ContextVar(
    "subscription_executor", default=None
)


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


def shared_payload(data: Any, encode: Callable[[object], str]) -> str | None:
    """`encode({"data": data})`, made once, when `data` is a shared result's; else None.

    Every subscriber of an operation gets the same result object for a message, so the
    payload of its `next` message is the same text for all of them.
    """
    entry = _payloads.get(id(data))
    if entry is None or entry[0] is not data:
        return None
    if entry[1] is None:
        entry = _payloads.remember(id(data), (data, encode({"data": data})))
    return entry[1]  # type: ignore[no-any-return]


async def _noted(made: Awaitable[Any]) -> Any:
    # Noted before the future is done: whoever finds it done finds the payload noted too (a
    # done callback would run only later, after those of futures that finished before it).
    outcome = await made
    _note_payload(outcome)
    return outcome


def _note_payload(outcome: Any) -> None:
    # Only a clean result's payload is the data alone.
    if not isinstance(outcome, ExecutionResult) or outcome.errors or outcome.extensions:
        return
    if outcome.data is not None:
        _payloads.remember(id(outcome.data), (outcome.data, None))


def subscription_executor() -> SharedResultExecution | None:
    """The executor of the subscription whose resolver is running (None outside one)."""
    return _subscription_executor.get()


class SharedResultExecution(StrawberryGraphQLCoreExecutionContext):
    """Executes a subscription event once per (root, document, operation, variables)."""

    @classmethod
    def build(cls, *args: Any, **kwargs: Any) -> Any:
        built = super().build(*args, **kwargs)
        if (
            isinstance(built, SharedResultExecution)
            and built.operation.operation is OperationType.SUBSCRIPTION
        ):
            # subscribe() builds the executor and calls the subscription's resolver right
            # after, in this task: the resolver finds it here.
            _subscription_executor.set(built)
        return built

    def result_now(self, root: Any) -> ExecutionResult | asyncio.Future[Any] | None:
        """This operation's result for a shared root, executed now unless already made.

        The future of it while it is being made (a resolver waits on something); None when
        it failed or the root is not a shared one.
        """
        if _shared.get(id(root)) is not root:
            return None
        key = (id(root), self.operation_key())
        cached = _results.get(key)
        if cached is None or cached[0] is not root:
            made = execute_subscription_event(super().build_per_event_executor(root))
            if inspect.iscoroutine(made):
                made.close()  # a waiter on the shared future, which is taken from the cache
            cached = _results.get(key)
            if cached is None or cached[0] is not root:
                return None
        outcome = cached[1]
        if isinstance(outcome, asyncio.Future):
            if not outcome.done():
                return outcome
            if outcome.cancelled() or outcome.exception() is not None:
                return None
            outcome = outcome.result()
        return outcome if isinstance(outcome, ExecutionResult) else None

    def build_per_event_executor(self, payload: Any) -> Any:
        # A result already made for this root needs no executor of its own (building one
        # copies this one): hand back the result.
        if payload is not None and _shared.get(id(payload)) is payload:
            cached = _results.get((id(payload), self.operation_key()))
            if cached is not None and cached[0] is payload:
                return _Made(cached[1], self)
        return super().build_per_event_executor(payload)

    def execute_operation(self, *args: Any, **kwargs: Any) -> Any:
        root = self.root_value
        if root is None or _shared.get(id(root)) is not root:
            return super().execute_operation(*args, **kwargs)
        key = (id(root), self.operation_key())
        cached = _results.get(key)
        if cached is not None and cached[0] is root:
            return _reuse(cached[1])
        outcome = super().execute_operation(*args, **kwargs)
        if self.is_awaitable(outcome):
            outcome = asyncio.ensure_future(_noted(outcome))
        else:
            _note_payload(outcome)
        _results.remember(key, (root, outcome))
        return _reuse(outcome)

    def operation_key(self) -> tuple[str, str | None, str]:
        """What its results are shared by: the document, the operation's name, the variables."""
        # Per-event executors are copies of the operation's: they inherit a key made once.
        key: tuple[str, str | None, str] | None = self.__dict__.get("_shared_key")
        if key is None:
            location = self.operation.loc
            source = location.source.body if location is not None else repr(self.operation)
            name = self.operation.name.value if self.operation.name else None
            key = (source, name, repr(sorted(self.variable_values.coerced.items())))
            self.__dict__["_shared_key"] = key
        return key


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
        if outcome.done() and not outcome.cancelled() and outcome.exception() is None:
            return outcome.result()  # no waiting, so no shield to build per subscriber
        return _await_shared(outcome)
    return outcome


async def _await_shared(future: asyncio.Future[ExecutionResult]) -> ExecutionResult:
    # Shielded: one subscriber leaving must not cancel the result the others wait for.
    return await asyncio.shield(future)
